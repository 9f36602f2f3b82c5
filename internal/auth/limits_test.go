package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomcast/roomcast/internal/hub"
)

// TestLimitsAtTheirEdges: each bound takes the value at the limit and
// refuses the next one, so that a bound off by one fails here.
func TestLimitsAtTheirEdges(t *testing.T) {
	// API keys: 16 characters is the shortest accepted.
	if _, err := New(Config{APIKeys: []string{strings.Repeat("k", 15)}}, noEnv); err == nil || err.Error() != "api key shorter than 16 characters" {
		t.Errorf("15-character API key: %v", err)
	}
	atLimit := strings.Repeat("k", MaxTokenLen)
	v, err := New(Config{APIKeys: []string{strings.Repeat("k", 16), atLimit, atLimit + "k"}}, noEnv)
	if err != nil {
		t.Fatalf("API keys of 16 and %d characters: %v", MaxTokenLen, err)
	}
	for key, want := range map[string]bool{
		strings.Repeat("k", 16): true, strings.Repeat("k", 17): false,
		atLimit: true, atLimit + "k": false, // configured, but longer than any credential read
	} {
		if got := v.APIKey(key); got != want {
			t.Errorf("APIKey(%d characters) = %v, want %v", len(key), got, want)
		}
	}
	// API keys alone need no audience, and such a namespace takes no JWT.
	if _, err := v.Verify(sign(t, jwt.SigningMethodHS256, "", []byte(hsSecret), claims(nil))); !errors.Is(err, ErrBadToken) || !strings.Contains(err.Error(), "accepts no JWT") {
		t.Errorf("JWT in a namespace of API keys only: %v", err)
	}
	if (&Verifier{}).APIKey(strings.Repeat("k", 16)) {
		t.Error("a verifier without API keys accepted one")
	}

	v, err = New(Config{Audience: "roomcast", Keys: []KeyConfig{{Alg: "HS256", Secret: hsSecret}}}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	// A token of exactly MaxTokenLen bytes verifies; one byte more does not.
	pad := func(n int) string {
		c := claims(func(c jwt.MapClaims) { c["pad"] = "" })
		base := len(sign(t, jwt.SigningMethodHS256, "", []byte(hsSecret), c))
		// base64url: 3 bytes of claims become 4 characters; aim, then trim.
		for extra := (n - base) * 3 / 4; ; extra++ {
			c["pad"] = strings.Repeat("p", extra)
			if tok := sign(t, jwt.SigningMethodHS256, "", []byte(hsSecret), c); len(tok) >= n {
				return tok
			}
		}
	}
	exact := pad(MaxTokenLen)
	if len(exact) != MaxTokenLen { // base64url skips some lengths: the claims' size was chosen to fit
		t.Fatalf("no token of exactly %d bytes (got %d)", MaxTokenLen, len(exact))
	}
	mustVerify(t, v, "token of MaxTokenLen bytes", exact)
	mustRefuse(t, v, "token of MaxTokenLen+1 bytes", pad(MaxTokenLen+1), "longer than")

	// sub: 256 bytes accepted, 257 refused.
	mustRefuse(t, v, "sub of 257 bytes", sign(t, jwt.SigningMethodHS256, "", []byte(hsSecret), claims(func(c jwt.MapClaims) { c["sub"] = strings.Repeat("s", 257) })), "sub longer than 256")
	if id, err := v.Verify(sign(t, jwt.SigningMethodHS256, "", []byte(hsSecret), claims(func(c jwt.MapClaims) { c["sub"] = strings.Repeat("s", 256) }))); err != nil || len(id.User) != 256 {
		t.Errorf("sub of 256 bytes: %q, %v", id.User, err)
	}
}

// TestClaimPatterns: room patterns in claims are room names with "*"
// segments and a last ">", at most two names long.
func TestClaimPatterns(t *testing.T) {
	v, err := New(Config{Audience: "roomcast", Keys: []KeyConfig{{Alg: "HS256", Secret: hsSecret}}}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", hub.MaxNameLen) + "." + strings.Repeat("b", hub.MaxNameLen-1) // 2*MaxNameLen
	for _, c := range []struct {
		pattern string
		ok      bool
	}{
		{">", true}, {"*", true}, {"a.>", true}, {"a.*.b", true}, {"*.>", true}, {long, true},
		{long + "b", false}, {">.a", false}, {"a.>.b", false}, {"a..b", false}, {"", false}, {"a b", false},
		{"a.>>", false}, {"**", false},
	} {
		tok := sign(t, jwt.SigningMethodHS256, "", []byte(hsSecret), claims(func(m jwt.MapClaims) {
			m["roomcast"] = map[string]any{"history": []string{"x"}, "ack": []string{c.pattern}}
		}))
		id, err := v.Verify(tok)
		switch {
		case c.ok && err != nil:
			t.Errorf("pattern %q: %v, want accepted", c.pattern, err)
		case c.ok && (len(id.Grants.Ack) != 1 || id.Grants.Ack[0] != c.pattern):
			t.Errorf("pattern %q: grants %+v", c.pattern, id.Grants)
		case !c.ok && (!errors.Is(err, ErrBadToken) || !strings.Contains(err.Error(), "bad room pattern")):
			t.Errorf("pattern %q: %v, want refused as a bad room pattern", c.pattern, err)
		}
	}
}

func TestLooksLikeJWT(t *testing.T) {
	for s, want := range map[string]bool{
		"eyJh.b.c": true, "eyJ..": true, "a.b.c": false, "eyJh.b": false, "eyJh.b.c.d": false, "eyJh": false, "": false,
		"xeyJ.b.c": false,
	} {
		if got := LooksLikeJWT(s); got != want {
			t.Errorf("LooksLikeJWT(%q) = %v, want %v", s, got, want)
		}
	}
}
