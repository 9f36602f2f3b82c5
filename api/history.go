package api

import (
	"encoding/json"
	"net/http"

	"github.com/roomcast/roomcast/internal/hub"
)

type historyResponse struct {
	Room      string            `json:"room"`
	Messages  []json.RawMessage `json:"messages"`
	Truncated bool              `json:"truncated"`
	// Last is the id of the last message returned: pass it as `after` (or
	// Last-Event-ID) to continue from there.
	Last string `json:"last,omitempty"`
}

func (h *nsAPI) history(w http.ResponseWriter, r *http.Request) {
	room, _, err := h.roomFor(r, hub.ActHistory)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	limit, err := h.limitParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var after *hub.Position
	if s := q.Get("after"); s != "" {
		pos, _, err := hub.ParseResume(s)
		if err != nil {
			h.fail(w, r, invalidParam("after", "must be a message id (epoch-sequence)"))
			return
		}
		after = &pos
	}
	page, err := h.ns.History(r.Context(), room, after, limit)
	if err != nil {
		h.fail(w, r, err) // 410 when `after` is from another epoch of the store
		return
	}
	resp := historyResponse{Room: room, Messages: make([]json.RawMessage, len(page.Messages)), Truncated: page.Truncated}
	for i, m := range page.Messages {
		resp.Messages[i] = m.Body
	}
	if n := len(page.Messages); n > 0 {
		resp.Last = page.Messages[n-1].Pos.String()
	}
	writeJSON(w, http.StatusOK, resp)
}
