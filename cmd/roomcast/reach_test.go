package main

import (
	"net"
	"slices"
	"testing"

	"github.com/roomcast/roomcast/api"
)

// TestListenerURL: the start-up line names a URL that opens from this
// machine and says who else can reach the server, without binding to any
// address beyond loopback in the test.
func TestListenerURL(t *testing.T) {
	for _, c := range []struct {
		addr          *net.TCPAddr
		url, reach    string
		beyondLoopbak bool
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, "http://127.0.0.1:8080", "loopback only: this machine alone can reach it", false},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 8080}, "http://[::1]:8080", "loopback only: this machine alone can reach it", false},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 8080}, "http://localhost:8080", "every interface of this machine, port 8080: other machines can reach it", true},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 9000}, "http://localhost:9000", "every interface of this machine, port 9000: other machines can reach it", true},
		{&net.TCPAddr{Port: 8080}, "http://localhost:8080", "every interface of this machine, port 8080: other machines can reach it", true},
		{&net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 80}, "http://192.0.2.7:80", "this address only", true},
	} {
		url, reach := listenerURL("http", c.addr)
		if url != c.url || reach != c.reach || beyondLoopback(c.addr) != c.beyondLoopbak {
			t.Errorf("%v: %q, %q, beyond loopback %v; want %q, %q, %v", c.addr, url, reach, beyondLoopback(c.addr), c.url, c.reach, c.beyondLoopbak)
		}
	}
}

// TestExposedOpen: start-up warns about open namespaces only when other
// machines can reach the listener.
func TestExposedOpen(t *testing.T) {
	ns := []api.Namespace{{Name: "default"}, {Name: "secure", Security: api.Security{Locked: true}}, {Name: "chat"}}
	if got := exposedOpen(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, ns); got != nil {
		t.Errorf("loopback: %v, want no warning", got)
	}
	if got := exposedOpen(&net.TCPAddr{IP: net.IPv4zero, Port: 8080}, ns); !slices.Equal(got, []string{"default", "chat"}) {
		t.Errorf("all interfaces: %v, want default and chat", got)
	}
	if got := exposedOpen(&net.TCPAddr{IP: net.IPv4zero, Port: 8080}, ns[1:2]); got != nil {
		t.Errorf("all interfaces, locked namespaces only: %v, want no warning", got)
	}
}
