package webhook_test

import (
	"context"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/hub"
	"github.com/roomcast/roomcast/internal/webhook"
)

type nopOccupancy struct{}

func (nopOccupancy) Set(string, string, int) {}
func (nopOccupancy) Run(ctx context.Context, _ func(string) time.Duration,
	_ func(context.Context, string, string, bool, string, time.Time) error) error {
	<-ctx.Done()
	return nil
}
func (nopOccupancy) Waiting(context.Context) (uint64, error) { return 0, nil }

// BenchmarkObserverMember is what a join or leave costs the hub's path when
// every event is wanted: the Observer call (a room count handed to
// occupancy, the event encoded and queued for the outbox).
func BenchmarkObserverMember(b *testing.B) {
	svc, err := webhook.New(webhook.Config{Namespaces: map[string]webhook.Namespace{"chat": {Endpoints: []webhook.Endpoint{{
		URL: "https://backend.example/hooks", Events: webhook.Events, Secret: secret}}}}},
		webhook.Deps{Outbox: nopOutbox{}, Occupancy: nopOccupancy{}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); svc.Run(ctx) }()
	defer func() { cancel(); <-done }()
	ch := hub.MemberChange{NS: "chat", Room: "lobby", Conn: "DOqlT_e84BH5qnPiPslufw", User: "alice", Joined: true, Size: 3, At: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		svc.Member(ch)
	}
}
