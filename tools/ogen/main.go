// Command ogencheck holds openapi.yaml to a second Go generator, ogen: `make
// spec-tools` generates a client from the unmodified spec into a temporary
// copy of this module (package api, never committed), compiles it with this
// program, and runs it against a live server (ROOMCAST_SERVER). It opens a
// connection, joins a room with the connection's token, publishes with and
// without data, and reads both back from the history; it exits 1 at the
// first surprise.
//
// What an ogen user must know, shown here:
//   - Streams: ogen's Connect and RoomEvents read the whole body before they
//     return, and a stream never ends; read streams with an SSE client (here a
//     few lines of bufio).
//   - Payload (a message's data) is an empty schema, which ogen maps to
//     jx.Raw without an Opt wrapper: a publish request with Data left empty
//     is sent as `"data":}`. Set Data to api.Payload("null") when there is
//     none.
//   - ogen generates the types of what operations reference: not Connected
//     and Reset, the data of stream events (named only by the x-sse-events
//     extension); decode them into types of your own.
//   - Credentials: one SecuritySource serves the jwt, apiKey, connectionToken
//     and streamTicket schemes; return ogenerrors.ErrSkipClientSecurity for
//     the ones you do not hold (all of them for anonymous calls).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ogen-go/ogen/ogenerrors"

	"roomcast.test/ogencheck/api"
)

// creds is the SecuritySource: a connection token once the stream gave one.
type creds struct{ token string }

func (c *creds) ApiKey(context.Context, api.OperationName) (api.ApiKey, error) {
	return api.ApiKey{}, ogenerrors.ErrSkipClientSecurity
}

func (c *creds) Jwt(context.Context, api.OperationName) (api.Jwt, error) {
	return api.Jwt{}, ogenerrors.ErrSkipClientSecurity
}

func (c *creds) StreamTicket(context.Context, api.OperationName) (api.StreamTicket, error) {
	return api.StreamTicket{}, ogenerrors.ErrSkipClientSecurity
}

func (c *creds) ConnectionToken(context.Context, api.OperationName) (api.ConnectionToken, error) {
	if c.token == "" {
		return api.ConnectionToken{}, ogenerrors.ErrSkipClientSecurity
	}
	return api.ConnectionToken{Token: c.token}, nil
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Getenv("ROOMCAST_SERVER")); err != nil {
		fmt.Fprintln(os.Stderr, "ogencheck:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, server string) error {
	if server == "" {
		return errors.New("ROOMCAST_SERVER is not set")
	}
	sec := &creds{}
	cl, err := api.NewClient(server, sec)
	if err != nil {
		return err
	}
	room := fmt.Sprintf("ogen-%d", os.Getpid())

	// A connection, read with an SSE reader: its first event gives the token.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+"/ns/default/events", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("open a connection: %s", resp.Status)
	}
	var me struct {
		ID    api.ConnectionID `json:"id"`
		Token string           `json:"token"`
	}
	if err := firstEvent(bufio.NewScanner(resp.Body), "connected", &me); err != nil {
		return err
	}

	// A join needs a credential (ogen refuses to send it without one); an
	// unknown token is answered with a typed 401 problem.
	sec.token = "AAAAAAAAAAAAAAAAAAAAAA"
	res, err := cl.JoinRoom(ctx, api.JoinRoomParams{Ns: "default", Room: api.RoomName(room), ID: me.ID})
	if err != nil {
		return fmt.Errorf("join with an unknown token: %w", err)
	}
	if u, ok := res.(*api.UnauthorizedHeaders); !ok || u.Response.Status != http.StatusUnauthorized {
		return fmt.Errorf("join with an unknown token: %T %+v, want a 401 problem", res, res)
	}
	sec.token = me.Token
	res, err = cl.JoinRoom(ctx, api.JoinRoomParams{Ns: "default", Room: api.RoomName(room), ID: me.ID})
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	if m, ok := res.(*api.Membership); !ok || !m.Member {
		return fmt.Errorf("join: %T %+v", res, res)
	}

	// Publish with data, and with none (Data set to null, see above).
	var ids []api.MessageID
	for _, data := range []string{`{"text":"hi"}`, `null`} {
		pres, err := cl.PublishToRoom(ctx, &api.RoomPublishRequest{Event: "chat message", Data: api.Payload(data)},
			api.PublishToRoomParams{Ns: "default", Room: api.RoomName(room)})
		if err != nil {
			return fmt.Errorf("publish %s: %w", data, err)
		}
		p, ok := pres.(*api.PublishResult)
		if !ok {
			return fmt.Errorf("publish %s: %T %+v", data, pres, pres)
		}
		ids = append(ids, p.ID)
	}

	hres, err := cl.RoomHistory(ctx, api.RoomHistoryParams{Ns: "default", Room: api.RoomName(room), Limit: api.NewOptInt(10)})
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	h, ok := hres.(*api.History)
	if !ok || len(h.Messages) != 2 {
		return fmt.Errorf("history: %T %+v, want the 2 messages", hres, hres)
	}
	for i, want := range []string{`{"text":"hi"}`, `null`} {
		m := h.Messages[i]
		if m.ID != ids[i] || string(m.Data) != want || m.From.Null || m.From.Value != string(me.ID) {
			return fmt.Errorf("history message %d: id %s data %s from %+v, want %s %s from %s", i, m.ID, m.Data, m.From, ids[i], want, me.ID)
		}
	}
	fmt.Printf("ogencheck: ok: connection %s joined %s, published %s and %s, read both back\n", me.ID, room, ids[0], ids[1])
	return nil
}

// firstEvent reads SSE events until the first one, which must be named
// want, and decodes its data into v.
func firstEvent(sc *bufio.Scanner, want string, v any) error {
	var name, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "" && data != "":
			if name != want {
				return fmt.Errorf("first event %q, want %q", name, want)
			}
			return json.Unmarshal([]byte(data), v)
		case strings.HasPrefix(line, "event:"):
			name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data = strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("the stream ended before its first event")
}
