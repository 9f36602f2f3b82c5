package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// The key-type tables (issue 20): every algorithm with each source of its
// key (PEM, JWKS, secret, secret_env), what each key must refuse, the EC
// signature encodings, JWKS "use", and the configurations New refuses.

// keySet holds test keys, generated once for the package (RSA is slow).
type keySet struct {
	rsa, rsa2 *rsa.PrivateKey
	rsaShort  *rsa.PrivateKey
	ec, ec2   map[string]*ecdsa.PrivateKey // by alg
	ed, ed2   ed25519.PrivateKey
}

var (
	testKeysOnce sync.Once
	testKeysVal  keySet
)

func testKeys(t *testing.T) keySet {
	t.Helper()
	testKeysOnce.Do(func() {
		k := &testKeysVal
		k.rsa = mustRSA(2048)
		k.rsa2 = mustRSA(2048)
		k.rsaShort = mustRSA(1024)
		k.ec, k.ec2 = map[string]*ecdsa.PrivateKey{}, map[string]*ecdsa.PrivateKey{}
		for alg, c := range map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()} {
			k.ec[alg] = mustEC(c)
			k.ec2[alg] = mustEC(c)
		}
		_, k.ed, _ = ed25519.GenerateKey(rand.Reader)
		_, k.ed2, _ = ed25519.GenerateKey(rand.Reader)
	})
	if testKeysVal.rsa == nil || testKeysVal.ed == nil {
		t.Fatal("test keys not generated")
	}
	return testKeysVal
}

func mustRSA(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func mustEC(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// private is the signing key of alg in set (n = 1 or 2: two keys of a kind).
func (k keySet) private(alg string, n int) any {
	switch keyKind[alg] {
	case "rsa":
		return pick(n, k.rsa, k.rsa2)
	case "ed25519":
		return pick(n, k.ed, k.ed2)
	case "hmac":
		return pick(n, []byte(hsSecret), []byte(hsSecret2))
	}
	return pick(n, k.ec[alg], k.ec2[alg])
}

func pick[T any](n int, a, b T) T {
	if n == 2 {
		return b
	}
	return a
}

func publicOf(priv any) any {
	switch p := priv.(type) {
	case *rsa.PrivateKey:
		return &p.PublicKey
	case *ecdsa.PrivateKey:
		return &p.PublicKey
	case ed25519.PrivateKey:
		return p.Public()
	}
	panic("no public key")
}

// jwkOf is pub as a JWK with kid, alg and use ("" leaves a field out).
func jwkOf(t *testing.T, kid, alg, use string, pub any) map[string]string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	m := map[string]string{}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", b64(p.N.Bytes()), b64(big.NewInt(int64(p.E)).Bytes())
	case *ecdsa.PublicKey:
		raw, err := p.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		size := (len(raw) - 1) / 2
		m["kty"], m["crv"], m["x"], m["y"] = "EC", p.Curve.Params().Name, b64(raw[1:1+size]), b64(raw[1+size:])
	case ed25519.PublicKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", b64(p)
	default:
		t.Fatalf("jwkOf %T", pub)
	}
	for f, v := range map[string]string{"kid": kid, "alg": alg, "use": use} {
		if v != "" {
			m[f] = v
		}
	}
	return m
}

func writeJWKS(t *testing.T, keys ...map[string]string) string {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "jwks.json", raw)
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func pemOf(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// signWith signs the default claims with alg by key, naming kid ("": none).
func signWith(t *testing.T, alg, kid string, key any) string {
	t.Helper()
	return sign(t, jwt.GetSigningMethod(alg), kid, key, claims(nil))
}

// sibling is another algorithm of the same key kind, or "" (EdDSA has none).
var sibling = map[string]string{
	"HS256": "HS512", "HS384": "HS256", "HS512": "HS384",
	"RS256": "PS256", "RS384": "RS512", "RS512": "RS256", "PS256": "RS256", "PS384": "PS512", "PS512": "PS384",
	"ES256": "ES384", "ES384": "ES512", "ES512": "ES256",
}

func mustVerify(t *testing.T, v *Verifier, what, tok string) {
	t.Helper()
	id, err := v.Verify(tok)
	if err != nil {
		t.Errorf("%s: %v, want accepted", what, err)
		return
	}
	if id.User != "alice" || !id.Grants.Allowed("subscribe", "orders.x") {
		t.Errorf("%s: identity %+v", what, id)
	}
}

func mustRefuse(t *testing.T, v *Verifier, what, tok, reason string) {
	t.Helper()
	_, err := v.Verify(tok)
	if !errors.Is(err, ErrBadToken) || !strings.Contains(err.Error(), reason) {
		t.Errorf("%s: err %v, want ErrBadToken mentioning %q", what, err, reason)
	}
}

// TestKeyTypes: for each algorithm and each source of its key, a key bound
// to a kid verifies its own tokens and nothing else — not a token without
// kid, nor another kid, nor another algorithm of its kind, nor an HS token
// "signed" with its public bytes, nor another key's signature, nor a token
// whose claims were changed after signing; and the same key without id
// verifies tokens without kid and refuses tokens with one.
func TestKeyTypes(t *testing.T) {
	ks := testKeys(t)
	algs := []string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
	env := map[string]string{"SECRET": hsSecret}
	getenv := func(n string) string { return env[n] }
	for _, alg := range algs {
		priv := ks.private(alg, 1)
		sources := map[string]func(id string) KeyConfig{}
		var pubBytes []byte // what a confused verifier would take as an HMAC secret
		if keyKind[alg] == "hmac" {
			sources["secret"] = func(id string) KeyConfig { return KeyConfig{ID: id, Alg: alg, Secret: hsSecret} }
			sources["secret_env"] = func(id string) KeyConfig { return KeyConfig{ID: id, Alg: alg, SecretEnv: "SECRET"} }
		} else {
			pub := publicOf(priv)
			pubBytes = pemOf(t, pub)
			pemFile := writeFile(t, "key.pem", pubBytes)
			sources["pem"] = func(id string) KeyConfig { return KeyConfig{ID: id, Alg: alg, PEMFile: pemFile} }
			sources["jwks"] = func(id string) KeyConfig {
				return KeyConfig{JWKSFile: writeJWKS(t, jwkOf(t, id, alg, "sig", pub))}
			}
		}
		for src, kc := range sources {
			name := alg + " from " + src
			t.Run(name, func(t *testing.T) {
				v, err := New(Config{Audience: "roomcast", Keys: []KeyConfig{kc("k")}}, getenv)
				if err != nil {
					t.Fatal(err)
				}
				mustVerify(t, v, "own token", signWith(t, alg, "k", priv))
				mustRefuse(t, v, "no kid", signWith(t, alg, "", priv), "no key without id")
				mustRefuse(t, v, "another kid", signWith(t, alg, "k2", priv), "names no key")
				mustRefuse(t, v, "another key's signature", signWith(t, alg, "k", ks.private(alg, 2)), "signature")
				if s := sibling[alg]; s != "" {
					// The same key material, another algorithm of its kind
					// (an EC key of the sibling's curve: the header is what counts).
					mustRefuse(t, v, s+" by a key of the same kind", signWith(t, s, "k", ks.private(s, 1)), "algorithm")
				}
				if pubBytes != nil {
					mustRefuse(t, v, "HS256 signed with the public key's PEM", signWith(t, "HS256", "k", pubBytes), "algorithm")
				}
				tok := signWith(t, alg, "k", priv)
				parts := strings.Split(tok, ".")
				payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
				parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"alice"`, `"mallory"`, 1)))
				mustRefuse(t, v, "claims changed after signing", strings.Join(parts, "."), "signature")

				v, err = New(Config{Audience: "roomcast", Keys: []KeyConfig{kc("")}}, getenv)
				if err != nil {
					t.Fatal(err)
				}
				mustVerify(t, v, "key without id, token without kid", signWith(t, alg, "", priv))
				mustRefuse(t, v, "key without id, token with kid", signWith(t, alg, "k", priv), "names no key")
			})
		}
	}
}

// TestKeyRotationWithoutIDs: two keys without id of one algorithm (a
// rotation) each verify their tokens; a third key's do not.
func TestKeyRotationWithoutIDs(t *testing.T) {
	ks := testKeys(t)
	jwks := writeJWKS(t, jwkOf(t, "", "ES256", "sig", &ks.ec["ES256"].PublicKey), jwkOf(t, "", "ES256", "", &ks.ec2["ES256"].PublicKey))
	v, err := New(Config{Audience: "roomcast", Keys: []KeyConfig{{JWKSFile: jwks}, {Alg: "HS256", Secret: hsSecret}}}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	mustVerify(t, v, "first ES256 key", signWith(t, "ES256", "", ks.ec["ES256"]))
	mustVerify(t, v, "second ES256 key", signWith(t, "ES256", "", ks.ec2["ES256"]))
	mustVerify(t, v, "HS256 key", signWith(t, "HS256", "", []byte(hsSecret)))
	mustRefuse(t, v, "a third ES256 key", signWith(t, "ES256", "", mustEC(elliptic.P256())), "signature")
	mustRefuse(t, v, "ES384 (no such key)", signWith(t, "ES384", "", ks.ec["ES384"]), "signature or algorithm")
}

// TestECSignatureEncoding: a JWS ECDSA signature is r||s, each left-padded
// to the curve's size. A valid signature whose r starts with a zero byte
// verifies; the same without its padding, with an extra byte, truncated,
// DER-encoded (as crypto/ecdsa writes it), with r and s swapped, of another
// curve's length or empty, does not.
func TestECSignatureEncoding(t *testing.T) {
	ks := testKeys(t)
	for _, alg := range []string{"ES256", "ES384", "ES512"} {
		t.Run(alg, func(t *testing.T) {
			priv := ks.ec[alg]
			v, err := New(Config{Audience: "roomcast", Keys: []KeyConfig{{JWKSFile: writeJWKS(t, jwkOf(t, "e", alg, "sig", &priv.PublicKey))}}}, noEnv)
			if err != nil {
				t.Fatal(err)
			}
			size := jwt.GetSigningMethod(alg).(*jwt.SigningMethodECDSA).KeySize
			// Sign until r has a leading zero byte (1 in 256 for P-256 and
			// P-384, about 1 in 2 for P-521's 66 bytes); bounded.
			var tok string
			var sig []byte
			for i := 0; i < 20000; i++ {
				tok = signWith(t, alg, "e", priv)
				sig, _ = base64.RawURLEncoding.DecodeString(tok[strings.LastIndexByte(tok, '.')+1:])
				if sig[0] == 0 {
					break
				}
			}
			if len(sig) != 2*size || sig[0] != 0 {
				t.Fatalf("no signature with a zero first byte (len %d, want %d)", len(sig), 2*size)
			}
			mustVerify(t, v, "r with a leading zero byte", tok)
			head := tok[:strings.LastIndexByte(tok, '.')+1]
			with := func(s []byte) string { return head + base64.RawURLEncoding.EncodeToString(s) }
			r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
			der, err := asn1.Marshal(struct{ R, S *big.Int }{r, s})
			if err != nil {
				t.Fatal(err)
			}
			resized := make([]byte, 2*map[string]int{"ES256": 48, "ES384": 66, "ES512": 32}[alg]) // another curve's r||s length
			copy(resized, sig)
			// Another token's signature (sub changed, so it differs even
			// when iat and exp coincide) on this token's header and claims.
			other := mustSig(t, sign(t, jwt.GetSigningMethod(alg), "e", priv, claims(func(c jwt.MapClaims) { c["sub"] = "bob" })))
			for name, bad := range map[string][]byte{
				"r without its padding":   append(append([]byte{}, sig[1:size]...), sig[size:]...),
				"an extra leading byte":   append([]byte{0}, sig...),
				"an extra trailing byte":  append(append([]byte{}, sig...), 0),
				"truncated by one byte":   sig[:len(sig)-1],
				"DER-encoded":             der,
				"r and s swapped":         append(append([]byte{}, sig[size:]...), sig[:size]...),
				"another curve's length":  resized,
				"empty":                   {},
				"all zero of right size":  make([]byte, 2*size),
				"r||s of another message": other,
			} {
				mustRefuse(t, v, name, with(bad), "signature")
			}
		})
	}
}

func mustSig(t *testing.T, tok string) []byte {
	t.Helper()
	sig, err := base64.RawURLEncoding.DecodeString(tok[strings.LastIndexByte(tok, '.')+1:])
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// TestJWKSUse: keys whose use is "sig" or unset verify; an "enc" key is
// left out (its kid names no key), and a set of only enc keys is refused.
func TestJWKSUse(t *testing.T) {
	ks := testKeys(t)
	rsaPub, edPub, ecPub := &ks.rsa.PublicKey, ks.ed.Public(), &ks.ec["ES256"].PublicKey
	v, err := New(Config{Audience: "roomcast", Keys: []KeyConfig{{JWKSFile: writeJWKS(t,
		jwkOf(t, "sig", "RS256", "sig", rsaPub),
		jwkOf(t, "unset", "EdDSA", "", edPub),
		jwkOf(t, "enc", "ES256", "enc", ecPub),
		jwkOf(t, "sig2", "ES256", "sig", &ks.ec2["ES256"].PublicKey), // ES256 is accepted: the enc kid is what fails
	)}}}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	mustVerify(t, v, "use sig", signWith(t, "RS256", "sig", ks.rsa))
	mustVerify(t, v, "use unset", signWith(t, "EdDSA", "unset", ks.ed))
	mustRefuse(t, v, "use enc", signWith(t, "ES256", "enc", ks.ec["ES256"]), "names no key")
	mustVerify(t, v, "use sig, ES256", signWith(t, "ES256", "sig2", ks.ec2["ES256"]))

	_, err = New(Config{Audience: "roomcast", Keys: []KeyConfig{{JWKSFile: writeJWKS(t, jwkOf(t, "enc", "ES256", "enc", ecPub))}}}, noEnv)
	if err == nil || !strings.Contains(err.Error(), "no signing key") {
		t.Errorf("a JWKS of only enc keys: %v, want refused with no signing key", err)
	}
}

// TestNewRefusesKeys is the table of key configurations New refuses, each
// with the words that tell the operator what is wrong.
func TestNewRefusesKeys(t *testing.T) {
	ks := testKeys(t)
	rsaPub, edPub := &ks.rsa.PublicKey, ks.ed.Public()
	p256, p384 := &ks.ec["ES256"].PublicKey, &ks.ec["ES384"].PublicKey
	pemFile := func(pub any) string { return writeFile(t, "key.pem", pemOf(t, pub)) }
	jwks := func(keys ...map[string]string) string { return writeJWKS(t, keys...) }
	rawJWKS := func(s string) string { return writeFile(t, "jwks.json", []byte(s)) }
	privDER, err := x509.MarshalPKCS8PrivateKey(ks.rsa)
	if err != nil {
		t.Fatal(err)
	}
	withField := func(m map[string]string, f, v string) map[string]string {
		out := map[string]string{}
		for k, x := range m {
			out[k] = x
		}
		if v == "" {
			delete(out, f)
		} else {
			out[f] = v
		}
		return out
	}
	rsaJWK := jwkOf(t, "r", "RS256", "sig", rsaPub)
	ecJWK := jwkOf(t, "e", "ES256", "sig", p256)
	edJWK := jwkOf(t, "d", "EdDSA", "sig", edPub)
	b64 := base64.RawURLEncoding.EncodeToString
	missing := filepath.Join(t.TempDir(), "missing")
	for _, c := range []struct {
		name string
		keys []KeyConfig
		want string
	}{
		// alg and key type (kty) must fit.
		{"PEM RSA key with ES256", []KeyConfig{{Alg: "ES256", PEMFile: pemFile(rsaPub)}}, "does not verify ES256"},
		{"PEM RSA key with EdDSA", []KeyConfig{{Alg: "EdDSA", PEMFile: pemFile(rsaPub)}}, "does not verify EdDSA"},
		{"PEM RSA key with HS256", []KeyConfig{{Alg: "HS256", PEMFile: pemFile(rsaPub)}}, "does not verify HS256"},
		{"PEM P-256 key with ES384", []KeyConfig{{Alg: "ES384", PEMFile: pemFile(p256)}}, "P-256 does not verify ES384"},
		{"PEM P-384 key with ES512", []KeyConfig{{Alg: "ES512", PEMFile: pemFile(p384)}}, "P-384 does not verify ES512"},
		{"PEM P-256 key with RS256", []KeyConfig{{Alg: "RS256", PEMFile: pemFile(p256)}}, "P-256 does not verify RS256"},
		{"PEM Ed25519 key with RS256", []KeyConfig{{Alg: "RS256", PEMFile: pemFile(edPub)}}, "does not verify RS256"},
		{"PEM Ed25519 key with ES256", []KeyConfig{{Alg: "ES256", PEMFile: pemFile(edPub)}}, "does not verify ES256"},
		{"PEM RSA key of 1024 bits", []KeyConfig{{Alg: "RS256", PEMFile: pemFile(&ks.rsaShort.PublicKey)}}, "1024 bits, shorter than 2048"},
		{"secret with RS256", []KeyConfig{{Alg: "RS256", Secret: hsSecret}}, "HS algorithm, not RS256"},
		{"secret with EdDSA", []KeyConfig{{Alg: "EdDSA", Secret: hsSecret}}, "HS algorithm, not EdDSA"},
		{"secret with alg none", []KeyConfig{{Alg: "none", Secret: hsSecret}}, `alg "none"`},
		{"secret without alg", []KeyConfig{{Secret: hsSecret}}, `alg ""`},
		{"secret of 31 bytes", []KeyConfig{{Alg: "HS256", Secret: hsSecret[:31]}}, "shorter than 32"},
		{"JWKS RSA key with ES256", []KeyConfig{{JWKSFile: jwks(withField(rsaJWK, "alg", "ES256"))}}, "kty RSA): a *rsa.PublicKey does not verify ES256"},
		{"JWKS RSA key with HS256", []KeyConfig{{JWKSFile: jwks(withField(rsaJWK, "alg", "HS256"))}}, "does not verify HS256"},
		{"JWKS EC P-256 key with ES512", []KeyConfig{{JWKSFile: jwks(withField(ecJWK, "alg", "ES512"))}}, "P-256 does not verify ES512"},
		{"JWKS EC key with RS256", []KeyConfig{{JWKSFile: jwks(withField(ecJWK, "alg", "RS256"))}}, "does not verify RS256"},
		{"JWKS OKP key with ES256", []KeyConfig{{JWKSFile: jwks(withField(edJWK, "alg", "ES256"))}}, "does not verify ES256"},
		{"JWKS key without alg", []KeyConfig{{JWKSFile: jwks(withField(rsaJWK, "alg", ""))}}, "alg is required"},
		{"JWKS key with alg none", []KeyConfig{{JWKSFile: jwks(withField(rsaJWK, "alg", "none"))}}, `alg "none"`},
		{"JWKS RSA key of 1024 bits", []KeyConfig{{JWKSFile: jwks(jwkOf(t, "r", "RS256", "", &ks.rsaShort.PublicKey))}}, "shorter than 2048"},
		// kid binding: an id names one key.
		{"two keys with one id", []KeyConfig{{ID: "k", Alg: "HS256", Secret: hsSecret}, {ID: "k", Alg: "RS256", PEMFile: pemFile(rsaPub)}}, `id "k" names another key`},
		{"a JWKS kid equal to a configured id", []KeyConfig{{ID: "r", Alg: "HS256", Secret: hsSecret}, {JWKSFile: jwks(rsaJWK)}}, `jwt key 1: id "r" names another key`},
		{"a JWKS with one kid twice", []KeyConfig{{JWKSFile: jwks(rsaJWK, withField(ecJWK, "kid", "r"))}}, `id "r" names another key`},
		{"jwks_file with an id", []KeyConfig{{ID: "x", JWKSFile: jwks(rsaJWK)}}, "leave id and alg out"},
		{"jwks_file with an alg", []KeyConfig{{Alg: "RS256", JWKSFile: jwks(rsaJWK)}}, "leave id and alg out"},
		// Sources.
		{"no source", []KeyConfig{{Alg: "HS256"}}, "exactly one of"},
		{"two sources", []KeyConfig{{Alg: "HS256", Secret: hsSecret, SecretEnv: "X"}}, "exactly one of"},
		{"PEM file missing", []KeyConfig{{Alg: "RS256", PEMFile: missing}}, "no such file"},
		{"PEM file without a block", []KeyConfig{{Alg: "RS256", PEMFile: writeFile(t, "x.pem", []byte("not pem"))}}, "no PEM block"},
		{"PEM private key", []KeyConfig{{Alg: "RS256", PEMFile: writeFile(t, "x.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))}}, "want a PKIX public key"},
		{"JWKS file missing", []KeyConfig{{JWKSFile: missing}}, "no such file"},
		{"JWKS not JSON", []KeyConfig{{JWKSFile: rawJWKS("{")}}, "jwks_file:"},
		{"JWKS without keys", []KeyConfig{{JWKSFile: rawJWKS(`{"keys":[]}`)}}, "no signing key"},
		{"JWKS kty oct", []KeyConfig{{JWKSFile: rawJWKS(`{"keys":[{"kty":"oct","alg":"HS256","k":"c2VjcmV0"}]}`)}}, `kty "oct"`},
		{"JWKS RSA n not base64url", []KeyConfig{{JWKSFile: jwks(withField(rsaJWK, "n", "!!"))}}, "n: bad base64url"},
		{"JWKS RSA n empty", []KeyConfig{{JWKSFile: jwks(withField(rsaJWK, "n", ""))}}, "n: bad base64url"},
		{"JWKS RSA e missing", []KeyConfig{{JWKSFile: jwks(withField(rsaJWK, "e", ""))}}, "bad exponent"},
		{"JWKS RSA e of 9 bytes", []KeyConfig{{JWKSFile: jwks(withField(rsaJWK, "e", b64([]byte{1, 0, 0, 0, 0, 0, 0, 0, 1})))}}, "bad exponent"},
		{"JWKS EC curve P-192", []KeyConfig{{JWKSFile: jwks(withField(ecJWK, "crv", "P-192"))}}, `curve "P-192"`},
		{"JWKS EC x not base64url", []KeyConfig{{JWKSFile: jwks(withField(ecJWK, "x", "!!"))}}, "bad EC coordinates"},
		{"JWKS EC y not base64url", []KeyConfig{{JWKSFile: jwks(withField(ecJWK, "y", "!!"))}}, "bad EC coordinates"},
		{"JWKS EC x longer than the curve", []KeyConfig{{JWKSFile: jwks(withField(ecJWK, "x", b64(append([]byte{0}, mustB64(t, ecJWK["x"])...))))}}, "bad EC coordinates"},
		{"JWKS EC y longer than the curve", []KeyConfig{{JWKSFile: jwks(withField(ecJWK, "y", b64(append([]byte{0}, mustB64(t, ecJWK["y"])...))))}}, "bad EC coordinates"},
		{"JWKS EC point not on the curve", []KeyConfig{{JWKSFile: jwks(withField(ecJWK, "y", b64([]byte{1})))}}, "jwks_file key 0"},
		{"JWKS EC P-384 x on P-256", []KeyConfig{{JWKSFile: jwks(withField(ecJWK, "x", jwkOf(t, "", "", "", p384)["x"]))}}, "jwks_file key 0"},
		{"JWKS OKP curve X25519", []KeyConfig{{JWKSFile: jwks(withField(edJWK, "crv", "X25519"))}}, `curve "X25519"`},
		{"JWKS OKP x of 31 bytes", []KeyConfig{{JWKSFile: jwks(withField(edJWK, "x", b64(make([]byte, 31))))}}, "bad Ed25519 key"},
		{"JWKS OKP x not base64url", []KeyConfig{{JWKSFile: jwks(withField(edJWK, "x", "!!"))}}, "bad Ed25519 key"},
	} {
		_, err := New(Config{Audience: "roomcast", Keys: c.keys}, noEnv)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want refused mentioning %q", c.name, err, c.want)
		}
	}
}

// TestKeysFromEachSource: a namespace with keys from a secret, secret_env,
// PEM files of each type and a JWKS file verifies each key's tokens by kid,
// and EC coordinates shorter than the curve (leading zeros dropped, as some
// JWKS writers do) are padded.
func TestKeysFromEachSource(t *testing.T) {
	ks := testKeys(t)
	// An EC key whose x starts with a zero byte, found in bounded tries.
	var short *ecdsa.PrivateKey
	for i := 0; i < 5000 && short == nil; i++ {
		k := mustEC(elliptic.P256())
		if raw, _ := k.PublicKey.Bytes(); raw[1] == 0 {
			short = k
		}
	}
	if short == nil {
		t.Fatal("no P-256 key with a leading zero in x")
	}
	shortJWK := jwkOf(t, "short", "ES256", "sig", &short.PublicKey)
	x, _ := base64.RawURLEncoding.DecodeString(shortJWK["x"])
	shortJWK["x"] = base64.RawURLEncoding.EncodeToString(x[1:])
	v, err := New(Config{Audience: "roomcast", Keys: []KeyConfig{
		{ID: "hs", Alg: "HS384", Secret: hsSecret},
		{ID: "hsenv", Alg: "HS512", SecretEnv: "S"},
		{ID: "rs", Alg: "PS384", PEMFile: writeFile(t, "rs.pem", pemOf(t, &ks.rsa.PublicKey))},
		{ID: "ec", Alg: "ES384", PEMFile: writeFile(t, "ec.pem", pemOf(t, &ks.ec["ES384"].PublicKey))},
		{ID: "ed", Alg: "EdDSA", PEMFile: writeFile(t, "ed.pem", pemOf(t, ks.ed.Public()))},
		{JWKSFile: writeJWKS(t, shortJWK, jwkOf(t, "jrs", "RS512", "sig", &ks.rsa2.PublicKey))},
	}}, func(n string) string { return map[string]string{"S": hsSecret2}[n] })
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		alg, kid string
		key      any
	}{
		{"HS384", "hs", []byte(hsSecret)}, {"HS512", "hsenv", []byte(hsSecret2)}, {"PS384", "rs", ks.rsa},
		{"ES384", "ec", ks.ec["ES384"]}, {"EdDSA", "ed", ks.ed}, {"ES256", "short", short}, {"RS512", "jrs", ks.rsa2},
	} {
		mustVerify(t, v, c.alg+" kid "+c.kid, signWith(t, c.alg, c.kid, c.key))
	}
	// Each kid takes its own key only: the PS384 kid with the JWKS RSA key.
	mustRefuse(t, v, "rs kid signed by the jrs key", signWith(t, "PS384", "rs", ks.rsa2), "signature")
	mustRefuse(t, v, "hsenv kid signed with hs's secret", signWith(t, "HS512", "hsenv", []byte(hsSecret)), "signature")
}

// TestSecretEnvWording (issue 14): an unset or empty secret_env variable is
// named and said to be unset, not "shorter than 32 bytes"; a short secret
// gives the variable and its length, never the secret.
func TestSecretEnvWording(t *testing.T) {
	env := map[string]string{"EMPTY": "", "SHORT": "tooshort", "EXACT": hsSecret, "LONG": hsSecret + "x"}
	getenv := func(n string) string { return env[n] }
	for _, c := range []struct{ variable, want string }{
		{"UNSET", "jwt key 0: secret_env: the environment variable UNSET is unset or empty; set it to an HMAC secret of at least 32 bytes"},
		{"EMPTY", "jwt key 0: secret_env: the environment variable EMPTY is unset or empty; set it to an HMAC secret of at least 32 bytes"},
		{"SHORT", "jwt key 0: secret_env: the HMAC secret in SHORT is 8 bytes, shorter than 32"},
		{"EXACT", ""}, {"LONG", ""},
	} {
		v, err := New(Config{Audience: "roomcast", Keys: []KeyConfig{{Alg: "HS256", SecretEnv: c.variable}}}, getenv)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.variable, err)
				continue
			}
			mustVerify(t, v, c.variable, signWith(t, "HS256", "", []byte(env[c.variable])))
			continue
		}
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: err %v\nwant %s", c.variable, err, c.want)
		}
	}
	// A secret in the file: 31 bytes refused, 32 taken.
	if _, err := New(Config{Audience: "a", Keys: []KeyConfig{{Alg: "HS256", Secret: hsSecret[:31]}}}, noEnv); err == nil || err.Error() != "jwt key 0: HMAC secret shorter than 32 bytes" {
		t.Errorf("31-byte secret: %v", err)
	}
	if _, err := New(Config{Audience: "a", Keys: []KeyConfig{{Alg: "HS256", Secret: hsSecret}}}, noEnv); err != nil {
		t.Errorf("32-byte secret: %v", err)
	}
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
