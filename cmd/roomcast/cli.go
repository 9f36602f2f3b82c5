package main

// The client commands of the roomcast binary (publish, subscribe, rooms):
// thin wrappers of the generated client (api/client) for shells and
// scripts. They print human lines by default and one JSON object per line
// with --json, and exit with a code that says whose fault a failure is.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/roomcast/roomcast/api/client"
)

// Exit codes of the client commands.
const (
	exitOK      = 0 // done (or a subscription stopped by the user or --limit)
	exitServer  = 1 // the server could not be reached or failed (5xx), or answered nonsense
	exitUsage   = 2 // the command line is wrong; nothing was sent
	exitRefused = 3 // the server refused the request (4xx): see the problem printed
)

const cliOverview = `Usage: roomcast [COMMAND] [ARGS] [FLAGS]

Commands:
  serve                         run the server (the default; see its flags below)
  publish NS ROOM EVENT [DATA]  emit EVENT to ROOM of namespace NS; DATA is JSON, or - to read
                                it from stdin (absent: null); prints the message id
  publish --batch NS [ROOM]     publish the JSON lines of stdin (one message each, as the body of
                                POST /ns/NS/messages; ROOM for lines without rooms) in batches;
                                prints each message's id, in order
  subscribe NS ROOM             print the events of ROOM until interrupted; resumes after drops
                                with Last-Event-ID, with no gap
  rooms NS                      list the rooms of NS that have members, with their member counts
  version                       print the version
  help                          print this, then the server's flags

Run "roomcast COMMAND --help" for a command's flags.
` + cliExitCodes

const cliExitCodes = `
Client flags (publish, subscribe, rooms; anywhere on the line):
  --server URL    the server (env ROOMCAST_SERVER, default http://localhost:8080)
  --token TOKEN   sent as Authorization: Bearer: a namespace's JWT or API key, or a connection's
                  token (env ROOMCAST_TOKEN)
  --json          one JSON object per line, for scripts (default: lines for humans)

Exit codes of the client commands:
  0  done (subscribe: stopped by --limit, by Ctrl-C, or disconnected on request)
  1  the server could not be reached, failed (5xx) or answered nonsense
  2  usage error: bad flags or arguments, DATA that is not JSON; nothing was sent
  3  refused by the server (4xx: unknown namespace, bad request, not authorized, rate-limited…);
     the problem is printed on stderr
`

// cliConfig is what every client command shares.
type cliConfig struct {
	server, token string
	json          bool
	stdout        io.Writer
	stderr        io.Writer
}

// cliFlags returns a flag set with the shared flags bound to cfg.
func cliFlags(name, usage string, cfg *cliConfig, getenv func(string) string) *flag.FlagSet {
	fs := flag.NewFlagSet("roomcast "+name, flag.ContinueOnError)
	fs.SetOutput(cfg.stderr)
	server := getenv("ROOMCAST_SERVER")
	if server == "" {
		server = "http://localhost:8080"
	}
	fs.StringVar(&cfg.server, "server", server, "the server's base URL (env ROOMCAST_SERVER)")
	fs.StringVar(&cfg.token, "token", getenv("ROOMCAST_TOKEN"), "a JWT, API key or connection token sent as Bearer (env ROOMCAST_TOKEN)")
	fs.BoolVar(&cfg.json, "json", false, "print one JSON object per line")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: roomcast %s\n", usage)
		printFlags(fs)
		fmt.Fprint(fs.Output(), cliExitCodes)
	}
	return fs
}

// printFlags lists a command's own flags (the shared ones are listed after
// them), spelled with two dashes as everywhere else in roomcast (flag
// accepts one or two).
func printFlags(fs *flag.FlagSet) {
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		switch f.Name {
		case "server", "token", "json":
			return
		}
		kind, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(&b, "  --%s", f.Name)
		if kind != "" {
			fmt.Fprintf(&b, " %s", kind)
		}
		fmt.Fprintf(&b, "\n    \t%s", usage)
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
			fmt.Fprintf(&b, " (default %q)", f.DefValue)
		}
		b.WriteString("\n")
	})
	if b.Len() > 0 {
		fmt.Fprintf(fs.Output(), "\nFlags:\n%s", b.String())
	}
}

// parseInterleaved parses flags anywhere among the positional arguments
// (flag stops at the first one): `roomcast publish chat lobby hi --json`.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			// flag has printed the error and the usage already.
			return nil, &cliError{code: exitUsage, err: err, quiet: true}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil // everything after -- is positional
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// cliError is a failure with its exit code.
type cliError struct {
	code  int
	err   error
	quiet bool // already reported
}

func (e *cliError) Error() string { return e.err.Error() }

func usageErr(format string, a ...any) error {
	return &cliError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

// answerErr classifies a generated client's result: a transport error, or
// an answer whose status is not want.
func answerErr(what string, code int, header http.Header, body []byte, err error, want int) error {
	if err != nil {
		return &cliError{code: exitServer, err: fmt.Errorf("%s: %w", what, err)}
	}
	if code == want {
		return nil
	}
	se := client.NewStatusError(code, header, body)
	if code >= 400 && code < 500 {
		return &cliError{code: exitRefused, err: &refusal{what: what, se: se}}
	}
	return &cliError{code: exitServer, err: &refusal{what: what, se: se}}
}

// refusal is an answer of the server that is not the one wanted, worded
// for a person: the status, the problem's title and detail, then each
// invalid field the server listed, one per line.
type refusal struct {
	what string
	se   *client.StatusError
}

func (e *refusal) Unwrap() error { return e.se }

func (e *refusal) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d", e.what, e.se.StatusCode)
	p := e.se.Problem
	if p == nil {
		fmt.Fprintf(&b, " %s", http.StatusText(e.se.StatusCode))
		return b.String()
	}
	fmt.Fprintf(&b, " %s", p.Title)
	if p.Detail != nil && *p.Detail != "" {
		fmt.Fprintf(&b, ": %s", *p.Detail)
	}
	if p.Errors != nil {
		for _, f := range *p.Errors {
			fmt.Fprintf(&b, "\n  %s: %s", f.Field, f.Message)
		}
	}
	return b.String()
}

// cliMain runs a client command (args[0] is its name) and returns its exit
// code. Failures are printed on stderr.
func cliMain(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg := &cliConfig{stdout: stdout, stderr: stderr}
	var err error
	switch args[0] {
	case "publish":
		err = cliPublish(ctx, cfg, args[1:], getenv, stdin)
	case "subscribe":
		err = cliSubscribe(ctx, cfg, args[1:], getenv)
	case "rooms":
		err = cliRooms(ctx, cfg, args[1:], getenv)
	default:
		err = usageErr("unknown command %q", args[0])
	}
	var ce *cliError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ce):
		if !ce.quiet {
			fmt.Fprintln(stderr, "roomcast:", ce.err)
		}
		if ce.code == exitUsage && !ce.quiet {
			fmt.Fprintf(stderr, "Run \"roomcast %s --help\" for usage.\n", args[0])
		}
		return ce.code
	default: // writing to stdout failed
		fmt.Fprintln(stderr, "roomcast:", err)
		return exitServer
	}
}

func (cfg *cliConfig) client() (*client.ClientWithResponses, error) {
	if u, err := url.Parse(cfg.server); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageErr("--server %q: want a URL such as http://localhost:8080", cfg.server)
	}
	cl, err := client.NewClientWithResponses(cfg.server, client.WithRequestEditorFn(client.Bearer(cfg.token)),
		client.WithHTTPClient(&http.Client{Timeout: 30 * time.Second}))
	if err != nil {
		return nil, usageErr("--server %q: %v", cfg.server, err)
	}
	return cl, nil
}

// printJSON writes v as one line.
func (cfg *cliConfig) printJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(cfg.stdout, "%s\n", b)
	return err
}

func cliPublish(ctx context.Context, cfg *cliConfig, args []string, getenv func(string) string, stdin io.Reader) error {
	fs := cliFlags("publish", "publish NS ROOM EVENT [DATA|-] [flags]\n       publish --batch NS [ROOM] [flags] < messages.jsonl\n\nEmits EVENT to ROOM with DATA (JSON; - reads it from stdin; absent: null) and prints\nthe message id once the server has stored it (with --volatile: delivers it live only,\nstores nothing and prints nothing).\n\nWith --batch, each line of stdin is one message, a JSON object with the fields of\nPOST /ns/NS/messages (event, data, rooms, except, id; a line without rooms goes to ROOM\nwhen it is given, else to the whole namespace), sent in batches of --batch-size; one\nline is printed per message, in order: its id, or its problem on stderr (the command\nthen ends with the code of the worst failure).", cfg, getenv)
	key := fs.String("id", "", "idempotency key: a retry with the same key is stored once")
	volatile := fs.Bool("volatile", false, "deliver live only: never stored, no id, not in the history (typing indicators)")
	batch := fs.Bool("batch", false, "publish the JSON lines of stdin, one message each, in batches")
	batchSize := fs.Int("batch-size", 1000, "with --batch: messages per request (at most the namespace's max_batch)")
	batchBytes := fs.Int("batch-bytes", 1<<20, "with --batch: most bytes per request (at most the namespace's max_batch_body)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if *batch {
		switch {
		case len(pos) < 1 || len(pos) > 2:
			return usageErr("publish --batch wants NS [ROOM], got %d arguments", len(pos))
		case *key != "" || *volatile:
			return usageErr("--id and --volatile are per message with --batch: put \"id\" in a line; a batch is stored")
		case *batchSize < 1 || *batchBytes < 64:
			return usageErr("--batch-size must be at least 1, --batch-bytes at least 64")
		}
		room := ""
		if len(pos) == 2 {
			room = pos[1]
		}
		return cliPublishBatch(ctx, cfg, pos[0], room, stdin, *batchSize, *batchBytes)
	}
	if len(pos) < 3 || len(pos) > 4 {
		return usageErr("publish wants NS ROOM EVENT [DATA|-], got %d arguments", len(pos))
	}
	ns, room, event := pos[0], pos[1], pos[2]
	req := client.RoomPublishRequest{Event: event}
	if len(pos) == 4 {
		raw := []byte(pos[3])
		if pos[3] == "-" {
			if raw, err = io.ReadAll(stdin); err != nil {
				return usageErr("reading DATA from stdin: %v", err)
			}
		}
		raw = bytes.TrimSpace(raw)
		if !json.Valid(raw) {
			return usageErr("DATA is not JSON (quote a string: '\"hello\"'): %.80q", raw)
		}
		var data client.Payload = json.RawMessage(raw)
		req.Data = &data
	}
	if *key != "" {
		req.Id = key
	}
	if *volatile {
		req.Volatile = volatile
	}
	cl, err := cfg.client()
	if err != nil {
		return err
	}
	resp, err := cl.PublishToRoomWithResponse(ctx, ns, room, req)
	if resp == nil {
		return answerErr("publish", 0, nil, nil, err, http.StatusAccepted)
	}
	if *volatile {
		// 204: on its way to the connections live now; nothing to print.
		return answerErr("publish", resp.StatusCode(), resp.HTTPResponse.Header, resp.Body, err, http.StatusNoContent)
	}
	if err := answerErr("publish", resp.StatusCode(), resp.HTTPResponse.Header, resp.Body, err, http.StatusAccepted); err != nil {
		return err
	}
	if resp.JSON202 == nil {
		return &cliError{code: exitServer, err: fmt.Errorf("publish: the server answered 202 without a message id: %.200s", resp.Body)}
	}
	if cfg.json {
		return cfg.printJSON(resp.JSON202)
	}
	if resp.JSON202.Duplicate != nil && *resp.JSON202.Duplicate {
		fmt.Fprintf(cfg.stderr, "duplicate: the key %q was already published as %s\n", *key, resp.JSON202.Id)
	}
	_, err = fmt.Fprintln(cfg.stdout, resp.JSON202.Id)
	return err
}

func cliRooms(ctx context.Context, cfg *cliConfig, args []string, getenv func(string) string) error {
	fs := cliFlags("rooms", "rooms NS [flags]\n\nLists the rooms of NS that have members on the server, with their member counts.", cfg, getenv)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("rooms wants NS, got %d arguments", len(pos))
	}
	cl, err := cfg.client()
	if err != nil {
		return err
	}
	resp, err := cl.ListRoomsWithResponse(ctx, pos[0])
	if resp == nil {
		return answerErr("rooms", 0, nil, nil, err, http.StatusOK)
	}
	if err := answerErr("rooms", resp.StatusCode(), resp.HTTPResponse.Header, resp.Body, err, http.StatusOK); err != nil {
		return err
	}
	if resp.JSON200 == nil {
		return &cliError{code: exitServer, err: fmt.Errorf("rooms: unexpected answer %.200s", resp.Body)}
	}
	for _, r := range resp.JSON200.Rooms {
		if cfg.json {
			err = cfg.printJSON(r)
		} else {
			_, err = fmt.Fprintf(cfg.stdout, "%s\t%d\n", r.Name, r.Members)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// errLimit stops a subscription after --limit messages.
var errLimit = errors.New("limit reached")

func cliSubscribe(ctx context.Context, cfg *cliConfig, args []string, getenv func(string) string) error {
	fs := cliFlags("subscribe", "subscribe NS ROOM [--group G] [--from ID] [--ack] [--limit N] [flags]\n\nPrints the events of ROOM (or of consumer group G of ROOM) as they come, and resumes\nwith Last-Event-ID after a drop or a server restart, with no gap. Human lines go to\nstdout for messages and to stderr for connection notices; --json prints every event,\nconnected and reset included, as {\"event\",\"id\",\"data\"} on stdout.", cfg, getenv)
	group := fs.String("group", "", "consume ROOM as a member of this consumer group (each message to one member)")
	from := fs.String("from", "", "start after this event or message id (a previous run's last id resumes it)")
	ack := fs.Bool("ack", false, "with --group: acknowledge each delivery once printed")
	limit := fs.Int("limit", 0, "stop after N messages (0: never)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) != 2:
		return usageErr("subscribe wants NS ROOM, got %d arguments", len(pos))
	case *ack && *group == "":
		return usageErr("--ack needs --group (only group deliveries are acknowledged)")
	case *limit < 0:
		return usageErr("--limit must be 0 or more")
	}
	ns, room := pos[0], pos[1]
	params := &client.RoomEventsParams{}
	if *group != "" {
		params.Group = group
	}
	cl, err := cfg.client()
	if err != nil {
		return err
	}
	streamURL, err := client.RoomEventsURL(cfg.server, ns, room, params)
	if err != nil {
		return usageErr("--server %q: %v", cfg.server, err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		connToken string // of the current connection, for acks
		connected bool
		firstErr  error // a failure before the first connect: fatal
		count     int
	)
	opts := client.SubscribeOptions{
		Token:       cfg.token,
		LastEventID: *from,
		OnRetry: func(err error, wait time.Duration) {
			if !connected {
				firstErr = err
				cancel()
				return
			}
			if !cfg.json {
				fmt.Fprintf(cfg.stderr, "connection lost (%v); reconnecting in %s\n", err, wait.Round(10*time.Millisecond))
			}
		},
	}
	err = client.Subscribe(ctx, streamURL, opts, func(ev client.Event) error {
		switch {
		case ev.Connected != nil:
			connected, connToken = true, ev.Connected.Token
		case ev.Reset != nil, ev.Revoked != nil, ev.End != nil, ev.Volatile != nil:
		case ev.Message == nil:
			return nil // reserved events this server does not send
		}
		if cfg.json {
			if err := cfg.printJSON(map[string]any{"event": ev.Name, "id": ev.ID, "data": ev.Data}); err != nil {
				return err
			}
		} else {
			printHuman(cfg, ev)
		}
		if ev.Message == nil {
			return nil
		}
		if *ack && ev.Message.AckId != nil {
			resp, err := cl.AckWithResponse(ctx, ns, room, *group, client.AckRequest{Ids: []string{*ev.Message.AckId}}, client.Bearer(connToken))
			if resp == nil {
				return answerErr("ack", 0, nil, nil, err, http.StatusNoContent)
			}
			if err := answerErr("ack", resp.StatusCode(), resp.HTTPResponse.Header, resp.Body, err, http.StatusNoContent); err != nil {
				return err
			}
		}
		if count++; *limit > 0 && count >= *limit {
			return errLimit
		}
		return nil
	})
	var se *client.StatusError
	switch {
	case errors.Is(err, errLimit):
		return nil
	case firstErr != nil:
		var fse *client.StatusError
		if errors.As(firstErr, &fse) && fse.StatusCode >= 400 && fse.StatusCode < 500 {
			return &cliError{code: exitRefused, err: &refusal{what: "subscribe", se: fse}}
		}
		if fse != nil {
			return &cliError{code: exitServer, err: &refusal{what: "subscribe", se: fse}}
		}
		return &cliError{code: exitServer, err: fmt.Errorf("subscribe: %w", firstErr)}
	case errors.Is(err, client.ErrDisconnected):
		fmt.Fprintln(cfg.stderr, "disconnected on request: the connection is closed for good")
		return nil
	case errors.Is(err, context.Canceled):
		return nil // Ctrl-C
	case errors.As(err, &se):
		return &cliError{code: exitRefused, err: &refusal{what: "subscribe", se: se}}
	default:
		return err // a *cliError from an ack, or a broken stdout
	}
}

// printHuman prints a message on stdout as
// `<id> <target> <event> [from <conn>] [delivery <n>] <data>`, and
// connection notices on stderr.
func printHuman(cfg *cliConfig, ev client.Event) {
	switch {
	case ev.Connected != nil:
		c := ev.Connected
		state := "connected"
		if c.Restored {
			state = "resumed"
		}
		user := ""
		if c.User != nil {
			user = " as " + *c.User
		}
		fmt.Fprintf(cfg.stderr, "%s: connection %s%s in %s of namespace %s\n", state, c.Id, user, strings.Join(c.Rooms, ", "), c.Ns)
	case ev.Reset != nil:
		fmt.Fprintf(cfg.stderr, "reset: %s (messages were missed; continuing after %s)\n", ev.Reset.Reason, ev.Reset.Position)
	case ev.Revoked != nil:
		fmt.Fprintf(cfg.stderr, "revoked: delivery of %s (%s)\n", ev.Revoked.Id, ev.Revoked.Reason)
	case ev.End != nil:
		fmt.Fprintf(cfg.stderr, "the server ended the stream: %s\n", ev.End.Reason)
	case ev.Volatile != nil:
		// Its target and sender, as for a message; "-" where the id goes.
		v := ev.Volatile
		m := &client.Envelope{Room: v.Room, Rooms: v.Rooms, To: v.To, From: v.From, Event: v.Event, Data: v.Data}
		printMessage(cfg, "-", m, " volatile")
	case ev.Message != nil:
		printMessage(cfg, ev.Message.Id, ev.Message, "")
	}
}

// printMessage prints a message line: id, target, event, extra words, data.
func printMessage(cfg *cliConfig, id string, m *client.Envelope, kind string) {
	target := "*"
	switch {
	case m.Room != nil:
		target = "#" + *m.Room
	case m.Rooms != nil:
		target = "#" + strings.Join(*m.Rooms, ",#")
	case m.To != nil:
		target = "@" + *m.To
	}
	var extra string
	if m.From != nil {
		extra += " from " + *m.From
	}
	if m.Delivery != nil {
		extra += fmt.Sprintf(" delivery %d", *m.Delivery)
	}
	data := "null"
	if b, err := json.Marshal(m.Data); err == nil {
		data = string(b)
	}
	fmt.Fprintf(cfg.stdout, "%s %s %s%s%s %s\n", id, target, m.Event, kind, extra, data)
}
