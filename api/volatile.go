package api

import (
	"net/http"

	"github.com/roomcast/roomcast/internal/hub"
)

// publishVolatile answers a publish with "volatile": true (Socket.IO's
// socket.volatile.emit): the message goes to the connections live now, on
// every node, and is never stored. It has no id, so it is answered 204
// rather than 202 (whose body is a stored message's id); an idempotency key
// means nothing for it and is refused.
func (h *nsAPI) publishVolatile(w http.ResponseWriter, r *http.Request, o *hub.Outgoing) {
	if o.Key != "" {
		h.fail(w, r, invalidParam("id", "must be absent with volatile: true (a volatile message is never stored, so nothing could be deduplicated)"))
		return
	}
	if err := h.ns.PublishVolatile(r.Context(), o); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
