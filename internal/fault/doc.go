// Package fault holds what roomcast's fault tests share: today a small
// volume (a tmpfs mounted as root) to fill and free for disk-full tests.
//
// Nothing here is imported by the server; it imports none of its packages.
package fault
