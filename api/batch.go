package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/go-chi/httprate"

	"github.com/roomcast/roomcast/internal/hub"
)

// batchLimits bound a batch publish: how many messages (max_batch) and how
// many bytes its body may have (max_batch_body). Each message is also held
// to the namespace's max_body, as a single publish is.
type batchLimits struct {
	count int
	body  int64
}

// batchRequest is the body of POST /ns/{ns}/messages/batch. Each message is
// decoded and checked on its own (batchMessage), so that one bad message is
// reported in its own result instead of refusing the others.
type batchRequest struct {
	Messages []json.RawMessage `json:"messages"`
}

// batchMessage is one message of a batch: publishRequest's fields, without
// volatile (a batch is stored).
type batchMessage struct {
	Event  string          `json:"event" validate:"required,event"`
	Data   json.RawMessage `json:"data" validate:"json"`
	Rooms  []string        `json:"rooms" validate:"omitempty,max=100,dive,room"`
	Except []string        `json:"except" validate:"omitempty,max=100,dive,room"`
	ID     string          `json:"id" validate:"omitempty,max=128,printascii"`
}

type batchResponse struct {
	Results []batchResult `json:"results"`
}

// batchResult is one message's outcome: its id once stored, or its problem.
type batchResult struct {
	ID        string   `json:"id,omitempty"`
	Duplicate bool     `json:"duplicate,omitempty"`
	Error     *Problem `json:"error,omitempty"`
}

type batchKey struct{}

// publishBatch returns the handler of POST /ns/{ns}/messages/batch. It
// reads and checks the body as a whole (a body that is not a batch is a
// 400, one too large a 413), then runs the namespace's publish rate limits
// (limits) with the batch's size as their increment — each message counts,
// as a single publish does — and then storeBatch.
func (h *nsAPI) publishBatch(limits []func(http.Handler) http.Handler) http.HandlerFunc {
	var store http.Handler = http.HandlerFunc(h.storeBatch)
	for i := len(limits) - 1; i >= 0; i-- {
		store = limits[i](store)
	}
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := h.readBatch(w, r)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		ctx := httprate.WithIncrement(context.WithValue(r.Context(), batchKey{}, req), len(req.Messages))
		store.ServeHTTP(w, r.WithContext(ctx))
	}
}

// readBatch reads a batch's body and checks its shape and bounds.
func (h *nsAPI) readBatch(w http.ResponseWriter, r *http.Request) (*batchRequest, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.batch.body))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, fmt.Errorf("the body is larger than %d bytes, the namespace's max_batch_body: send fewer messages per batch: %w", h.batch.body, hub.ErrTooLarge)
	case err != nil:
		return nil, fmt.Errorf("the body could not be read (%w): %w", err, hub.ErrInvalid)
	case len(bytes.TrimSpace(body)) == 0:
		return nil, fmt.Errorf(`the body is empty; send {"messages": [...]}: %w`, hub.ErrInvalid)
	}
	req := &batchRequest{}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(req); err != nil {
		return nil, fmt.Errorf(`the body is not a batch ({"messages": [...]}): %s: %w`, jsonErr(err), hub.ErrInvalid)
	}
	if rest := bytes.TrimSpace(body[dec.InputOffset():]); len(rest) > 0 {
		return nil, fmt.Errorf("the body has data after its JSON object: %w", hub.ErrInvalid)
	}
	switch n := len(req.Messages); {
	case n == 0:
		return nil, invalidParam("messages", fmt.Sprintf("is required: 1 to %d messages", h.batch.count))
	case n > h.batch.count:
		return nil, invalidParam("messages", fmt.Sprintf("must have at most %d items (the namespace's max_batch), got %d", h.batch.count, n))
	}
	return req, nil
}

// storeBatch authorizes, checks and stores each message of the batch (in
// order, in one round trip to the store) and answers 200 with one result
// per message: its id, or its own problem (a message that fails does not
// stop the others). Only a request that cannot be served at all fails as a
// whole: a bad credential, an anonymous caller in a locked namespace (401),
// a credential that may publish none of the messages (403).
func (h *nsAPI) storeBatch(w http.ResponseWriter, r *http.Request) {
	req := r.Context().Value(batchKey{}).(*batchRequest)
	p, err := h.authenticate(r, false)
	if err == nil && h.sec.Locked && p.kind == anonymous {
		err = h.require(p, hub.ActPublish, "") // 401 with the reason
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	n := len(req.Messages)
	errs := make([]error, n)
	outs := make([]*hub.Outgoing, 0, n)
	at := make([]int, 0, n)
	forbidden := 0
	for i, raw := range req.Messages {
		o, err := h.batchOutgoing(p, raw)
		if err != nil {
			errs[i] = err
			if errors.Is(err, hub.ErrForbidden) {
				forbidden++
			}
			continue
		}
		outs = append(outs, o)
		at = append(at, i)
	}
	if forbidden == n {
		h.fail(w, r, errs[0])
		return
	}
	stored := h.ns.PublishBatch(r.Context(), outs)
	resp := batchResponse{Results: make([]batchResult, n)}
	for j, s := range stored {
		if s.Err != nil {
			errs[at[j]] = s.Err
			continue
		}
		resp.Results[at[j]] = batchResult{ID: s.Pos.String(), Duplicate: s.Dup}
	}
	for i, err := range errs {
		if err != nil {
			pb := problemOf(r, h.logger, err)
			resp.Results[i] = batchResult{Error: &pb}
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// batchOutgoing decodes, checks and authorizes one message of a batch, as
// publish does a single one.
func (h *nsAPI) batchOutgoing(p principal, raw json.RawMessage) (*hub.Outgoing, error) {
	if int64(len(raw)) > h.maxBody {
		return nil, fmt.Errorf("the message is larger than %d bytes, the namespace's max_body: %w", h.maxBody, hub.ErrTooLarge)
	}
	var m batchMessage
	if err := h.decodeBytes(raw, &m); err != nil {
		return nil, err
	}
	var err error
	if len(m.Rooms) == 0 {
		err = h.require(p, hub.ActAdmin, "")
	}
	for _, room := range m.Rooms {
		if err == nil {
			err = h.require(p, hub.ActPublish, room)
		}
	}
	if err != nil {
		return nil, err
	}
	o := &hub.Outgoing{Event: m.Event, Data: m.Data, Rooms: m.Rooms, Except: m.Except, Key: m.ID}
	if p.kind == connection {
		o.From = p.conn.ID
	}
	h.scopeKey(p, o)
	return o, nil
}

// scopeKey scopes o's idempotency key per namespace and sender, so that two
// publishers picking the same key cannot swallow each other's messages (the
// same key in a batch and in a single publish is the same message).
func (h *nsAPI) scopeKey(p principal, o *hub.Outgoing) {
	if o.Key != "" {
		o.Key = h.ns.Name() + "/" + string(o.From) + "/" + p.id.User + "/" + o.Key
	}
}
