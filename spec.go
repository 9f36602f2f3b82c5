// Package roomcast holds what the whole program shares from the repository
// root: the OpenAPI document that api serves and tests against, and the
// browser SDK that web serves.
package roomcast

import _ "embed"

// OpenAPI is openapi.yaml, the contract of the HTTP surface.
//
//go:embed openapi.yaml
var OpenAPI []byte
