package fault

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// FreeAddr returns a loopback address (127.0.0.1:port) free now, for a
// process that must be given its address before it starts (a node that
// keeps it across restarts, a cluster's routes).
//
// The port is taken below the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range): a port picked with :0 and
// closed comes from that range, where any process binding :0 meanwhile —
// an embedded NATS server's client listener, say — can be given it first
// ("address already in use" at start). Below the range only processes
// that name their port explicitly compete, and this package hands out
// each port once per test binary.
func FreeAddr() (string, error) {
	lo := ephemeralLow()
	for range 1000 {
		port := 10000 + rand.IntN(max(1, lo-10000))
		if !take(port) {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr, nil
	}
	return "", fmt.Errorf("no free port below %d in 1000 tries", lo)
}

var (
	takenMu sync.Mutex
	taken   = map[int]bool{}
)

func take(port int) bool {
	takenMu.Lock()
	defer takenMu.Unlock()
	if taken[port] {
		return false
	}
	taken[port] = true
	return true
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768
// when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 10000 {
		return 32768
	}
	return n
}
