// Package auth verifies who is calling a namespace and what they may do:
// JWTs (golang-jwt v5, algorithms pinned per key, exp required, aud and iss
// checked), server API keys, and the permission claims that grant actions per
// room pattern. It implements hub.Perms for connections opened with a JWT.
//
// Attacks it is built against: alg:none and algorithm confusion (each key
// pins one algorithm, never "the token's alg", and a key of the wrong type
// or curve is refused at start), a token borrowing another key (a kid
// names the only key that may verify the token; a token without kid is
// tried only on the keys without id of its alg; no key is tried in turn),
// tokens for another audience or issuer, expired or not-yet-valid tokens
// (a small configurable leeway), guessing API keys by timing (constant-time
// comparison of hashes), and an unbounded token (a length cap before any
// parsing).
//
// It imports hub only for the Action and Perms types; it is safe for
// concurrent use once built.
package auth
