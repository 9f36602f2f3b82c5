package api

import (
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/roomcast/roomcast/internal/hub"
)

// nsAPI serves one namespace's routes.
type nsAPI struct {
	*API
	ns      *hub.Namespace
	maxBody int64
	batch   batchLimits
	sec     *Security
}

func invalidParam(field, msg string) error {
	return &validationError{fields: []FieldError{{Field: field, Message: msg}}}
}

func notFound(what string) error { return fmt.Errorf("%s: %w", what, hub.ErrNotFound) }

func (h *nsAPI) fail(w http.ResponseWriter, r *http.Request, err error) {
	writeError(w, r, h.logger, err)
}

// roomParam returns the {room} path segment, validated.
func roomParam(r *http.Request) (string, error) {
	room := chi.URLParam(r, "room")
	if !hub.ValidRoom(room) {
		return "", invalidParam("room", tagMessages["room"])
	}
	return room, nil
}

func connParam(r *http.Request) (hub.ConnID, error) {
	id := chi.URLParam(r, "id")
	if !hub.ValidConnID(id) {
		return "", invalidParam("id", tagMessages["connid"])
	}
	return hub.ConnID(id), nil
}
