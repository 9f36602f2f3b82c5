package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomcast/roomcast/internal/hub"
)

// TestPublishFailureClasses: errors where nothing was sent or stored are
// ErrUnavailable (503), the others ErrOutcomeUnknown (504).
func TestPublishFailureClasses(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want error
	}{
		{nats.ErrNoResponders, hub.ErrUnavailable},
		{jetstream.ErrNoStreamResponse, hub.ErrUnavailable},
		{nats.ErrReconnectBufExceeded, hub.ErrUnavailable},
		{fmt.Errorf("nats: %w", &jetstream.APIError{Code: 503, ErrorCode: 10077, Description: "maximum messages exceeded"}), hub.ErrUnavailable},
		{context.DeadlineExceeded, hub.ErrOutcomeUnknown},
		{nats.ErrTimeout, hub.ErrOutcomeUnknown},
		{nats.ErrConnectionClosed, hub.ErrOutcomeUnknown},
		{jetstream.ErrInvalidJSAck, hub.ErrOutcomeUnknown},
	} {
		got := publishFailure(tc.err)
		if !errors.Is(got, tc.want) || errors.Is(got, hub.ErrUnavailable) && errors.Is(got, hub.ErrOutcomeUnknown) {
			t.Errorf("%v: %v, want only %v", tc.err, got, tc.want)
		}
	}
}

// TestNoPublishIsBufferedWhileDisconnected: with an external NATS server
// down, a publish fails at once with ErrUnavailable and is not stored when
// the server comes back (nats.go's reconnect buffer would have sent it
// then: a 503 stored anyway, issue 19).
func TestNoPublishIsBufferedWhileDisconnected(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	store := t.TempDir()
	start := func() *server.Server {
		t.Helper()
		srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: store, NoSigs: true, NoLog: true})
		if err != nil {
			t.Fatal(err)
		}
		srv.Start()
		if !srv.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats server not ready")
		}
		return srv
	}
	srv := start()
	e := open(t, Config{URL: "nats://127.0.0.1:" + strconv.Itoa(port)})
	ctx := context.Background()
	if _, err := e.OpenNamespace(ctx, "x", hub.Retention{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Publish(ctx, "x", &hub.Outgoing{Rooms: []string{"r"}, Event: "e", Body: []byte(`{"n":1}`)}); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	deadline := time.Now().Add(10 * time.Second)
	for e.nc.IsConnected() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	began := time.Now()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, _, err = e.Publish(pctx, "x", &hub.Outgoing{Rooms: []string{"r"}, Event: "e", Body: []byte(`{"n":2}`)})
	if !errors.Is(err, hub.ErrUnavailable) || errors.Is(err, hub.ErrOutcomeUnknown) {
		t.Fatalf("publish while disconnected: %v, want ErrUnavailable (nothing sent)", err)
	}
	// Not a speed test: the point is not waiting out the caller's 5 s.
	if took := time.Since(began); took > 3*time.Second {
		t.Errorf("refused after %s, want at once (the connection is down: nothing can be sent)", took)
	}
	srv = start()
	defer srv.Shutdown()
	var st hub.LogState
	for deadline := time.Now().Add(20 * time.Second); ; {
		if st, err = e.State(ctx, "x"); err == nil && e.nc.IsConnected() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state after the server came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Give a buffered publish every chance to land: one more publish,
	// acknowledged, comes after anything the client would have flushed on
	// reconnect.
	pos, _, err := e.Publish(ctx, "x", &hub.Outgoing{Rooms: []string{"r"}, Event: "e", Body: []byte(`{"n":3}`)})
	if err != nil {
		t.Fatal(err)
	}
	if st, err = e.State(ctx, "x"); err != nil || st.Last != 2 || pos.Seq != 2 {
		t.Fatalf("after the server came back: last %d, the new publish at %d (%v); want 2 and 2: the refused one must not be stored", st.Last, pos.Seq, err)
	}
}
