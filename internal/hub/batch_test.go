package hub

import (
	"encoding/json"
	"errors"
	"testing"
)

// TestPublishBatchChecksEachMessage: a message that fails its checks gets
// its own error and is not stored; the others are stored in order (on a Log
// without the batch capability, one Publish after another), keys scoped per
// message.
func TestPublishBatchChecksEachMessage(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	got := fx.ns.PublishBatch(ctx, []*Outgoing{
		{Event: "a", Rooms: []string{"lobby"}, Data: json.RawMessage(`1`)},
		{Event: "", Rooms: []string{"lobby"}},
		{Event: "c", Rooms: []string{"bad room"}},
		{Event: "d", Key: "k"},
		{Event: "e", Key: "k"},
		{Event: "f", Rooms: []string{"x", "x"}},
	})
	if len(got) != 6 {
		t.Fatalf("%d results for 6 messages", len(got))
	}
	for _, i := range []int{1, 2} {
		if !errors.Is(got[i].Err, ErrInvalid) {
			t.Errorf("message %d: %+v, want ErrInvalid", i, got[i])
		}
	}
	for _, i := range []int{0, 3, 5} {
		if got[i].Err != nil || got[i].Dup {
			t.Errorf("message %d: %+v, want stored", i, got[i])
		}
	}
	if got[0].Pos.Seq != 1 || got[3].Pos.Seq != 2 || got[5].Pos.Seq != 3 {
		t.Errorf("positions %v %v %v, want 1 2 3 (the valid ones, in order)", got[0].Pos, got[3].Pos, got[5].Pos)
	}
	if got[4].Err != nil || !got[4].Dup || got[4].Pos != got[3].Pos {
		t.Errorf("repeated key: %+v, want the first's position and Dup", got[4])
	}
	fx.log.mu.Lock()
	defer fx.log.mu.Unlock()
	if len(fx.log.published) != 4 {
		t.Fatalf("%d publishes reached the log, want 4", len(fx.log.published))
	}
	var env Envelope
	if err := json.Unmarshal(fx.log.published[0].Body, &env); err != nil || env.Event != "a" || env.Room == nil || *env.Room != "lobby" || string(env.Data) != "1" {
		t.Errorf("first stored body %s: want its envelope", fx.log.published[0].Body)
	}
	if rooms := fx.log.published[3].Rooms; len(rooms) != 1 {
		t.Errorf("rooms [x x] stored as %v, want deduplicated", rooms)
	}
}

// TestPublishBatchReportsLogErrors: a failing store fails each message
// with its own error, wrapped with the namespace.
func TestPublishBatchReportsLogErrors(t *testing.T) {
	fx := newFixture(t, NamespaceConfig{})
	fx.log.pubErr = ErrUnavailable
	got := fx.ns.PublishBatch(ctx, []*Outgoing{{Event: "a"}, {Event: "b"}})
	for i, s := range got {
		if !errors.Is(s.Err, ErrUnavailable) {
			t.Errorf("message %d: %v, want ErrUnavailable", i, s.Err)
		}
	}
}
