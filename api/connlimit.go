package api

import (
	"fmt"
	"sync"

	"github.com/roomcast/roomcast/internal/hub"
)

// connLimiter bounds open streams: on the node, per IP and per user.
type connLimiter struct {
	max int

	mu     sync.Mutex
	total  int
	perIP  map[string]int
	perUsr map[string]int
}

func newConnLimiter(max int) *connLimiter {
	return &connLimiter{max: max, perIP: map[string]int{}, perUsr: map[string]int{}}
}

// acquire takes a slot for a stream of ns from ip by user; release gives
// it back.
func (l *connLimiter) acquire(sec *Security, ns, ip, user string) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ipKey, userKey := ns+"/"+ip, ns+"/"+user
	switch {
	case l.max > 0 && l.total >= l.max:
		return nil, fmt.Errorf("this node holds its maximum of %d connections: %w", l.max, hub.ErrUnavailable)
	case sec.MaxConnsPerIP > 0 && l.perIP[ipKey] >= sec.MaxConnsPerIP:
		return nil, fmt.Errorf("%d connections from this address, the most allowed: %w", sec.MaxConnsPerIP, hub.ErrRateLimited)
	case user != "" && sec.MaxConnsPerUser > 0 && l.perUsr[userKey] >= sec.MaxConnsPerUser:
		return nil, fmt.Errorf("%d connections of this user, the most allowed: %w", sec.MaxConnsPerUser, hub.ErrRateLimited)
	}
	l.total++
	l.perIP[ipKey]++
	if user != "" {
		l.perUsr[userKey]++
	}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.total--
		if l.perIP[ipKey]--; l.perIP[ipKey] <= 0 {
			delete(l.perIP, ipKey)
		}
		if user != "" {
			if l.perUsr[userKey]--; l.perUsr[userKey] <= 0 {
				delete(l.perUsr, userKey)
			}
		}
	}, nil
}
