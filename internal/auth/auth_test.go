package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomcast/roomcast/internal/hub"
)

const hsSecret = "0123456789abcdef0123456789abcdef"

type keys struct {
	rsa     *rsa.PrivateKey
	ec      *ecdsa.PrivateKey
	ed      ed25519.PrivateKey
	rsaPEM  string // file
	edPEM   string
	jwks    string
	rsaPEMb []byte
}

func writePEM(t *testing.T, dir, name string, pub any) (string, []byte) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, b
}

func newKeys(t *testing.T) keys {
	t.Helper()
	dir := t.TempDir()
	var k keys
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	var edPub ed25519.PublicKey
	if edPub, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	k.rsaPEM, k.rsaPEMb = writePEM(t, dir, "rsa.pem", &k.rsa.PublicKey)
	k.edPEM, _ = writePEM(t, dir, "ed.pem", edPub)
	b64 := base64.RawURLEncoding.EncodeToString
	ecb, _ := k.ec.PublicKey.Bytes() // uncompressed: 0x04 || X || Y
	set := map[string]any{"keys": []map[string]string{{
		"kty": "EC", "kid": "ec1", "alg": "ES256", "use": "sig", "crv": "P-256",
		"x": b64(ecb[1:33]), "y": b64(ecb[33:]),
	}}}
	raw, _ := json.Marshal(set)
	k.jwks = filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(k.jwks, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

func verifier(t *testing.T, k keys) *Verifier {
	t.Helper()
	v, err := New(Config{
		Issuer: "https://issuer.test", Audience: "roomcast", Leeway: 5 * time.Second,
		Keys: []KeyConfig{
			{ID: "hs1", Alg: "HS256", Secret: hsSecret},
			{ID: "rs1", Alg: "RS256", PEMFile: k.rsaPEM},
			{ID: "ed1", Alg: "EdDSA", PEMFile: k.edPEM},
			{JWKSFile: k.jwks},
		},
		APIKeys: []string{"admin-key-0123456789"},
	}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func claims(mod func(c jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub": "alice", "aud": "roomcast", "iss": "https://issuer.test",
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
		"roomcast": map[string]any{"subscribe": []string{"orders.*"}, "publish": []string{"chat"}},
	}
	if mod != nil {
		mod(c)
	}
	return c
}

func sign(t *testing.T, method jwt.SigningMethod, kid string, key any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestVerifyAcceptsEachKeyKind: HS256, RS256, ES256 (from a JWKS file) and
// EdDSA tokens verify, and their claims become the identity.
func TestVerifyAcceptsEachKeyKind(t *testing.T) {
	k := newKeys(t)
	v := verifier(t, k)
	for name, tok := range map[string]string{
		"HS256": sign(t, jwt.SigningMethodHS256, "hs1", []byte(hsSecret), claims(nil)),
		"RS256": sign(t, jwt.SigningMethodRS256, "rs1", k.rsa, claims(nil)),
		"ES256": sign(t, jwt.SigningMethodES256, "ec1", k.ec, claims(nil)),
		"EdDSA": sign(t, jwt.SigningMethodEdDSA, "ed1", k.ed, claims(nil)),
	} {
		id, err := v.Verify(tok)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if id.User != "alice" || !id.Grants.Allowed(hub.ActSubscribe, "orders.eu") || id.Grants.Allowed(hub.ActSubscribe, "chat") {
			t.Errorf("%s: identity %+v", name, id)
		}
		if time.Until(id.Expires) < 59*time.Minute {
			t.Errorf("%s: expires %v", name, id.Expires)
		}
	}
}

// TestVerifyRefuses is the table of tokens that must never pass.
func TestVerifyRefuses(t *testing.T) {
	k := newKeys(t)
	v := verifier(t, k)
	now := time.Now()
	noneTok := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil))
		s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	cases := []struct {
		name, token, reason string
	}{
		{"alg none", noneTok(), "signature or algorithm"},
		{"HS256 signed with the RSA public key (algorithm confusion)", sign(t, jwt.SigningMethodHS256, "rs1", k.rsaPEMb, claims(nil)), "signature or algorithm"},
		{"HS256 confusion without kid", sign(t, jwt.SigningMethodHS256, "", k.rsaPEMb, claims(nil)), "signature or algorithm"},
		{"RS256 by another key", sign(t, jwt.SigningMethodRS256, "rs1", other, claims(nil)), "signature or algorithm"},
		{"HS256 with a wrong secret", sign(t, jwt.SigningMethodHS256, "hs1", []byte(strings.Repeat("x", 32)), claims(nil)), "signature or algorithm"},
		{"RS384 where RS256 is pinned", sign(t, jwt.SigningMethodRS384, "rs1", k.rsa, claims(nil)), "signature or algorithm"},
		{"expired", sign(t, jwt.SigningMethodHS256, "hs1", []byte(hsSecret), claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() })), "expired"},
		{"not valid yet", sign(t, jwt.SigningMethodHS256, "hs1", []byte(hsSecret), claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() })), "not valid yet"},
		{"issued in the future", sign(t, jwt.SigningMethodHS256, "hs1", []byte(hsSecret), claims(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Hour).Unix() })), "not valid yet"},
		{"no exp", sign(t, jwt.SigningMethodHS256, "hs1", []byte(hsSecret), claims(func(c jwt.MapClaims) { delete(c, "exp") })), "exp"},
		{"wrong audience", sign(t, jwt.SigningMethodHS256, "hs1", []byte(hsSecret), claims(func(c jwt.MapClaims) { c["aud"] = "billing" })), "audience"},
		{"no audience", sign(t, jwt.SigningMethodHS256, "hs1", []byte(hsSecret), claims(func(c jwt.MapClaims) { delete(c, "aud") })), "audience"},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, "hs1", []byte(hsSecret), claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.test" })), "issuer"},
		{"bad room pattern in claims", sign(t, jwt.SigningMethodHS256, "hs1", []byte(hsSecret), claims(func(c jwt.MapClaims) {
			c["roomcast"] = map[string]any{"subscribe": []string{"a b"}}
		})), "pattern"},
		{"garbage", "eyJhbGciOi.not.a-token", "malformed"},
		{"too long", "eyJ" + strings.Repeat("a", MaxTokenLen) + ".b.c", "longer"},
	}
	for _, c := range cases {
		_, err := v.Verify(c.token)
		if !errors.Is(err, ErrBadToken) || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%s: err %v, want ErrBadToken mentioning %q", c.name, err, c.reason)
		}
	}
	// Leeway: expired 2 s ago is still accepted with 5 s of leeway.
	if _, err := v.Verify(sign(t, jwt.SigningMethodHS256, "hs1", []byte(hsSecret), claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-2 * time.Second).Unix() }))); err != nil {
		t.Errorf("within leeway: %v", err)
	}
}

func TestAPIKeys(t *testing.T) {
	v := verifier(t, newKeys(t))
	for key, want := range map[string]bool{"admin-key-0123456789": true, "admin-key-012345678": false, "": false, "x": false} {
		if got := v.APIKey(key); got != want {
			t.Errorf("APIKey(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestNewRefusesWeakOrAmbiguousKeys(t *testing.T) {
	k := newKeys(t)
	env := func(n string) string { return map[string]string{"SHORT": "short"}[n] }
	for name, cfg := range map[string]Config{
		"short secret":         {Audience: "a", Keys: []KeyConfig{{Alg: "HS256", Secret: "short"}}},
		"short secret via env": {Audience: "a", Keys: []KeyConfig{{Alg: "HS256", SecretEnv: "SHORT"}}},
		"secret with RS alg":   {Audience: "a", Keys: []KeyConfig{{Alg: "RS256", Secret: hsSecret}}},
		"RSA PEM with ES alg":  {Audience: "a", Keys: []KeyConfig{{Alg: "ES256", PEMFile: k.rsaPEM}}},
		"no alg":               {Audience: "a", Keys: []KeyConfig{{PEMFile: k.rsaPEM}}},
		"two sources":          {Audience: "a", Keys: []KeyConfig{{Alg: "HS256", Secret: hsSecret, PEMFile: k.rsaPEM}}},
		"no audience":          {Keys: []KeyConfig{{Alg: "HS256", Secret: hsSecret}}},
		"short API key":        {APIKeys: []string{"short"}},
	} {
		if _, err := New(cfg, env); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, room string
		want          bool
	}{
		{"chat", "chat", true}, {"chat", "chat.x", false}, {"orders.*", "orders.eu", true},
		{"orders.*", "orders", false}, {"orders.*", "orders.eu.paris", false}, {"orders.>", "orders.eu.paris", true},
		{"orders.>", "orders", false}, {">", "anything.at.all", true}, {"*", "one", true}, {"*", "one.two", false},
		{"*.eu", "orders.eu", true}, {"*.eu", "orders.us", false},
	} {
		if got := Match(c.pattern, c.room); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.room, got, c.want)
		}
		if got := matchSplit(c.pattern, c.room); got != c.want {
			t.Errorf("matchSplit(%q, %q) = %v, want %v", c.pattern, c.room, got, c.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { Match("orders.*.>", "orders.eu.paris.1") }); n != 0 {
		t.Errorf("Match allocates %v times per call, want 0", n)
	}
}

// matchSplit is Match as first written (split both, compare segments): the
// oracle FuzzMatch holds the allocation-free Match to.
func matchSplit(pattern, room string) bool {
	if pattern == ">" {
		return room != ""
	}
	ps := strings.Split(pattern, ".")
	rs := strings.Split(room, ".")
	for i, p := range ps {
		if p == ">" {
			return i == len(ps)-1 && len(rs) > i
		}
		if i >= len(rs) {
			return false
		}
		if p != "*" && p != rs[i] {
			return false
		}
	}
	return len(rs) == len(ps)
}

// FuzzMatch: Match agrees with matchSplit on any pattern and room, valid or
// not (go test -fuzz FuzzMatch ./internal/auth).
func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"a.>", "a.b"}, {"a.>", "a."}, {"a.>.b", "a.x.b"}, {">", ""}, {"*", ""}, {"", ""}, {".", "."},
		{"a..b", "a..b"}, {"a.*", "a."}, {"*.*", "x"}, {"a.b", "a.b.c"}, {"a.b.c", "a.b"}, {">.>", "a.b"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, room string) {
		if got, want := Match(pattern, room), matchSplit(pattern, room); got != want {
			t.Fatalf("Match(%q, %q) = %v, split says %v", pattern, room, got, want)
		}
	})
}

func TestGrants(t *testing.T) {
	g := Grants{Subscribe: []string{"a.*"}, Join: []string{"b"}, Ack: []string{"q"}}
	for _, c := range []struct {
		a    hub.Action
		room string
		want bool
	}{
		{hub.ActSubscribe, "a.x", true}, {hub.ActSubscribe, "b", false}, {hub.ActJoin, "b", true},
		{hub.ActPublish, "a.x", false}, {hub.ActAck, "q", true}, {hub.ActAdmin, "", false}, {hub.ActPresence, "a.x", false},
	} {
		if got := g.Allowed(c.a, c.room); got != c.want {
			t.Errorf("Allowed(%s, %q) = %v, want %v", c.a, c.room, got, c.want)
		}
	}
	if !(Grants{Admin: true}).Allowed(hub.ActAdmin, "") {
		t.Error("admin cannot admin")
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.sig")
	f.Add("a.b.c")
	f.Add("")
	v, err := New(Config{Audience: "roomcast", Keys: []KeyConfig{{Alg: "HS256", Secret: hsSecret}}}, func(string) string { return "" })
	if err != nil {
		f.Fatal(err)
	}
	// Signed with the right secret, but each names a key the verifier must
	// not use (kid binding): none may verify, nor any mutation of them.
	for _, h := range []map[string]any{{"kid": "other"}, {"kid": 7}, {"kid": ""}, {"kid": nil}, {"alg": "HS384"}} {
		method := jwt.SigningMethodHS256
		if h["alg"] == "HS384" {
			method = jwt.SigningMethodHS384
			delete(h, "alg")
		}
		tok := jwt.NewWithClaims(method, claims(nil))
		for k, x := range h {
			tok.Header[k] = x
		}
		s, err := tok.SignedString([]byte(hsSecret))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		if _, err := v.Verify(token); err == nil {
			t.Fatalf("an unsigned fuzz input verified: %q", token)
		}
	})
}
