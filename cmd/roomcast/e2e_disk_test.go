package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/fault"
)

// TestStartRefusesAVolumeSmallerThanMaxBytes: on a data volume smaller than
// the store may grow to, the server does not start, and says which
// settings to lower.
func TestStartRefusesAVolumeSmallerThanMaxBytes(t *testing.T) {
	vol := fault.SmallVolume(t, 32<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := run(ctx, []string{"--addr", "127.0.0.1:0", "--data", filepath.Join(vol, "data")}, // --max-bytes 1 GiB by default
		func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "lower --max-bytes") || !strings.Contains(err.Error(), "--disk-reserve") || !strings.Contains(err.Error(), "32.0 MiB") {
		t.Fatalf("start on a 32 MiB volume with --max-bytes 1GiB: %v, want a refusal naming the volume's size, --max-bytes and --disk-reserve", err)
	}
	// Within the volume it starts.
	s := startServerData(t, filepath.Join(vol, "data"), "--max-bytes", "16MiB", "--disk-reserve", "4MiB")
	s.publish(t, "/ns/default/rooms/lobby/messages", `{"event":"e"}`, "")
}

// TestDiskFullAnswers507AndRecovers: the real server on a small volume,
// with a reserve (publishes refused before any write fails) and without
// (a write fails: the server restarts JetStream to recover). Once the volume
// is filled, a publish answers 507 at once with a problem that says what
// happened (not the error chain) and Retry-After, /readyz 503 with the
// reason, both as openapi.yaml documents them; streams stay open and reads
// work. Once space is freed the server takes publishes again by itself, a
// room stream and a consumer group member get them, and history has every
// 2xx publish.
func TestDiskFullAnswers507AndRecovers(t *testing.T) {
	for _, tc := range []struct{ name, reserve string }{{"reserve", "4MiB"}, {"write-failure", "0"}} {
		t.Run(tc.name, func(t *testing.T) { diskFullAndBack(t, tc.reserve) })
	}
}

func diskFullAndBack(t *testing.T, reserve string) {
	vol := fault.SmallVolume(t, 64<<20)
	s := startServerData(t, filepath.Join(vol, "data"), "--max-bytes", "16MiB", "--disk-reserve", reserve)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", s.logs.String())
		}
	})
	c := newSpecCheck(t, s)
	const room = "/ns/default/rooms/lobby"
	st := s.subscribe(t, room+"/events", "")
	st.connected()
	member := s.subscribe(t, "/ns/default/rooms/orders/events?group=g", "")
	_, memberToken, _ := member.connected()
	ackNext := func(want string) {
		t.Helper()
		ev := member.Expect("order")
		var d struct {
			AckID string `json:"ack_id"`
			Data  string
		}
		if err := json.Unmarshal([]byte(ev.Data), &d); err != nil || d.Data != want {
			t.Fatalf("group delivery %s, want data %q", ev.Data, want)
		}
		if code, body, _ := s.do(t, http.MethodPost, "/ns/default/rooms/orders/groups/g/acks", map[string]any{"ids": []string{d.AckID}}, memberToken); code != http.StatusNoContent {
			t.Fatalf("ack: %d %v", code, body)
		}
	}
	s.publish(t, "/ns/default/rooms/orders/messages", `{"event":"order","data":"before"}`, "")
	ackNext("before")
	before := s.publish(t, room+"/messages", `{"event":"e","data":"before"}`, "")
	st.Expect("e")

	leave := int64(1 << 20)
	if reserve == "0" {
		leave = 0
	}
	filler, err := fault.Fill(vol, leave)
	if err != nil {
		t.Fatal(err)
	}
	// Until the server notices, publishes are stored; one in flight when a
	// write fails has an unknown outcome (504).
	stored, unknown := []string{before}, 0
	var took time.Duration
	eventually(t, 10*time.Second, "a publish refused with 507", func() bool {
		start := time.Now()
		code, out, _ := s.do(t, http.MethodPost, room+"/messages", `{"event":"e","data":"while filling"}`, "")
		took = time.Since(start)
		switch code {
		case http.StatusAccepted:
			stored = append(stored, out["id"].(string))
		case http.StatusGatewayTimeout:
			unknown++
		}
		return code == http.StatusInsufficientStorage
	})
	if took > time.Second {
		t.Errorf("the 507 took %s, want at once (not after the store's 3 s timeout)", took)
	}
	h, raw := c.call(t, specReq{method: "POST", path: room + "/messages", body: `{"event":"e","data":"refused"}`, want: 507})
	if h.Get("Retry-After") == "" || !strings.Contains(string(raw), "not stored") || strings.Contains(string(raw), "engine:") {
		t.Errorf("507: Retry-After %q, %s: want Retry-After and a detail saying it was not stored, without the error chain", h.Get("Retry-After"), raw)
	}
	_, raw = c.call(t, specReq{method: "GET", path: "/readyz", want: 503})
	if !strings.Contains(string(raw), "refuses writes") {
		t.Errorf("/readyz while full: %s, want the reason", raw)
	}
	c.call(t, specReq{method: "GET", path: room + "/messages", want: 200})

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	eventually(t, 10*time.Second, "/readyz 200 after space was freed", func() bool {
		code, _, _ := s.do(t, http.MethodGet, "/readyz", nil, "")
		return code == http.StatusOK
	})
	after := s.publish(t, room+"/messages", `{"event":"e","data":"after"}`, "")
	recovered := time.Since(freed)
	stored = append(stored, after)
	for got := map[string]bool{}; !got[after]; {
		ev := st.Expect("e")
		var env struct{ ID string }
		if err := json.Unmarshal([]byte(ev.Data), &env); err != nil {
			t.Fatal(err)
		}
		if got[env.ID] {
			t.Fatalf("the stream got %s twice", env.ID)
		}
		got[env.ID] = true
	}
	groupStart := time.Now()
	s.publish(t, "/ns/default/rooms/orders/messages", `{"event":"order","data":"after"}`, "")
	ackNext("after")
	groupTook := time.Since(groupStart)
	if groupTook > 5*time.Second {
		t.Errorf("the group's first delivery after recovery took %s: its pull waited for a heartbeat timeout (the request died with JetStream) instead of being made again", groupTook)
	}

	code, body, _ := s.do(t, http.MethodGet, room+"/messages", nil, "")
	msgs, _ := body["messages"].([]any)
	inHistory := map[string]bool{}
	for _, m := range msgs {
		inHistory[m.(map[string]any)["id"].(string)] = true
	}
	for _, id := range stored {
		if !inHistory[id] {
			t.Errorf("publish %s answered 202 is not in history", id)
		}
	}
	if code != http.StatusOK || len(msgs) > len(stored)+unknown {
		t.Fatalf("history after recovery: %d, %d messages, want the %d answered 202 (and at most %d of unknown outcome)", code, len(msgs), len(stored), unknown)
	}
	t.Logf("507 answered in %s; %d publishes of unknown outcome; ready and storing again %s after space was freed; the group delivered and acked a new message in %s",
		took.Round(time.Microsecond), unknown, recovered.Round(time.Millisecond), groupTook.Round(time.Millisecond))
}
