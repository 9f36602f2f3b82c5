package api

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/hub"
	"github.com/roomcast/roomcast/internal/hub/hubtest"
)

// batchRig serves namespace default on an in-memory log that has the batch
// and volatile capabilities (hubtest.MemLog, held to the engine's contract
// by the conformance suites).
type batchRig struct {
	router http.Handler
	hub    *hub.Hub
	log    *hubtest.MemLog
}

func newBatchRig(tb testing.TB, ns Namespace) *batchRig {
	tb.Helper()
	rig := &batchRig{log: &hubtest.MemLog{}}
	logger := slog.New(slog.NewTextHandler(&lockedBuffer{}, nil))
	rig.hub = testHub(tb, rig.log, logger)
	ns.Name = "default"
	if ns.MaxBody == 0 {
		ns.MaxBody = publishMaxBody
	}
	r, err := New(Config{Hub: rig.hub, Streams: refuseStreams{}, Namespaces: []Namespace{ns}, Logger: logger})
	if err != nil {
		tb.Fatal(err)
	}
	rig.router = r
	return rig
}

func (rig *batchRig) post(path string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	rec := httptest.NewRecorder()
	rig.router.ServeHTTP(rec, req)
	return rec
}

// batch posts body to the batch endpoint and decodes a 200's results.
func (rig *batchRig) batch(t *testing.T, body string) []batchResult {
	t.Helper()
	rec := rig.post("/ns/default/messages/batch", []byte(body))
	if rec.Code != http.StatusOK {
		t.Fatalf("batch: status %d, want 200; body %s", rec.Code, rec.Body)
	}
	var resp batchResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatalf("batch response %s: %v", rec.Body, err)
	}
	return resp.Results
}

// stored returns the events of the namespace's log, in order.
func (rig *batchRig) stored(t *testing.T) []string {
	t.Helper()
	var out []string
	err := rig.log.Read(context.Background(), "default", 1, 0, hub.Filter{Rooms: []string{"a", "b", "lobby"}}, func(m *hub.Message) bool {
		out = append(out, m.Event)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBatchStoresInOrder: every message of a batch is stored, in order,
// and answered with its own id.
func TestBatchStoresInOrder(t *testing.T) {
	rig := newBatchRig(t, Namespace{})
	res := rig.batch(t, `{"messages":[
		{"event":"m0","data":{"n":0},"rooms":["lobby"]},
		{"event":"m1","data":"x"},
		{"event":"m2","rooms":["a","b"],"except":["vip"]},
		{"event":"m3","rooms":["lobby"]}]}`)
	want := []string{"e1-1", "e1-2", "e1-3", "e1-4"}
	if len(res) != len(want) {
		t.Fatalf("%d results, want %d: %+v", len(res), len(want), res)
	}
	for i, r := range res {
		if r.ID != want[i] || r.Error != nil || r.Duplicate {
			t.Errorf("result %d = %+v, want id %s", i, r, want[i])
		}
	}
	if got := strings.Join(rig.stored(t), " "); got != "m0 m1 m2 m3" {
		t.Errorf("stored %q, want m0 m1 m2 m3", got)
	}
}

// TestBatchReportsEachMessagesProblem: a message that is invalid, too
// large or refused gets its own problem; the others are stored in order.
func TestBatchReportsEachMessagesProblem(t *testing.T) {
	rig := newBatchRig(t, Namespace{})
	big := `{"event":"big","data":"` + strings.Repeat("x", publishMaxBody) + `"}`
	res := rig.batch(t, `{"messages":[
		{"event":"ok0","rooms":["lobby"]},
		{"data":1},
		{"event":"e","rooms":["a b"]},
		{"event":"e","room":"lobby"},
		3,
		`+big+`,
		{"event":"e","volatile":true},
		{"event":"ok1","rooms":["lobby"]}]}`)
	type want struct {
		status int
		field  string
	}
	wants := []want{{0, ""}, {400, "event"}, {400, "rooms[0]"}, {400, ""}, {400, ""}, {413, ""}, {400, ""}, {0, ""}}
	if len(res) != len(wants) {
		t.Fatalf("%d results, want %d", len(res), len(wants))
	}
	for i, w := range wants {
		r := res[i]
		if w.status == 0 {
			if r.Error != nil || r.ID == "" {
				t.Errorf("result %d = %+v, want an id", i, r)
			}
			continue
		}
		if r.ID != "" || r.Error == nil || r.Error.Status != w.status || r.Error.Title == "" || r.Error.Detail == "" {
			t.Errorf("result %d = %+v (%+v), want a %d problem", i, r, r.Error, w.status)
			continue
		}
		if w.field != "" && (len(r.Error.Errors) != 1 || r.Error.Errors[0].Field != w.field) {
			t.Errorf("result %d field errors %+v, want [%s]", i, r.Error.Errors, w.field)
		}
	}
	if res[0].ID != "e1-1" || res[7].ID != "e1-2" {
		t.Errorf("ids %s %s, want e1-1 e1-2 (the valid messages, in order)", res[0].ID, res[7].ID)
	}
	if got := strings.Join(rig.stored(t), " "); got != "ok0 ok1" {
		t.Errorf("stored %q, want ok0 ok1", got)
	}
}

// TestBatchIdempotencyPerMessage: a key counts per message — repeated in a
// batch, across batches, and between a batch and a single publish.
func TestBatchIdempotencyPerMessage(t *testing.T) {
	rig := newBatchRig(t, Namespace{})
	res := rig.batch(t, `{"messages":[{"event":"e","rooms":["lobby"],"id":"k1"},{"event":"e","rooms":["lobby"],"id":"k2"},{"event":"e","rooms":["lobby"],"id":"k1"}]}`)
	if res[0].ID != "e1-1" || res[1].ID != "e1-2" || res[0].Duplicate || res[1].Duplicate {
		t.Fatalf("first two = %+v %+v, want e1-1 e1-2, new", res[0], res[1])
	}
	if res[2].ID != "e1-1" || !res[2].Duplicate {
		t.Errorf("a key repeated within the batch = %+v, want e1-1 duplicate", res[2])
	}
	again := rig.batch(t, `{"messages":[{"event":"e","rooms":["lobby"],"id":"k2"},{"event":"e","rooms":["lobby"],"id":"k3"}]}`)
	if again[0].ID != "e1-2" || !again[0].Duplicate || again[1].ID != "e1-3" || again[1].Duplicate {
		t.Errorf("second batch = %+v, want e1-2 duplicate, e1-3 new", again)
	}
	rec := rig.post("/ns/default/rooms/lobby/messages", []byte(`{"event":"e","id":"k3"}`))
	var single publishResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &single); err != nil || rec.Code != 202 || single.ID != "e1-3" || !single.Duplicate {
		t.Errorf("a single publish with a batch's key = %d %s, want 202 e1-3 duplicate", rec.Code, rec.Body)
	}
}

// TestBatchLimits: the whole body is refused when it is not a batch, when
// it has no message or more than max_batch (400), or is larger than
// max_batch_body (413); nothing is stored then.
func TestBatchLimits(t *testing.T) {
	rig := newBatchRig(t, Namespace{MaxBatch: 3, MaxBatchBody: 1 << 10})
	msgs := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = `{"event":"e","rooms":["lobby"]}`
		}
		return `{"messages":[` + strings.Join(parts, ",") + `]}`
	}
	if res := rig.batch(t, msgs(3)); len(res) != 3 || res[2].ID != "e1-3" {
		t.Fatalf("a batch of max_batch: %+v, want 3 stored", res)
	}
	for _, tt := range []struct {
		name   string
		body   string
		status int
		field  string
	}{
		{"more than max_batch", msgs(4), 400, "messages"},
		{"no message", `{"messages":[]}`, 400, "messages"},
		{"messages missing", `{}`, 400, "messages"},
		{"empty body", ``, 400, ""},
		{"not an object", `[{"event":"e"}]`, 400, ""},
		{"messages not an array", `{"messages":{"event":"e"}}`, 400, ""},
		{"unknown field", `{"messages":[{"event":"e"}],"volatile":true}`, 400, ""},
		{"trailing data", msgs(1) + ` x`, 400, ""},
		{"larger than max_batch_body", `{"messages":[{"event":"e","data":"` + strings.Repeat("x", 1<<10) + `"}]}`, 413, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := rig.post("/ns/default/messages/batch", []byte(tt.body))
			var p Problem
			if rec.Code != tt.status || json.Unmarshal(rec.Body.Bytes(), &p) != nil || p.Status != tt.status {
				t.Fatalf("status %d %s, want a %d problem", rec.Code, rec.Body, tt.status)
			}
			if tt.field != "" && (len(p.Errors) != 1 || p.Errors[0].Field != tt.field) {
				t.Errorf("field errors %+v, want [%s]", p.Errors, tt.field)
			}
		})
	}
	// A body labelled as a form (curl -d) is refused before it is read.
	req := httptest.NewRequest(http.MethodPost, "/ns/default/messages/batch", strings.NewReader(msgs(1)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	rig.router.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnsupportedMediaType || rec.Header().Get("Accept") != "application/json" {
		t.Errorf("a form-labelled batch: %d (Accept %q), want 415 naming application/json", rec.Code, rec.Header().Get("Accept"))
	}
	if n := len(rig.stored(t)); n != 3 {
		t.Errorf("%d messages stored, want the first batch's 3 only", n)
	}
}

// TestBatchRateLimitCountsMessages: rate_publish counts a batch's
// messages, not its requests.
func TestBatchRateLimitCountsMessages(t *testing.T) {
	rig := newBatchRig(t, Namespace{Security: Security{Publish: Rate{N: 5, Per: time.Minute}}})
	three := `{"messages":[{"event":"e","rooms":["lobby"]},{"event":"e","rooms":["lobby"]},{"event":"e","rooms":["lobby"]}]}`
	if res := rig.batch(t, three); len(res) != 3 || res[0].Error != nil {
		t.Fatalf("first batch of 3 within 5/min: %+v", res)
	}
	rec := rig.post("/ns/default/messages/batch", []byte(three))
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Errorf("3 more messages past 5/min: status %d (Retry-After %q), want 429", rec.Code, rec.Header().Get("Retry-After"))
	}
	if n := len(rig.stored(t)); n != 3 {
		t.Errorf("%d stored, want 3", n)
	}
}

// TestVolatilePublish: "volatile": true is answered 204 and stores
// nothing; an idempotency key with it is a field error.
func TestVolatilePublish(t *testing.T) {
	rig := newBatchRig(t, Namespace{})
	for _, path := range []string{"/ns/default/messages", "/ns/default/rooms/lobby/messages", "/ns/default/connections/AAAAAAAAAAAAAAAAAAAAAA/messages"} {
		rec := rig.post(path, []byte(`{"event":"typing","data":{"on":true},"volatile":true}`))
		if rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
			t.Errorf("POST %s volatile: %d %s, want 204 and no body", path, rec.Code, rec.Body)
		}
	}
	if st, _ := rig.log.State(context.Background(), "default"); st.Last != 0 {
		t.Errorf("volatile publishes stored %d messages, want none", st.Last)
	}
	rec := rig.post("/ns/default/rooms/lobby/messages", []byte(`{"event":"typing","volatile":true,"id":"k"}`))
	var p Problem
	if rec.Code != 400 || json.Unmarshal(rec.Body.Bytes(), &p) != nil || len(p.Errors) != 1 || p.Errors[0].Field != "id" {
		t.Errorf("volatile with an id: %d %s, want 400 on field id", rec.Code, rec.Body)
	}
}

// FuzzBatchBody feeds arbitrary bodies to the batch endpoint: it never
// panics, answers 200, 400 or 413 (problem+json for the last two), and a
// 200 has one result per message, each an id or a problem, with ids
// growing in the order of the messages.
func FuzzBatchBody(f *testing.F) {
	for _, s := range []string{
		`{"messages":[{"event":"e","data":{"a":1},"rooms":["a","b"],"except":["c"],"id":"k"},{"event":"f"}]}`,
		`{"messages":[{"event":""},3,null,{"event":"e","rooms":["a b"]}]}`,
		`{"messages":[]}`, `{"messages":null}`, `{}`, `[]`, ``, `{"messages":[{}]}x`, `{"messages":[{"event":"e","id":"k"},{"event":"e","id":"k"}]}`,
	} {
		f.Add([]byte(s))
	}
	rig := newBatchRig(f, Namespace{MaxBatch: 20, MaxBatchBody: 8 << 10})
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := rig.post("/ns/default/messages/batch", body)
		switch rec.Code {
		case http.StatusOK:
			var req struct{ Messages []json.RawMessage }
			if err := json.Unmarshal(body, &req); err != nil {
				t.Fatalf("200 for a body that is not a batch: %q", body)
			}
			var resp batchResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || len(resp.Results) != len(req.Messages) {
				t.Fatalf("200 with %s for %d messages", rec.Body, len(req.Messages))
			}
			var last hub.Position
			for i, r := range resp.Results {
				if (r.ID == "") == (r.Error == nil) {
					t.Fatalf("result %d = %+v: want an id or a problem", i, r)
				}
				if r.ID == "" {
					continue
				}
				pos, err := hub.ParsePosition(r.ID)
				if err != nil || (!r.Duplicate && pos.Seq <= last.Seq) {
					t.Fatalf("result %d id %q after %v: ids must grow with the batch", i, r.ID, last)
				}
				if !r.Duplicate {
					last = pos
				}
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("%d with Content-Type %q", rec.Code, ct)
			}
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
	})
}
