package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/go-playground/validator/v10"

	"github.com/roomcast/roomcast/internal/hub"
)

// newValidator builds the one validator, with roomcast's tags registered
// before serving (RegisterValidation is not safe once validating starts).
func newValidator() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			return ""
		}
		return name
	})
	must := func(err error) {
		if err != nil {
			panic(err) // programming error at start-up, not a runtime condition
		}
	}
	must(v.RegisterValidation("room", func(fl validator.FieldLevel) bool { return hub.ValidRoom(fl.Field().String()) }))
	must(v.RegisterValidation("event", func(fl validator.FieldLevel) bool { return hub.ValidEvent(fl.Field().String()) == nil }))
	must(v.RegisterValidation("connid", func(fl validator.FieldLevel) bool { return hub.ValidConnID(fl.Field().String()) }))
	must(v.RegisterValidation("duration", func(fl validator.FieldLevel) bool {
		d, err := time.ParseDuration(fl.Field().String())
		return err == nil && d >= 100*time.Millisecond && d <= 24*time.Hour
	}))
	must(v.RegisterValidation("json", func(fl validator.FieldLevel) bool {
		b, ok := fl.Field().Interface().(json.RawMessage)
		return ok && (len(b) == 0 || json.Valid(b))
	}))
	return v
}

var tagMessages = map[string]string{
	"required":   "is required",
	"room":       "must be 1–128 characters of A-Z a-z 0-9 _ - : @ =, optionally in dot-separated segments",
	"event":      "must be 1–128 bytes of UTF-8 without control or invisible formatting characters (bidi controls, zero-width spaces), and not a name the server sends (connected, reset, error, revoked, dead_letter, end)",
	"connid":     "must be a connection id (22 characters of A-Z a-z 0-9 _ -)",
	"printascii": "must be printable ASCII",
	"duration":   "must be a duration from 100ms to 24h, like 30s or 5m",
}

func fieldErrors(err error) error {
	var verrs validator.ValidationErrors
	if !errors.As(err, &verrs) {
		return fmt.Errorf("the request is invalid (%w): %w", err, hub.ErrInvalid)
	}
	out := make([]FieldError, 0, len(verrs))
	for _, fe := range verrs {
		field := fe.Namespace()
		if _, rest, ok := strings.Cut(field, "."); ok {
			field = rest // drop the struct name
		}
		msg, ok := tagMessages[fe.Tag()]
		switch {
		case ok:
		case fe.Tag() == "max":
			msg = "must have at most " + fe.Param() + " items or characters"
		case fe.Tag() == "min":
			msg = "must have at least " + fe.Param() + " items or characters"
		default:
			msg = "fails " + fe.Tag()
		}
		out = append(out, FieldError{Field: field, Message: msg})
	}
	return &validationError{fields: out}
}

// decode reads a JSON body into dst and validates it. A body labelled with
// another media type than application/json is refused (415, checkJSON);
// unknown fields are refused so that a typo ("room" for "rooms") is an error,
// not a silent broadcast to the whole namespace.
func (a *API) decode(w http.ResponseWriter, r *http.Request, limit int64, dst any) error {
	if err := checkJSON(r); err != nil {
		return err
	}
	body, err := readBody(w, r, limit, false)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return fmt.Errorf("the body is empty; send a JSON object: %w", hub.ErrInvalid)
	}
	return a.decodeBytes(body, dst)
}

// readBody reads at most limit bytes of r's body; the error names the
// limit in bytes, or in KiB with kib.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, kib bool) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		if kib {
			return nil, fmt.Errorf("the body is larger than %d KiB: %w", limit>>10, hub.ErrTooLarge)
		}
		return nil, fmt.Errorf("the body is larger than %d bytes, the namespace's max_body: %w", limit, hub.ErrTooLarge)
	}
	if errors.Is(err, errBodyTimeout) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("the body could not be read (%w): %w", err, hub.ErrInvalid)
	}
	return body, nil
}

// decodeBytes decodes a JSON body into dst and validates it.
func (a *API) decodeBytes(body []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("the body is not the expected JSON object: %s: %w", jsonErr(err), hub.ErrInvalid)
	}
	// dec.More is false before a stray '}' or ']': look at the rest itself.
	if rest := bytes.TrimSpace(body[dec.InputOffset():]); len(rest) > 0 {
		return fmt.Errorf("the body has data after its JSON object: %w", hub.ErrInvalid)
	}
	if err := a.validate.Struct(dst); err != nil {
		return fieldErrors(err)
	}
	return nil
}

// decodeOptional is decode for bodies that may be empty (all fields
// optional): an empty body leaves dst as it is.
func (a *API) decodeOptional(w http.ResponseWriter, r *http.Request, dst any) error {
	body, err := readBody(w, r, 16<<10, true)
	if err != nil || len(bytes.TrimSpace(body)) == 0 {
		return err
	}
	if err := checkJSON(r); err != nil {
		return err
	}
	return a.decodeBytes(body, dst)
}

func jsonErr(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("field %q must be %s", te.Field, te.Type.String())
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}
