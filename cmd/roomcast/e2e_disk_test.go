package main

import (
	"context"
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

// TestDiskFullAnswers507AndRecovers: the real server on a small volume.
// Once the volume is filled, a publish answers 507 at once with a problem
// that says what happened (not the error chain) and Retry-After, /readyz
// 503 with the reason, both as openapi.yaml documents them; a stream stays
// open. Once space is freed the server takes publishes again by itself,
// the stream gets them, and history has every 2xx publish.
func TestDiskFullAnswers507AndRecovers(t *testing.T) {
	vol := fault.SmallVolume(t, 64<<20)
	s := startServerData(t, filepath.Join(vol, "data"), "--max-bytes", "16MiB", "--disk-reserve", "4MiB")
	c := newSpecCheck(t, s)
	const room = "/ns/default/rooms/lobby"
	st := s.subscribe(t, room+"/events", "")
	st.connected()
	before := s.publish(t, room+"/messages", `{"event":"e","data":"before"}`, "")
	st.Expect("e")

	filler, err := fault.Fill(vol, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	// Until the server notices (within a second), publishes are stored.
	stored := []string{before}
	var took time.Duration
	eventually(t, 10*time.Second, "a publish refused with 507", func() bool {
		start := time.Now()
		code, out, _ := s.do(t, http.MethodPost, room+"/messages", `{"event":"e","data":"while filling"}`, "")
		took = time.Since(start)
		if code == http.StatusAccepted {
			stored = append(stored, out["id"].(string))
		}
		return code == http.StatusInsufficientStorage
	})
	if took > 100*time.Millisecond {
		t.Errorf("the 507 took %s, want at once", took)
	}
	h, raw := c.call(t, specReq{method: "POST", path: room + "/messages", body: `{"event":"e","data":"refused"}`, want: 507})
	if h.Get("Retry-After") == "" || !strings.Contains(string(raw), "not stored") || strings.Contains(string(raw), "engine:") {
		t.Errorf("507: Retry-After %q, %s: want Retry-After and a detail saying it was not stored, without the error chain", h.Get("Retry-After"), raw)
	}
	_, raw = c.call(t, specReq{method: "GET", path: "/readyz", want: 503})
	if !strings.Contains(string(raw), "refuses writes") {
		t.Errorf("/readyz while full: %s, want the reason", raw)
	}
	// Reads still work.
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
	for _, id := range stored[1:] {
		if ev := st.Expect("e"); !strings.Contains(ev.Data, `"id":"`+id+`"`) {
			t.Fatalf("the stream got %s, want %s", ev.Data, id)
		}
	}
	code, body, _ := s.do(t, http.MethodGet, room+"/messages", nil, "")
	msgs, _ := body["messages"].([]any)
	var got []string
	for _, m := range msgs {
		got = append(got, m.(map[string]any)["id"].(string))
	}
	if code != http.StatusOK || strings.Join(got, " ") != strings.Join(stored, " ") {
		t.Fatalf("history after recovery: %d %v, want exactly the 2xx publishes %v", code, got, stored)
	}
	t.Logf("507 answered in %s; ready and storing again %s after space was freed", took.Round(time.Microsecond), recovered.Round(time.Millisecond))
}
