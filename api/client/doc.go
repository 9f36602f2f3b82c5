// Package client is a Go client of the roomcast API.
//
// client.gen.go is generated from openapi.yaml by oapi-codegen (do not edit
// it: change the spec and run `go generate ./api/client`; `make
// generate-check` fails when it is stale). It has a typed method per
// operation (NewClientWithResponses) and the schemas' types, Envelope,
// Connected and Reset included. Calls on behalf of a connection, and calls
// in namespaces with `auth: jwt`, carry a credential: pass Bearer(token) as
// a request editor.
//
// subscribe.go adds what OpenAPI cannot describe: Subscribe reads an SSE
// stream of the API as typed events and resumes it after every drop with
// Last-Event-ID, so that its handler sees each message once, in order.
//
// The generator is run with `go run …@version` rather than as a tool
// dependency of the module: its own dependencies (kin-openapi, x/tools,
// yaml libraries) then never enter the server's module graph, where minimal
// version selection would raise versions the server is built and tested
// with. The version is pinned here and the download is checked against the
// Go checksum database, so `go generate` reproduces client.gen.go exactly.
package client

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 -config cfg.yaml ../../openapi.yaml
