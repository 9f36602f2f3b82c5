package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// hist is a log-linear latency histogram of nanosecond values: exact below
// 64 ns, then 32 buckets per power of two (about 3% precision), up to ~2^45
// ns. Record is safe for concurrent use (atomic adds); readers shard over
// several hists so that tens of thousands of readers do not fight over one
// cache line.
type hist struct {
	counts [64 + 40*32]atomic.Uint64
	max    atomic.Int64
	n      atomic.Uint64
}

func bucketOf(v int64) int {
	if v < 64 {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	e := bits.Len64(uint64(v)) - 6 // ≥ 1
	m := uint64(v) >> uint(e)      // in [32, 64)
	i := 64 + (e-1)*32 + int(m-32)
	if i >= 64+40*32 {
		i = 64 + 40*32 - 1
	}
	return i
}

// valueOf returns the middle of bucket i.
func valueOf(i int) int64 {
	if i < 64 {
		return int64(i)
	}
	e := (i-64)/32 + 1
	m := int64((i-64)%32 + 32)
	lo := m << uint(e)
	return lo + (int64(1)<<uint(e))/2
}

func (h *hist) record(d time.Duration) {
	v := int64(d)
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// merge adds o into h (not concurrently with records into o).
func (h *hist) merge(o *hist) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(o.n.Load())
	if m := o.max.Load(); m > h.max.Load() {
		h.max.Store(m)
	}
}

// quantile returns the q-quantile (0 < q ≤ 1); the exact maximum for q = 1.
func (h *hist) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	if q >= 1 {
		return time.Duration(h.max.Load())
	}
	rank := uint64(math.Ceil(q * float64(n)))
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return time.Duration(min(valueOf(i), h.max.Load()))
		}
	}
	return time.Duration(h.max.Load())
}

// latency is a histogram summary in milliseconds, as reported.
type latency struct {
	N   uint64  `json:"n"`
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

func (h *hist) summary() *latency {
	if h.n.Load() == 0 {
		return nil
	}
	return &latency{N: h.n.Load(), P50: ms(h.quantile(0.5)), P90: ms(h.quantile(0.9)), P99: ms(h.quantile(0.99)), Max: ms(h.quantile(1))}
}

// shards is a set of hists recorded into by many goroutines and merged once.
type shards []*hist

func newShards(n int) shards {
	s := make(shards, n)
	for i := range s {
		s[i] = new(hist)
	}
	return s
}

func (s shards) of(i int) *hist { return s[i%len(s)] }

func (s shards) merged() *hist {
	out := new(hist)
	for _, h := range s {
		out.merge(h)
	}
	return out
}
