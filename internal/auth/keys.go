package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
)

// MinHMACSecret is the shortest HMAC secret accepted (RFC 7518 §3.2 asks
// for at least the hash size: 32 bytes for HS256).
const MinHMACSecret = 32

// MinRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3).
const MinRSABits = 2048

// keyKind is the kind of key each algorithm verifies with; an ES
// algorithm also needs its curve (a P-256 key never verifies ES384).
var keyKind = map[string]string{
	"HS256": "hmac", "HS384": "hmac", "HS512": "hmac",
	"RS256": "rsa", "RS384": "rsa", "RS512": "rsa", "PS256": "rsa", "PS384": "rsa", "PS512": "rsa",
	"ES256": "P-256", "ES384": "P-384", "ES512": "P-521",
	"EdDSA": "ed25519",
}

// loadKey reads one configured key: one key for a secret or a PEM file,
// the signing keys of a JWKS file.
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
		if kc.ID != "" || kc.Alg != "" {
			return nil, errors.New("jwks_file: each key's kid and alg come from the file; leave id and alg out")
		}
		return loadJWKS(kc.JWKSFile)
	}
	kind, ok := keyKind[kc.Alg]
	if !ok {
		return nil, fmt.Errorf("alg %q: want one of HS256…, RS256…, PS256…, ES256…, EdDSA", kc.Alg)
	}
	if kc.PEMFile != "" {
		pub, err := loadPEM(kc.PEMFile)
		if err != nil {
			return nil, err
		}
		if err := checkKey(kc.Alg, pub); err != nil {
			return nil, fmt.Errorf("pem_file: %w", err)
		}
		return []key{{id: kc.ID, alg: kc.Alg, key: pub}}, nil
	}
	if kind != "hmac" {
		return nil, fmt.Errorf("a secret goes with an HS algorithm, not %s", kc.Alg)
	}
	secret := kc.Secret
	if kc.SecretEnv != "" {
		// Said apart from a short secret: an unset variable is the usual
		// mistake, and "shorter than 32 bytes" sent people to their secret.
		if secret = getenv(kc.SecretEnv); secret == "" {
			return nil, fmt.Errorf("secret_env: the environment variable %s is unset or empty; set it to an HMAC secret of at least %d bytes", kc.SecretEnv, MinHMACSecret)
		}
		if len(secret) < MinHMACSecret {
			return nil, fmt.Errorf("secret_env: the HMAC secret in %s is %d bytes, shorter than %d", kc.SecretEnv, len(secret), MinHMACSecret)
		}
	}
	if len(secret) < MinHMACSecret {
		return nil, fmt.Errorf("HMAC secret shorter than %d bytes", MinHMACSecret)
	}
	return []key{{id: kc.ID, alg: kc.Alg, key: []byte(secret)}}, nil
}

func loadPEM(path string) (crypto.PublicKey, error) {
	b, err := os.ReadFile(path)
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
	return pub, nil
}

// checkKey refuses a key that cannot verify alg: a key of another type
// (the root of algorithm confusion), an EC key on another curve, a short
// RSA key.
func checkKey(alg string, k crypto.PublicKey) error {
	kind := keyKind[alg]
	switch k := k.(type) {
	case *rsa.PublicKey:
		if kind != "rsa" {
			break
		}
		if k.N.BitLen() < MinRSABits {
			return fmt.Errorf("RSA key of %d bits, shorter than %d", k.N.BitLen(), MinRSABits)
		}
		return nil
	case *ecdsa.PublicKey:
		if name := k.Curve.Params().Name; kind != name {
			return fmt.Errorf("an EC key on %s does not verify %s", name, alg)
		}
		return nil
	case ed25519.PublicKey:
		if kind == "ed25519" {
			return nil
		}
	}
	return fmt.Errorf("a %T does not verify %s", k, alg)
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
			continue // an encryption key never verifies a signature
		}
		pub, err := jwkPublic(k)
		if err != nil {
			return nil, fmt.Errorf("jwks_file key %d: %w", i, err)
		}
		if _, ok := keyKind[k.Alg]; !ok {
			return nil, fmt.Errorf("jwks_file key %d: alg %q: want one of HS256…, RS256…, PS256…, ES256…, EdDSA (alg is required)", i, k.Alg)
		}
		if err := checkKey(k.Alg, pub); err != nil {
			return nil, fmt.Errorf("jwks_file key %d (kty %s): %w", i, k.Kty, err)
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
			return nil, fmt.Errorf("n: %w", err)
		}
		e, err := b64int(k.E)
		if err != nil || !e.IsInt64() {
			return nil, errors.New("bad exponent")
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
		size := (curve.Params().BitSize + 7) / 8
		if err1 != nil || err2 != nil || len(xb) > size || len(yb) > size {
			return nil, errors.New("bad EC coordinates")
		}
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

// leftPad restores the leading zeros some JWKS writers drop (len(b) <= n).
func leftPad(b []byte, n int) []byte { return append(make([]byte, n-len(b)), b...) }
