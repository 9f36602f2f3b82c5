package main

import (
	"net"
	"strconv"

	"github.com/roomcast/roomcast/api"
)

// listenerURL describes where the server listens, truthfully: a URL (with
// scheme, http or https) that can be opened from this machine, and who else
// can reach it. A wildcard listener (":8080", "0.0.0.0:8080", "[::]:8080")
// is named by localhost, since its own address cannot be opened, and said
// to listen on every interface.
func listenerURL(scheme string, a net.Addr) (url, reach string) {
	t, ok := a.(*net.TCPAddr)
	if !ok {
		return scheme + "://" + a.String(), "this address only"
	}
	port := strconv.Itoa(t.Port)
	switch {
	case t.IP == nil || t.IP.IsUnspecified():
		return scheme + "://" + net.JoinHostPort("localhost", port), "every interface of this machine, port " + port + ": other machines can reach it"
	case t.IP.IsLoopback():
		return scheme + "://" + net.JoinHostPort(t.IP.String(), port), "loopback only: this machine alone can reach it"
	default:
		return scheme + "://" + net.JoinHostPort(t.IP.String(), port), "this address only"
	}
}

// beyondLoopback reports whether other machines may reach a listener on a.
func beyondLoopback(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return !ok || t.IP == nil || !t.IP.IsLoopback()
}

// exposedOpen lists the open namespaces (no auth) that other machines can
// reach through a listener on a: anyone there may subscribe, publish and
// read their history, which start-up warns about.
func exposedOpen(a net.Addr, namespaces []api.Namespace) []string {
	if !beyondLoopback(a) {
		return nil
	}
	var open []string
	for _, n := range namespaces {
		if !n.Security.Locked {
			open = append(open, n.Name)
		}
	}
	return open
}
