package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/roomcast/roomcast/api/client"
)

// maxLine bounds one line of `publish --batch` (a message larger than the
// namespace's max_body is refused by the server anyway).
const maxLine = 4 << 20

// cliPublishBatch publishes the JSON lines of in, one message each, in
// batches of at most size messages and about maxBytes bytes
// (POST /ns/{ns}/messages/batch). Lines without "rooms" go to room when it
// is set. It prints one line per message, in order: its id (or, with
// --json, its result with the line number); a message the server refused
// is reported on stderr with its line number, and the command goes on and
// ends with the code of the worst failure. A line that is not a JSON
// object stops it at once (nothing after it is sent).
func cliPublishBatch(ctx context.Context, cfg *cliConfig, ns, room string, in io.Reader, size, maxBytes int) error {
	cl, err := cfg.client()
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var (
		body  []byte
		lines []int // the line number of each message in body
		worst error
		n     int
	)
	send := func() error {
		if len(lines) == 0 {
			return nil
		}
		body = append(body, "]}"...)
		resp, err := cl.PublishBatchWithBodyWithResponse(ctx, ns, "application/json", bytes.NewReader(body))
		if resp == nil {
			return answerErr("publish", 0, nil, nil, err, http.StatusOK)
		}
		if err := answerErr("publish", resp.StatusCode(), resp.HTTPResponse.Header, resp.Body, err, http.StatusOK); err != nil {
			return err
		}
		if resp.JSON200 == nil || len(resp.JSON200.Results) != len(lines) {
			return &cliError{code: exitServer, err: fmt.Errorf("publish: the server answered %d results for %d messages: %.200s", resultCount(resp.JSON200), len(lines), resp.Body)}
		}
		for i, r := range resp.JSON200.Results {
			if err := cfg.printResult(lines[i], r); err != nil {
				return err
			}
			if r.Error != nil {
				worst = worse(worst, lines[i], r.Error)
			}
		}
		body, lines = body[:0], lines[:0]
		return nil
	}
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		msg, err := batchLine(line, room)
		if err != nil {
			if serr := send(); serr != nil {
				return serr
			}
			return usageErr("line %d: %v; the lines before it were sent", n, err)
		}
		if len(lines) > 0 && (len(lines) >= size || len(body)+len(msg)+3 > maxBytes) {
			if err := send(); err != nil {
				return err
			}
		}
		if len(lines) == 0 {
			body = append(body, `{"messages":[`...)
		} else {
			body = append(body, ',')
		}
		body = append(body, msg...)
		lines = append(lines, n)
	}
	if err := sc.Err(); err != nil {
		return usageErr("reading stdin after line %d: %v", n, err)
	}
	if err := send(); err != nil {
		return err
	}
	return worst
}

// batchLine checks that line is a JSON object and, when room is set and
// the line names no rooms, targets it at room.
func batchLine(line []byte, room string) ([]byte, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(line, &fields); err != nil || fields == nil {
		return nil, fmt.Errorf("not a JSON object (one message per line: {\"event\": …, \"data\": …})")
	}
	if _, ok := fields["rooms"]; ok || room == "" {
		return line, nil
	}
	fields["rooms"], _ = json.Marshal([]string{room})
	return json.Marshal(fields)
}

// printResult prints a batch message's outcome: its id on stdout, or its
// problem on stderr (with --json, the result with its line on stdout).
func (cfg *cliConfig) printResult(line int, r client.BatchResult) error {
	if cfg.json {
		return cfg.printJSON(map[string]any{"line": line, "id": r.Id, "duplicate": r.Duplicate, "error": r.Error})
	}
	if r.Error != nil {
		fmt.Fprintf(cfg.stderr, "roomcast: line %d: %s\n", line, (&refusal{what: "publish", se: &client.StatusError{StatusCode: r.Error.Status, Problem: r.Error}}).Error())
		return nil
	}
	if r.Duplicate != nil && *r.Duplicate {
		fmt.Fprintf(cfg.stderr, "line %d: duplicate: its key was already published as %s\n", line, *r.Id)
	}
	_, err := fmt.Fprintln(cfg.stdout, *r.Id)
	return err
}

// worse keeps the failure with the worse exit code: a server failure (5xx)
// over a refusal (4xx), else the first.
func worse(cur error, line int, p *client.Problem) error {
	code := exitRefused
	if p.Status >= 500 {
		code = exitServer
	}
	if ce, ok := cur.(*cliError); ok && (ce.code == exitServer || code == exitRefused) {
		return cur
	}
	return &cliError{code: code, quiet: true, err: fmt.Errorf("line %d: %d %s", line, p.Status, p.Title)}
}

func resultCount(r *client.BatchResults) int {
	if r == nil {
		return 0
	}
	return len(r.Results)
}
