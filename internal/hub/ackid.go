package hub

import (
	"encoding/base64"
	"strings"
)

// wellFormedAckID reports whether s has the shape of an ack id (Hub.ackID):
// the base64url of a reply handle, a dot, the base64url of a 16-byte MAC, at
// most 1024 bytes in all. It tells a malformed id, a client's mistake
// answered 400, from a well-formed one that was issued to another
// connection (or forged), answered 403.
func wellFormedAckID(s string) bool {
	enc, mac, ok := strings.Cut(s, ".")
	if !ok || enc == "" || len(s) > 1024 {
		return false
	}
	if _, err := base64.RawURLEncoding.DecodeString(enc); err != nil {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(mac)
	return err == nil && len(b) == 16
}
