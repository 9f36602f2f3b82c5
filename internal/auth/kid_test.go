package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// The attacks on kid binding (issue 18): a token's kid names the one key
// that may verify it, and that key's pinned algorithm is the only one it
// is checked with. Before the binding, a key without id verified tokens
// naming any kid, a non-string kid read as no kid, and a kid only picked
// keys out of a loop that tried every key.

const hsSecret2 = "fedcba9876543210fedcba9876543210"

// TestKidBindsKeyAndAlgorithm is the attack run's finding: an HS256 token
// naming an RS256 key's kid was accepted (by the HS256 key without id).
func TestKidBindsKeyAndAlgorithm(t *testing.T) {
	k := newKeys(t)
	rsa2 := testKeys(t).rsa2
	v, err := New(Config{Audience: "roomcast", Keys: []KeyConfig{
		{Alg: "HS256", Secret: hsSecret},
		{ID: "rs1", Alg: "RS256", PEMFile: k.rsaPEM},
		{ID: "hsA", Alg: "HS256", Secret: hsSecret2},
		{ID: "ps1", Alg: "PS256", PEMFile: writeFile(t, "ps1.pem", pemOf(t, &rsa2.PublicKey))},
	}}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, token, reason string
	}{
		{"HS256 naming the RS256 key's kid, signed with the secret of the key without id",
			sign(t, jwt.SigningMethodHS256, "rs1", []byte(hsSecret), claims(nil)), "pinned to another algorithm"},
		{"HS256 naming the RS256 key's kid, signed with the RS256 key's PEM bytes",
			sign(t, jwt.SigningMethodHS256, "rs1", k.rsaPEMb, claims(nil)), "pinned to another algorithm"},
		{"PS256 naming the RS256 key's kid, signed by that key (PS256 is accepted for ps1)",
			sign(t, jwt.SigningMethodPS256, "rs1", k.rsa, claims(nil)), "pinned to another algorithm"},
		{"RS256 naming the PS256 key's kid, signed by that key",
			sign(t, jwt.SigningMethodRS256, "ps1", rsa2, claims(nil)), "pinned to another algorithm"},
		{"HS256 naming another HS256 key's kid, signed with the key without id",
			sign(t, jwt.SigningMethodHS256, "hsA", []byte(hsSecret), claims(nil)), "signature"},
		{"kid naming no key, signed with the key without id",
			sign(t, jwt.SigningMethodHS256, "nobody", []byte(hsSecret), claims(nil)), "names no key"},
		{"kid naming no key, signed with hsA's secret",
			sign(t, jwt.SigningMethodHS256, "nobody", []byte(hsSecret2), claims(nil)), "names no key"},
		{"numeric kid, signed with the key without id",
			signHeader(t, jwt.SigningMethodHS256, map[string]any{"kid": 7}, []byte(hsSecret)), "kid"},
		{"empty kid, signed with the key without id",
			signHeader(t, jwt.SigningMethodHS256, map[string]any{"kid": ""}, []byte(hsSecret)), "kid"},
		{"null kid, signed with the key without id",
			signHeader(t, jwt.SigningMethodHS256, map[string]any{"kid": nil}, []byte(hsSecret)), "kid"},
		{"no kid, signed with hsA's secret (a key with an id is chosen by its kid only)",
			sign(t, jwt.SigningMethodHS256, "", []byte(hsSecret2), claims(nil)), "signature"},
		{"no kid, RS256 signed by the RS256 key (which has an id)",
			sign(t, jwt.SigningMethodRS256, "", k.rsa, claims(nil)), "no key without id"},
	} {
		_, err := v.Verify(c.token)
		if !errors.Is(err, ErrBadToken) || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%s: err %v, want ErrBadToken mentioning %q", c.name, err, c.reason)
		}
	}
	// The same keys, used as intended, verify.
	for name, tok := range map[string]string{
		"no kid, key without id": sign(t, jwt.SigningMethodHS256, "", []byte(hsSecret), claims(nil)),
		"kid rs1":                sign(t, jwt.SigningMethodRS256, "rs1", k.rsa, claims(nil)),
		"kid hsA":                sign(t, jwt.SigningMethodHS256, "hsA", []byte(hsSecret2), claims(nil)),
		"kid ps1":                sign(t, jwt.SigningMethodPS256, "ps1", rsa2, claims(nil)),
	} {
		if id, err := v.Verify(tok); err != nil || id.User != "alice" {
			t.Errorf("%s: %+v, %v; want alice", name, id, err)
		}
	}
}

// TestKidNeverFallsBackToAnotherKey: with two HMAC keys of the same
// algorithm, a token signed with one and naming the other is refused. A
// verifier that skips the kid check (tries every key of the alg) passes it.
func TestKidNeverFallsBackToAnotherKey(t *testing.T) {
	v, err := New(Config{Audience: "roomcast", Keys: []KeyConfig{
		{ID: "a", Alg: "HS256", Secret: hsSecret},
		{ID: "b", Alg: "HS256", Secret: hsSecret2},
	}}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		kid, secret string
		ok          bool
	}{
		{"a", hsSecret, true}, {"b", hsSecret2, true},
		{"a", hsSecret2, false}, {"b", hsSecret, false}, {"", hsSecret, false}, {"", hsSecret2, false},
	} {
		_, err := v.Verify(sign(t, jwt.SigningMethodHS256, c.kid, []byte(c.secret), claims(nil)))
		if (err == nil) != c.ok {
			t.Errorf("kid %q signed with %.4s…: err %v, want ok=%v", c.kid, c.secret, err, c.ok)
		}
	}
}

func noEnv(string) string { return "" }

// signHeader signs the default claims with extra header fields (a nil
// value is written as JSON null).
func signHeader(t *testing.T, method jwt.SigningMethod, header map[string]any, key any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims(nil))
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
