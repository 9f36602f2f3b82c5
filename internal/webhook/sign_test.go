package webhook

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"id":"wh_1","type":"room.occupied"}`)
	sig := Sign(testSecret, now, body)
	if !strings.HasPrefix(sig, "t=1800000000,v1=") || len(sig) != len("t=1800000000,v1=")+64 {
		t.Fatalf("signature %q: want t=<unix>,v1=<64 hex>", sig)
	}
	other := Sign([]byte("another secret of thirty-two bytes!"), now, body)
	for _, tc := range []struct {
		name   string
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"genuine", sig, body, now, nil},
		{"within the tolerance, late", sig, body, now.Add(DefaultTolerance), nil},
		{"within the tolerance, early (clock skew)", sig, body, now.Add(-DefaultTolerance), nil},
		{"rotation: one of several v1", other + ",v1=" + strings.TrimPrefix(sig, "t=1800000000,v1="), body, now, nil},
		{"unknown schemes ignored", sig + ",v0=zz", body, now, nil},
		{"tampered body", sig, []byte(`{"id":"wh_1","type":"room.vacated"}`), now, ErrMismatch},
		{"another secret", other, body, now, ErrMismatch},
		{"replayed later", sig, body, now.Add(DefaultTolerance + time.Second), ErrTooOld},
		{"timestamp moved", strings.Replace(sig, "t=1800000000", "t=1800000001", 1), body, now, ErrMismatch},
		{"no v1", "t=1800000000", body, now, ErrMalformed},
		{"no t", strings.TrimPrefix(sig, "t=1800000000,"), body, now, ErrMalformed},
		{"two t", "t=1,t=2,v1=" + strings.Repeat("0", 64), body, now, ErrMalformed},
		{"t with a sign", strings.Replace(sig, "t=", "t=+", 1), body, now, ErrMalformed},
		{"short v1", "t=1800000000,v1=abcd", body, now, ErrMalformed},
		{"not hex", "t=1800000000,v1=" + strings.Repeat("z", 64), body, now, ErrMalformed},
		{"empty", "", body, now, ErrMalformed},
		{"huge", strings.Repeat("v1=00,", 2000), body, now, ErrMalformed},
	} {
		if err := Verify(tc.header, tc.body, testSecret, DefaultTolerance, tc.now); !errors.Is(err, tc.want) && !(err == nil && tc.want == nil) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

// FuzzVerify: Verify never panics on any header, and what Sign makes for
// any body verifies — and fails for any other body.
func FuzzVerify(f *testing.F) {
	f.Add("t=1800000000,v1="+strings.Repeat("0", 64), []byte("{}"), int64(1_800_000_000))
	f.Add("t=1,v1=,v1", []byte(""), int64(0))
	f.Add(" t = 5 , v1 = x ", []byte("a"), int64(-5))
	f.Fuzz(func(t *testing.T, header string, body []byte, unix int64) {
		now := time.Unix(unix%(1<<40), 0)
		_ = Verify(header, body, testSecret, DefaultTolerance, now)
		sig := Sign(testSecret, now, body)
		if err := Verify(sig, body, testSecret, DefaultTolerance, now); err != nil {
			t.Fatalf("Verify(Sign(%q)) = %v", body, err)
		}
		if err := Verify(sig, append(body, 'x'), testSecret, DefaultTolerance, now); !errors.Is(err, ErrMismatch) {
			t.Fatalf("another body verified: %v", err)
		}
	})
}

// TestDefaultRetrySpan: by default a webhook's attempts span about 2.5 to
// 3 hours (the README says so): 1 s doubling to 15 min, 20 attempts.
func TestDefaultRetrySpan(t *testing.T) {
	s := &Service{cfg: DefaultConfig}
	var span time.Duration
	for n := 1; n < s.cfg.MaxAttempts; n++ {
		d := s.backoff(n, 0)
		base := min(time.Second<<(n-1), 15*time.Minute)
		if d < base || d > base+base/5 {
			t.Errorf("wait after attempt %d: %v, want %v plus at most 20%%", n, d, base)
		}
		span += d
	}
	if span < 150*time.Minute || span > 183*time.Minute {
		t.Errorf("attempts span %v, want about 2.5 to 3 hours", span)
	}
	if d := s.backoff(1, time.Minute); d != time.Minute {
		t.Errorf("a Retry-After of 1m after the first attempt: wait %v, want 1m", d)
	}
	if d := s.backoff(1, 24*time.Hour); d > 18*time.Minute {
		t.Errorf("a Retry-After of a day: wait %v, want at most max backoff (+20%%)", d)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "7": 7 * time.Second, "-1": 0, "soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("Retry-After %q: %v, want %v", v, got, want)
		}
	}
}
