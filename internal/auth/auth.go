package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxTokenLen bounds a bearer credential before any parsing.
const MaxTokenLen = 8 << 10

// KeyConfig is one verification key.
type KeyConfig struct {
	// ID binds the key to the tokens whose "kid" header names it: such a
	// token is verified by this key alone, with its Alg alone. A key without
	// ID verifies only tokens without kid whose alg is its Alg. IDs are
	// unique across a namespace's keys (JWKS kids included).
	ID string `json:"id" yaml:"id"`
	// Alg pins the algorithm: HS256/384/512, RS256/384/512, PS256/384/512,
	// ES256/384/512 or EdDSA. Required for secret and PEM keys.
	Alg string `json:"alg" yaml:"alg"`
	// Exactly one source: Secret (HMAC; prefer SecretEnv), SecretEnv (name
	// of an environment variable holding it), PEMFile (a public key), or
	// JWKSFile (a local JWKS document; each key's kid and alg come from it,
	// so ID and Alg stay empty; keys whose use is not "sig" are skipped).
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
	id  string
	alg string
	key any
}

// Verifier checks JWTs and API keys for one namespace.
type Verifier struct {
	cfg Config
	// parser accepts the algorithms of the configured keys (none when nil:
	// no JWT is accepted); keyFor then pins each token to its key's one.
	parser  *jwt.Parser
	byID    map[string]key                   // keys with an id, by id
	noID    map[string][]jwt.VerificationKey // keys without id, by alg
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
	v := &Verifier{cfg: cfg, byID: map[string]key{}, noID: map[string][]jwt.VerificationKey{}}
	var algs []string
	for i, kc := range cfg.Keys {
		ks, err := loadKey(kc, getenv)
		if err != nil {
			return nil, fmt.Errorf("jwt key %d: %w", i, err)
		}
		for _, k := range ks {
			if k.id == "" {
				v.noID[k.alg] = append(v.noID[k.alg], k.key)
			} else if _, dup := v.byID[k.id]; dup {
				return nil, fmt.Errorf("jwt key %d: id %q names another key already (a kid must name one key)", i, k.id)
			} else {
				v.byID[k.id] = k
			}
			if !slices.Contains(algs, k.alg) {
				algs = append(algs, k.alg)
			}
		}
	}
	for _, k := range cfg.APIKeys {
		if len(k) < 16 {
			return nil, errors.New("api key shorter than 16 characters")
		}
		v.apiKeys = append(v.apiKeys, sha256.Sum256([]byte(k)))
	}
	if len(algs) == 0 {
		return v, nil
	}
	if cfg.Audience == "" {
		return nil, errors.New("jwt: audience is required (tokens for other services must not be accepted)")
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs), // a first filter; keyFor pins each key's own
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithAudience(cfg.Audience),
		jwt.WithIssuedAt(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
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
	if v.parser == nil {
		return Identity{}, fmt.Errorf("%w: this namespace accepts no JWT", ErrBadToken)
	}
	var claims Claims
	if _, err := v.parser.ParseWithClaims(token, &claims, v.keyFor); err != nil {
		return Identity{}, fmt.Errorf("%w: %s", ErrBadToken, jwtReason(err))
	}
	return v.identity(claims)
}

// keyFor chooses the key(s) that may verify t from its header, before any
// signature is checked: the key its kid names, provided the token's alg is
// the one pinned for that key; without kid, the keys without id pinned to
// the token's alg. No other key is ever tried, so a token cannot pick a key
// of another type (HS256 "signed" with an RSA public key) nor borrow the
// key of another kid.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if raw, named := t.Header["kid"]; named {
		kid, ok := raw.(string)
		if !ok || kid == "" {
			return nil, errBadKid // not read as "no kid": that would pick the keys without id
		}
		k, ok := v.byID[kid]
		if !ok {
			return nil, errUnknownKid
		}
		if k.alg != alg {
			return nil, errAlgNotPinned
		}
		return k.key, nil
	}
	switch ks := v.noID[alg]; len(ks) {
	case 0:
		return nil, errNoKeyForAlg
	case 1:
		return ks[0], nil
	default: // several (a rotation): golang-jwt tries each
		return jwt.VerificationKeySet{Keys: ks}, nil
	}
}

var (
	errBadKid       = errors.New("the key id (kid) is not a non-empty string")
	errUnknownKid   = errors.New("the key id (kid) names no key")
	errAlgNotPinned = errors.New("the key its kid names is pinned to another algorithm")
	errNoKeyForAlg  = errors.New("no key without id has this algorithm (tokens for a key with an id name it with kid)")
)

func jwtReason(err error) string {
	switch {
	case errors.Is(err, errBadKid):
		return "malformed: " + errBadKid.Error()
	case errors.Is(err, errUnknownKid):
		return "signature or algorithm not accepted: " + errUnknownKid.Error()
	case errors.Is(err, errAlgNotPinned):
		return "signature or algorithm not accepted: " + errAlgNotPinned.Error()
	case errors.Is(err, errNoKeyForAlg):
		return "signature or algorithm not accepted: " + errNoKeyForAlg.Error()
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
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
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
