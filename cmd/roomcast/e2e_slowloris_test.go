package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// openFiles counts a process's open file descriptors.
func openFiles(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Skipf("cannot count open files: %v", err)
	}
	return len(ents)
}

// TestSlowlorisHoldsNoFilesAndLocksNoOneOut: one client address opens
// 1,000 publishes that announce 65,000 bytes and send one. The server
// holds at most --max-requests-per-ip of them, each until --body-timeout
// (then 408), answers the rest 429 at once, and closes every one of those
// connections, so its open files stay bounded and fall back once the
// attack ends; meanwhile a client on another address publishes and its
// subscriber receives every message.
func TestSlowlorisHoldsNoFilesAndLocksNoOneOut(t *testing.T) {
	const bodyTimeout, perIP, attackers = 2 * time.Second, 50, 1000
	c := startChild(t, t.TempDir(), "--body-timeout", bodyTimeout.String(), "--max-requests-per-ip", fmt.Sprint(perIP))
	pid := c.cmd.Process.Pid
	host := strings.TrimPrefix(c.URL, "http://")
	srv := &testServer{t: t, URL: c.URL}
	// The other client comes from 127.0.0.2 (the whole 127/8 is loopback).
	other := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext,
	}}
	otherURL := strings.Replace(c.URL, "localhost", "127.0.0.1", 1)
	sub := srv.subscribe(t, "/ns/default/rooms/calm/events", "")
	sub.connected()
	baseline := openFiles(t, pid)

	var refused, cut, other4xx atomic.Int64
	var maxRefuse atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	dial := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}
	for i := 0; i < attackers; i++ {
		conn, err := dial.Dial("tcp", host)
		if err != nil {
			t.Fatalf("attacker %d: %v", i, err)
		}
		began := time.Now()
		fmt.Fprintf(conn, "POST /ns/default/rooms/lobby/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 65000\r\n\r\n{")
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			_ = conn.SetReadDeadline(time.Now().Add(bodyTimeout + 30*time.Second))
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Errorf("slow body got no answer: %v", err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusTooManyRequests:
				refused.Add(1)
				if d := int64(time.Since(began)); d > maxRefuse.Load() {
					maxRefuse.Store(d)
				}
			case http.StatusRequestTimeout:
				cut.Add(1)
			default:
				other4xx.Add(1)
			}
			// The server closed it: no file held for it any more.
			if b, err := br.ReadByte(); err == nil {
				t.Errorf("connection still open after a %d (read %q)", resp.StatusCode, b)
			}
		}()
	}
	opened := time.Since(start)
	peak := openFiles(t, pid)

	// Another address is served while the attack holds its slots.
	var worst time.Duration
	for i := 0; i < 20; i++ {
		began := time.Now()
		resp, err := other.Post(otherURL+"/ns/default/rooms/calm/messages", "application/json", strings.NewReader(fmt.Sprintf(`{"event":"e","data":%d}`, i)))
		if err != nil {
			t.Fatalf("publish from another address during the attack: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("publish from another address during the attack: %d", resp.StatusCode)
		}
		worst = max(worst, time.Since(began))
	}
	for i := 0; i < 20; i++ {
		if ev := sub.Expect("e"); !strings.Contains(ev.Data, fmt.Sprintf(`"data":%d}`, i)) {
			t.Fatalf("subscriber got %s, want message %d", ev.Data, i)
		}
	}
	wg.Wait()
	ended := time.Since(start)
	if refused.Load()+cut.Load() != attackers || other4xx.Load() != 0 {
		t.Fatalf("of %d slow bodies: %d refused 429, %d cut 408, %d other answers", attackers, refused.Load(), cut.Load(), other4xx.Load())
	}
	if cut.Load() > perIP {
		t.Errorf("%d slow bodies were held to the deadline, more than --max-requests-per-ip %d", cut.Load(), perIP)
	}
	// Without the bounds every slow body holds its file (1,000 here). With
	// them, perIP are held; the refused ones are closed at once, but on a
	// loaded machine some are still open when the count is taken (211 of
	// a bound of 165 was seen with the load average at 7): the bound says
	// "far from one per attacker", not how fast the closes are.
	if limit := baseline + perIP + attackers/4; peak > limit {
		t.Errorf("open files rose from %d to %d under the attack, want at most %d (the %d held requests and refusals not yet closed)", baseline, peak, limit, perIP)
	}
	var after int
	eventually(t, 10*time.Second, "open files back to the baseline", func() bool {
		after = openFiles(t, pid)
		return after <= baseline+5
	})
	t.Logf("%d slow bodies from one address opened in %s: %d answered 429 (slowest %s), %d held and cut with 408 at %s; all closed by the server after %s; "+
		"open files %d before, %d at the peak, %d after; 20 publishes from another address meanwhile, slowest %s, all delivered",
		attackers, opened.Round(time.Millisecond), refused.Load(), time.Duration(maxRefuse.Load()).Round(time.Millisecond), cut.Load(), bodyTimeout,
		ended.Round(time.Millisecond), baseline, peak, after, worst.Round(time.Millisecond))
}
