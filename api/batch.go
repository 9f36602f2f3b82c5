package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

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

// batchMessage is one message of a batch: publishRequest's fields, without
// volatile (a batch is stored). Data needs no json check: the decoder only
// ever fills it with valid JSON.
type batchMessage struct {
	Event  string          `json:"event" validate:"required,event"`
	Data   json.RawMessage `json:"data"`
	Rooms  []string        `json:"rooms" validate:"omitempty,max=100,dive,room"`
	Except []string        `json:"except" validate:"omitempty,max=100,dive,room"`
	ID     string          `json:"id" validate:"omitempty,max=128,printascii"`
}

// batchItem is a message of a batch as read: the message, or why it could
// not be read (its own problem: the others go on).
type batchItem struct {
	msg batchMessage
	err error
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
		items, err := h.readBatch(w, r)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		ctx := httprate.WithIncrement(context.WithValue(r.Context(), batchKey{}, items), len(items))
		store.ServeHTTP(w, r.WithContext(ctx))
	}
}

// readBatch reads a batch's body, {"messages": [...]}, in one pass: each
// message is decoded as it comes (one decoder for the whole body: a
// message's type error or unknown field is that message's problem, and the
// decoder is still in step for the next), checked against max_body and
// validated. The body as a whole is refused (400) when it is not JSON, not
// such an object, or holds no message or more than max_batch; 413 when it
// is larger than max_batch_body.
func (h *nsAPI) readBatch(w http.ResponseWriter, r *http.Request) ([]batchItem, error) {
	if err := checkJSON(r); err != nil {
		return nil, err
	}
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
	notBatch := func(err error) error {
		return fmt.Errorf(`the body is not a batch ({"messages": [...]}): %s: %w`, jsonErr(err), hub.ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := expectDelim(dec, '{'); err != nil {
		return nil, notBatch(err)
	}
	var items []batchItem
	seen := false
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil, notBatch(err)
		}
		if key != "messages" || seen {
			return nil, notBatch(fmt.Errorf("unknown or repeated field %q", key))
		}
		seen = true
		if items, err = h.readMessages(dec); err != nil {
			return nil, err
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, notBatch(err)
	}
	// dec.More is false before a stray '}' or ']': look at the rest itself.
	if rest := bytes.TrimSpace(body[dec.InputOffset():]); len(rest) > 0 {
		return nil, fmt.Errorf("the body has data after its JSON object: %w", hub.ErrInvalid)
	}
	if len(items) == 0 {
		return nil, invalidParam("messages", fmt.Sprintf("is required: 1 to %d messages", h.batch.count))
	}
	return items, nil
}

// readMessages reads the array of messages (or null) at dec.
func (h *nsAPI) readMessages(dec *json.Decoder) ([]batchItem, error) {
	notArray := func(err error) error {
		return fmt.Errorf("messages must be an array of messages: %s: %w", jsonErr(err), hub.ErrInvalid)
	}
	tok, err := dec.Token()
	switch {
	case err != nil:
		return nil, notArray(err)
	case tok == nil:
		return nil, nil // null: no message
	case tok != json.Delim('['):
		return nil, notArray(fmt.Errorf("got %v", tok))
	}
	var items []batchItem
	for dec.More() {
		if len(items) == h.batch.count {
			return nil, invalidParam("messages", fmt.Sprintf("must have at most %d items (the namespace's max_batch)", h.batch.count))
		}
		items = append(items, batchItem{})
		it := &items[len(items)-1]
		from := dec.InputOffset()
		err := dec.Decode(&it.msg)
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF):
			return nil, fmt.Errorf("the body is not JSON: %s: %w", jsonErr(err), hub.ErrInvalid)
		case err != nil:
			it.err = fmt.Errorf("the message is not the expected JSON object: %s: %w", jsonErr(err), hub.ErrInvalid)
		case dec.InputOffset()-from > h.maxBody:
			it.err = fmt.Errorf("the message is larger than %d bytes, the namespace's max_body: %w", h.maxBody, hub.ErrTooLarge)
		default:
			if err := h.validate.Struct(&it.msg); err != nil {
				it.err = fieldErrors(err)
			}
		}
	}
	if err := expectDelim(dec, ']'); err != nil {
		return nil, notArray(err)
	}
	return items, nil
}

// expectDelim reads the next token, which must be d.
func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err == nil && tok != d {
		err = fmt.Errorf("want %v, got %v", d, tok)
	}
	return err
}

// storeBatch authorizes, checks and stores each message of the batch (in
// order, in one round trip to the store) and answers 200 with one result
// per message: its id, or its own problem (a message that fails does not
// stop the others). Only a request that cannot be served at all fails as a
// whole: a bad credential, an anonymous caller in a locked namespace (401),
// a credential that may publish none of the messages (403).
func (h *nsAPI) storeBatch(w http.ResponseWriter, r *http.Request) {
	items := r.Context().Value(batchKey{}).([]batchItem)
	p, err := h.authenticate(r, false)
	if err == nil && h.sec.Locked && p.kind == anonymous {
		err = h.require(p, hub.ActPublish, "") // 401 with the reason
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	n := len(items)
	errs := make([]error, n)
	outs := make([]*hub.Outgoing, 0, n)
	at := make([]int, 0, n)
	forbidden := 0
	for i := range items {
		o, err := h.batchOutgoing(p, &items[i])
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

// batchOutgoing authorizes one message of a batch (read and checked by
// readBatch), as publish does a single one.
func (h *nsAPI) batchOutgoing(p principal, it *batchItem) (*hub.Outgoing, error) {
	if it.err != nil {
		return nil, it.err
	}
	m := &it.msg
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
// same key in a batch and in a single publish is the same message). The
// user (a JWT's sub: any text) goes in with its length, so that user "a/b"
// with key "c" is not user "a" with key "b/c"; the namespace and the
// connection id have no "/".
func (h *nsAPI) scopeKey(p principal, o *hub.Outgoing) {
	if o.Key != "" {
		o.Key = h.ns.Name() + "/" + string(o.From) + "/" + strconv.Itoa(len(p.id.User)) + ":" + p.id.User + "/" + o.Key
	}
}
