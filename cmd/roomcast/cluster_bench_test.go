package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkPublishToDeliver measures publish→receive latency at a steady
// 500 msg/s and the throughput of 8 concurrent publishers, on one node and
// across nodes of a 3-node cluster (publish on n1, receive on n2). Each
// server is a separate process; figures go to BENCHMARKS.md. Run with
//
//	go test -run '^$' -bench PublishToDeliver -benchtime 1x ./cmd/roomcast
func BenchmarkPublishToDeliver(b *testing.B) {
	b.Run("single-node", func(b *testing.B) {
		c := startChild(b, b.TempDir(), "--log-level", "warn")
		s := &testServer{t: b, URL: c.URL}
		measure(b, s, s)
	})
	b.Run("cross-node", func(b *testing.B) {
		nodes := startCluster(b, 3)
		measure(b, nodes[0].srv, nodes[1].srv)
	})
}

func measure(b *testing.B, pub, sub *testServer) {
	for i := 0; i < b.N; i++ {
		st := sub.subscribe(b, "/ns/default/rooms/bench/events", "")
		st.connected()
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
		post := func(data string) {
			resp, err := client.Post(pub.URL+"/ns/default/rooms/bench/messages", "application/json", strings.NewReader(`{"event":"b","data":`+data+`}`))
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Fatalf("publish: %d", resp.StatusCode)
			}
		}
		// Latency at a steady rate.
		const n = 1000
		var lat []time.Duration
		done := make(chan struct{})
		go func() {
			defer close(done)
			for len(lat) < n {
				ev := st.Next(30 * time.Second)
				var env struct{ Data int64 }
				if err := json.Unmarshal([]byte(ev.Data), &env); err != nil {
					b.Error(err)
					return
				}
				lat = append(lat, time.Since(time.Unix(0, env.Data)))
			}
		}()
		tick := time.NewTicker(2 * time.Millisecond)
		for k := 0; k < n; k++ {
			<-tick.C
			post(fmt.Sprint(time.Now().UnixNano()))
		}
		tick.Stop()
		<-done
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(lat[n/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[n*99/100].Microseconds()), "p99-µs")
		// Throughput: 8 publishers × 500, until the subscriber has all.
		const pubs, each = 8, 500
		began := time.Now()
		var wg sync.WaitGroup
		for p := 0; p < pubs; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; k < each; k++ {
					post("0")
				}
			}()
		}
		for got := 0; got < pubs*each; got++ {
			st.Next(30 * time.Second)
		}
		wg.Wait()
		b.ReportMetric(float64(pubs*each)/time.Since(began).Seconds(), "msgs/s")
		st.Close()
	}
}
