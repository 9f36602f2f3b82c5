package engine

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// sessionEntry is a session record as its bucket's leader holds it.
type sessionEntry struct {
	value    []byte
	revision uint64
}

// lastSession reads key's latest record from the sessions bucket's leader
// (nil: none, or deleted). The KeyValue's Get is a direct get, answered by
// the nearest replica — this node's — which may not yet hold a session
// saved on another node a moment ago (the client reconnected elsewhere at
// once) or, just after a partition healed, for seconds: the reconnect
// would then lose its connection (issue 19). The stream's message-get API
// is answered by the leader alone.
func (e *Engine) lastSession(ctx context.Context, key string) (*sessionEntry, error) {
	subject := "$KV." + sessionsBucket + "." + key
	req, err := json.Marshal(map[string]string{"last_by_subj": subject})
	if err != nil {
		return nil, err
	}
	msg, err := e.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+sessionsStream, req)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Error   *jetstream.APIError `json:"error"`
		Message *struct {
			Seq    uint64 `json:"seq"`
			Header []byte `json:"hdrs"`
			Data   []byte `json:"data"`
		} `json:"message"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, fmt.Errorf("session %s: %w", key, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return nil, nil
	case resp.Error != nil:
		return nil, resp.Error
	case resp.Message == nil:
		return nil, fmt.Errorf("session %s: an empty answer", key)
	}
	if len(resp.Message.Header) > 0 {
		h, err := nats.DecodeHeadersMsg(resp.Message.Header)
		if err != nil {
			return nil, fmt.Errorf("session %s: %w", key, err)
		}
		if op := h.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
			return nil, nil
		}
	}
	return &sessionEntry{value: resp.Message.Data, revision: resp.Message.Seq}, nil
}
