package roomcast

import _ "embed"

// SDK is clients/js/roomcast.js, the browser SDK (also published from
// clients/js as a package), which web serves at /sdk/roomcast.js: one file,
// so that the served SDK and the package cannot differ.
//
//go:embed clients/js/roomcast.js
var SDK []byte
