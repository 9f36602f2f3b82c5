// Package spectest loads openapi.yaml for the tests that hold the server to
// it (api and cmd/roomcast). Only tests import it: it keeps kin-openapi out
// of the binary.
package spectest

import (
	"github.com/getkin/kin-openapi/openapi3"

	"github.com/roomcast/roomcast"
)

// Load parses openapi.yaml and reads it as OpenAPI 3.0.3 says: a schema
// without constraints (Payload, a message's data) allows every JSON value,
// null included. The 3.0.3 text on `nullable` ("adds null to the allowed
// types specified by the type keyword, only if type is explicitly defined")
// settled that nullable only widens a typed schema and that the default
// forbids nothing, as in JSON Schema; kin-openapi still refuses null unless
// a schema says nullable, which 3.0 forbids without a type (Spectral, Prism
// and ajv report "nullable cannot be used without type"). So the spec keeps
// the valid empty schema and the tests tell kin-openapi what it means.
func Load() (*openapi3.T, error) {
	doc, err := openapi3.NewLoader().LoadFromData(roomcast.OpenAPI)
	if err != nil {
		return nil, err
	}
	for _, ref := range doc.Components.Schemas {
		if ref.Value != nil && ref.Value.IsEmpty() {
			ref.Value.Nullable = true
		}
	}
	return doc, nil
}
