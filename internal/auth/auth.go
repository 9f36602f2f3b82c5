package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxTokenLen bounds a bearer credential before any parsing.
const MaxTokenLen = 8 << 10

// KeyConfig is one verification key.
type KeyConfig struct {
	// ID matches the token's "kid" header; empty matches tokens without one
	// (or any kid when it is the only key).
	ID string `json:"id" yaml:"id"`
	// Alg pins the algorithm: HS256/384/512, RS256/384/512, PS256/384/512,
	// ES256/384/512 or EdDSA. Required for secret and PEM keys.
	Alg string `json:"alg" yaml:"alg"`
	// Exactly one source: Secret (HMAC; prefer SecretEnv), SecretEnv (name
	// of an environment variable holding it), PEMFile (a public key), or
	// JWKSFile (a local JWKS document; each key's alg comes from it).
	Secret    string `json:"secret" yaml:"secret"`
	SecretEnv string `json:"secret_env" yaml:"secret_env"`
	PEMFile   string `json:"pem_file" yaml:"pem_file"`
	JWKSFile  string `json:"jwks_file" yaml:"jwks_file"`
}

// Config configures a namespace's verifier.
type Config struct {
	Issuer   string
	Audience string
	Leeway   time.Duration
	Keys     []KeyConfig
	// APIKeys are server keys granting admin (from config or env).
	APIKeys []string
}

type key struct {
	id     string
	alg    string
	key    any
	parser *jwt.Parser // this key's checks, built once (New)
}

// Verifier checks JWTs and API keys for one namespace.
type Verifier struct {
	cfg     Config
	keys    []key
	apiKeys [][32]byte
}

// Claims are roomcast's JWT claims.
type Claims struct {
	jwt.RegisteredClaims
	Roomcast Grants `json:"roomcast"`
}

// Identity is a verified caller.
type Identity struct {
	User    string // the JWT's sub ("" for API keys)
	Grants  Grants
	Expires time.Time // zero: never (API keys)
}

// ErrBadToken marks a credential that does not verify.
var ErrBadToken = errors.New("invalid token")

// New builds a verifier, loading every key (files are read once, here).
func New(cfg Config, getenv func(string) string) (*Verifier, error) {
	v := &Verifier{cfg: cfg}
	for i, kc := range cfg.Keys {
		ks, err := loadKey(kc, getenv)
		if err != nil {
			return nil, fmt.Errorf("jwt key %d: %w", i, err)
		}
		v.keys = append(v.keys, ks...)
	}
	for _, k := range cfg.APIKeys {
		if len(k) < 16 {
			return nil, errors.New("api key shorter than 16 characters")
		}
		v.apiKeys = append(v.apiKeys, sha256.Sum256([]byte(k)))
	}
	if len(v.keys) > 0 && cfg.Audience == "" {
		return nil, errors.New("jwt: audience is required (tokens for other services must not be accepted)")
	}
	for i := range v.keys {
		opts := []jwt.ParserOption{
			jwt.WithValidMethods([]string{v.keys[i].alg}), // pinned: never the token's own choice
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithAudience(cfg.Audience),
			jwt.WithIssuedAt(),
		}
		if cfg.Issuer != "" {
			opts = append(opts, jwt.WithIssuer(cfg.Issuer))
		}
		v.keys[i].parser = jwt.NewParser(opts...)
	}
	return v, nil
}

var algFamily = map[string]string{
	"HS256": "hmac", "HS384": "hmac", "HS512": "hmac",
	"RS256": "rsa", "RS384": "rsa", "RS512": "rsa", "PS256": "rsa", "PS384": "rsa", "PS512": "rsa",
	"ES256": "ecdsa", "ES384": "ecdsa", "ES512": "ecdsa",
	"EdDSA": "ed25519",
}

func loadKey(kc KeyConfig, getenv func(string) string) ([]key, error) {
	sources := 0
	for _, s := range []string{kc.Secret, kc.SecretEnv, kc.PEMFile, kc.JWKSFile} {
		if s != "" {
			sources++
		}
	}
	if sources != 1 {
		return nil, errors.New("give exactly one of secret, secret_env, pem_file, jwks_file")
	}
	if kc.JWKSFile != "" {
		return loadJWKS(kc.JWKSFile)
	}
	fam, ok := algFamily[kc.Alg]
	if !ok {
		return nil, fmt.Errorf("alg %q: want one of HS256…, RS256…, PS256…, ES256…, EdDSA", kc.Alg)
	}
	switch {
	case kc.Secret != "" || kc.SecretEnv != "":
		secret := kc.Secret
		if kc.SecretEnv != "" {
			secret = getenv(kc.SecretEnv)
		}
		if fam != "hmac" {
			return nil, fmt.Errorf("a secret goes with an HS algorithm, not %s", kc.Alg)
		}
		if len(secret) < 32 {
			return nil, errors.New("HMAC secret shorter than 32 bytes")
		}
		return []key{{id: kc.ID, alg: kc.Alg, key: []byte(secret)}}, nil
	default:
		b, err := os.ReadFile(kc.PEMFile)
		if err != nil {
			return nil, err
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, errors.New("pem_file holds no PEM block")
		}
		pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pem_file: want a PKIX public key: %w", err)
		}
		if !keyFits(fam, pub) {
			return nil, fmt.Errorf("pem_file: a %T does not verify %s", pub, kc.Alg)
		}
		return []key{{id: kc.ID, alg: kc.Alg, key: pub}}, nil
	}
}

func keyFits(fam string, k any) bool {
	switch k.(type) {
	case *rsa.PublicKey:
		return fam == "rsa"
	case *ecdsa.PublicKey:
		return fam == "ecdsa"
	case ed25519.PublicKey:
		return fam == "ed25519"
	}
	return false
}

type jwk struct {
	Kty, Kid, Alg, Use, Crv string
	N, E, X, Y              string
}

func loadJWKS(path string) ([]key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var set struct{ Keys []jwk }
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("jwks_file: %w", err)
	}
	var out []key
	for i, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		pub, err := jwkPublic(k)
		if err != nil {
			return nil, fmt.Errorf("jwks_file key %d: %w", i, err)
		}
		fam, ok := algFamily[k.Alg]
		if !ok || !keyFits(fam, pub) {
			return nil, fmt.Errorf("jwks_file key %d: alg %q must be set and fit its %s key", i, k.Alg, k.Kty)
		}
		out = append(out, key{id: k.Kid, alg: k.Alg, key: pub})
	}
	if len(out) == 0 {
		return nil, errors.New("jwks_file has no signing key")
	}
	return out, nil
}

func b64int(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, errors.New("bad base64url integer")
	}
	return new(big.Int).SetBytes(b), nil
}

func jwkPublic(k jwk) (crypto.PublicKey, error) {
	switch k.Kty {
	case "RSA":
		n, err := b64int(k.N)
		if err != nil {
			return nil, err
		}
		e, err := b64int(k.E)
		if err != nil || !e.IsInt64() {
			return nil, errors.New("bad exponent")
		}
		if n.BitLen() < 2048 {
			return nil, errors.New("RSA key shorter than 2048 bits")
		}
		return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
	case "EC":
		var curve elliptic.Curve
		switch k.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("curve %q", k.Crv)
		}
		xb, err1 := base64.RawURLEncoding.DecodeString(k.X)
		yb, err2 := base64.RawURLEncoding.DecodeString(k.Y)
		if err1 != nil || err2 != nil {
			return nil, errors.New("bad EC coordinates")
		}
		size := (curve.Params().BitSize + 7) / 8
		raw := append([]byte{4}, append(leftPad(xb, size), leftPad(yb, size)...)...)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, raw)
		if err != nil {
			return nil, err
		}
		return pub, nil
	case "OKP":
		if k.Crv != "Ed25519" {
			return nil, fmt.Errorf("curve %q", k.Crv)
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad Ed25519 key")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, fmt.Errorf("kty %q", k.Kty)
}

func leftPad(b []byte, n int) []byte {
	if len(b) >= n {
		return b
	}
	return append(make([]byte, n-len(b)), b...)
}

// LooksLikeJWT tells a JWT from a connection token or an API key.
func LooksLikeJWT(s string) bool { return strings.Count(s, ".") == 2 && strings.HasPrefix(s, "eyJ") }

// APIKey reports whether s is one of the namespace's API keys (constant
// time over the configured keys).
func (v *Verifier) APIKey(s string) bool {
	if len(s) > MaxTokenLen || len(v.apiKeys) == 0 {
		return false
	}
	h := sha256.Sum256([]byte(s))
	ok := 0
	for _, k := range v.apiKeys {
		ok |= subtle.ConstantTimeCompare(h[:], k[:])
	}
	return ok == 1
}

// Verify checks a JWT and returns the caller's identity.
func (v *Verifier) Verify(token string) (Identity, error) {
	if len(token) > MaxTokenLen {
		return Identity{}, fmt.Errorf("%w: longer than %d bytes", ErrBadToken, MaxTokenLen)
	}
	if len(v.keys) == 0 {
		return Identity{}, fmt.Errorf("%w: this namespace accepts no JWT", ErrBadToken)
	}
	var claims Claims
	var lastErr error
	for _, k := range v.keys {
		claims = Claims{}
		_, err := k.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
			if kid, _ := t.Header["kid"].(string); k.id != "" && kid != k.id {
				return nil, errWrongKey
			}
			return k.key, nil
		})
		if err == nil {
			return v.identity(claims)
		}
		lastErr = err
		if !errors.Is(err, errWrongKey) && !errors.Is(err, jwt.ErrTokenSignatureInvalid) && !errors.Is(err, jwt.ErrTokenUnverifiable) {
			break // a claims error: another key would not change it
		}
	}
	return Identity{}, fmt.Errorf("%w: %s", ErrBadToken, jwtReason(lastErr))
}

var errWrongKey = errors.New("kid does not match")

func jwtReason(err error) string {
	switch {
	case err == nil:
		return "rejected"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && strings.Contains(err.Error(), "aud"):
		return "the audience (aud) is missing"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "a required claim (exp) is missing"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable), errors.Is(err, errWrongKey):
		return "signature or algorithm not accepted"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	}
	return "rejected"
}

func (v *Verifier) identity(c Claims) (Identity, error) {
	for _, list := range [][]string{c.Roomcast.Subscribe, c.Roomcast.Publish, c.Roomcast.Join, c.Roomcast.Presence, c.Roomcast.History, c.Roomcast.Ack} {
		for _, p := range list {
			if !validPattern(p) {
				return Identity{}, fmt.Errorf("%w: bad room pattern %q in claims", ErrBadToken, p)
			}
		}
	}
	if len(c.Subject) > 256 {
		return Identity{}, fmt.Errorf("%w: sub longer than 256 bytes", ErrBadToken)
	}
	id := Identity{User: c.Subject, Grants: c.Roomcast}
	if c.ExpiresAt != nil {
		id.Expires = c.ExpiresAt.Time
	}
	return id, nil
}

// Admin is the identity of an API key.
func Admin() Identity { return Identity{Grants: Grants{Admin: true}} }
