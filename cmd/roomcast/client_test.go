package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomcast/roomcast"
	"github.com/roomcast/roomcast/api/client"
)

// The tests of this file drive the real server through the generated Go
// client (api/client) and its Subscribe helper. Every request goes through
// clientTransport, which validates each answer against openapi.yaml and
// records its operation, so that TestClientOperations can require that the
// client performed every operation of the spec.

// clientTransport validates and records the answers of the client's
// requests (it may be used by several goroutines: Subscribe runs in one).
type clientTransport struct {
	t  *testing.T
	c  *specCheck
	mu sync.Mutex
}

func (tr *clientTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	var raw []byte
	if !specIsEventStream(resp.Header) {
		raw, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(raw))
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	// c.route fails the test from the test's goroutine only: look first.
	if _, _, err := tr.c.router.FindRoute(req); err != nil {
		tr.t.Errorf("%s %s: the client sent a request that openapi.yaml does not describe: %v", req.Method, req.URL, err)
		return resp, nil
	}
	tr.c.checkResponse(tr.t, req, resp, raw)
	return resp, nil
}

// seen reports whether op was answered with status.
func (tr *clientTransport) seen(op string, status int) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.c.seen[op][status]
}

// newClient returns the generated client of s, its validating HTTP client
// (for Subscribe) and the transport.
func newClient(t *testing.T, s *testServer) (*client.ClientWithResponses, *http.Client, *clientTransport) {
	t.Helper()
	tr := &clientTransport{t: t, c: newSpecCheck(t, s)}
	hc := &http.Client{Transport: tr}
	cl, err := client.NewClientWithResponses(s.URL, client.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	return cl, hc, tr
}

// clientSub is a Subscribe running in the background.
type clientSub struct {
	t      *testing.T
	events chan client.Event
	done   chan error
	cancel context.CancelFunc
	// notices are the dead_letter notices message skipped.
	notices []*client.Envelope
}

// clientSubscribe runs client.Subscribe on url until the test ends.
func clientSubscribe(t *testing.T, url string, opts client.SubscribeOptions) *clientSub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sub := &clientSub{t: t, events: make(chan client.Event, 4096), done: make(chan error, 1), cancel: cancel}
	go func() {
		sub.done <- client.Subscribe(ctx, url, opts, func(ev client.Event) error {
			select {
			case sub.events <- ev:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	t.Cleanup(func() { sub.stop() })
	return sub
}

// stop cancels the subscription and returns what Subscribe returned.
func (sub *clientSub) stop() error {
	sub.cancel()
	select {
	case err := <-sub.done:
		sub.done <- err // for a later stop
		return err
	case <-time.After(specTimeout):
		sub.t.Errorf("Subscribe did not return within %s of its cancel", specTimeout)
		return nil
	}
}

// next returns the next event (those handed over before Subscribe returned
// included).
func (sub *clientSub) next() client.Event {
	sub.t.Helper()
	select {
	case ev := <-sub.events:
		return ev
	case err := <-sub.done:
		sub.done <- err
		select {
		case ev := <-sub.events:
			return ev
		default:
		}
		sub.t.Fatalf("Subscribe returned %v while an event was awaited", err)
	case <-time.After(specTimeout):
		sub.t.Fatalf("no event within %s", specTimeout)
	}
	return client.Event{}
}

// connected reads the connected event.
func (sub *clientSub) connected() *client.Connected {
	sub.t.Helper()
	ev := sub.next()
	if ev.Connected == nil {
		sub.t.Fatalf("event %q (%s), want connected", ev.Name, ev.Data)
	}
	return ev.Connected
}

// message reads the next application message, which must be event name
// (dead_letter notices on the way are kept in sub.notices).
func (sub *clientSub) message(name string) *client.Envelope {
	sub.t.Helper()
	ev := sub.next()
	for ev.Name == "dead_letter" && name != "dead_letter" && ev.Message != nil {
		sub.notices = append(sub.notices, ev.Message)
		ev = sub.next()
	}
	if ev.Message == nil || ev.Name != name || ev.Message.Event != name {
		sub.t.Fatalf("event %q (%s), want message %q", ev.Name, ev.Data, name)
	}
	// A group delivery's id is the connection's position, not the message's.
	if ev.Message.AckId == nil && !strings.HasPrefix(ev.ID, ev.Message.Id+".") {
		sub.t.Fatalf("event id %q does not start with the message id %q", ev.ID, ev.Message.Id)
	}
	return ev.Message
}

// ended waits for Subscribe to return and returns its error.
func (sub *clientSub) ended() error {
	sub.t.Helper()
	select {
	case err := <-sub.done:
		sub.done <- err
		return err
	case <-time.After(specTimeout):
		sub.t.Fatalf("Subscribe still running after %s", specTimeout)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// clientStatus fails unless the answer's status is want.
func clientStatus(t *testing.T, what string, code int, body []byte, err error, want int) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if code != want {
		t.Fatalf("%s: status %d, want %d; body %s", what, code, want, body)
	}
}

const clientConfig = `namespaces:
  - name: default
  - name: secure
    auth: jwt
    jwt_audience: roomcast-spec
    jwt_keys:
      - alg: HS256
        secret: "` + specSecret + `"
`

// startClientServer starts a server with the open namespace default and
// the jwt namespace secure, on data (a new temp dir when "").
func startClientServer(t *testing.T, data string, args ...string) *testServer {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "roomcast.yaml")
	if err := os.WriteFile(cfg, []byte(clientConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	if data == "" {
		data = t.TempDir()
	}
	return startServerData(t, data, append([]string{"--config", cfg}, args...)...)
}

// TestClientOperations performs every operation of openapi.yaml with the
// generated client against the real server and checks the results.
func TestClientOperations(t *testing.T) {
	s := startClientServer(t, "")
	cl, hc, tr := newClient(t, s)
	ctx := context.Background()
	const ns = "default"

	t.Run("server", func(t *testing.T) {
		h, err := cl.HealthzWithResponse(ctx)
		clientStatus(t, "healthz", h.StatusCode(), h.Body, err, 200)
		if h.JSON200 == nil || h.JSON200.Status != client.Ok {
			t.Errorf("healthz: %s", h.Body)
		}
		r, err := cl.ReadyzWithResponse(ctx)
		clientStatus(t, "readyz", r.StatusCode(), r.Body, err, 200)
		sp, err := cl.GetSpecWithResponse(ctx)
		clientStatus(t, "getSpec", sp.StatusCode(), sp.Body, err, 200)
		if !bytes.Equal(sp.Body, roomcast.OpenAPI) || sp.HTTPResponse.Header.Get("Content-Type") != "application/yaml" {
			t.Errorf("getSpec: %d bytes of %q, want openapi.yaml (%d bytes of application/yaml)",
				len(sp.Body), sp.HTTPResponse.Header.Get("Content-Type"), len(roomcast.OpenAPI))
		}
		m, err := cl.MetricsWithResponse(ctx)
		clientStatus(t, "metrics", m.StatusCode(), m.Body, err, 200)
		if !bytes.Contains(m.Body, []byte("# TYPE ")) {
			t.Errorf("metrics: %.100s", m.Body)
		}
		w, err := cl.WebAppWithResponse(ctx)
		clientStatus(t, "webApp", w.StatusCode(), w.Body, err, 200)
		l, err := cl.ListNamespacesWithResponse(ctx)
		clientStatus(t, "listNamespaces", l.StatusCode(), l.Body, err, 200)
		var names []string
		for _, n := range l.JSON200.Namespaces {
			names = append(names, n.Name)
		}
		sort.Strings(names)
		if fmt.Sprint(names) != "[default secure]" {
			t.Errorf("namespaces %v, want default and secure", names)
		}
		st, err := cl.GetStatusWithResponse(ctx)
		clientStatus(t, "getStatus", st.StatusCode(), st.Body, err, 200)
		if st.JSON200 == nil || len(st.JSON200.Nodes) != 1 || !st.JSON200.Nodes[0].Self || len(st.JSON200.Namespaces) != 2 {
			t.Errorf("status %s, want this node alone and two namespaces", st.Body)
		}
	})

	// Two connections: a (lobby, through Subscribe) and b (raw connect).
	aURL, err := client.ConnectURL(s.URL, ns, &client.ConnectParams{Rooms: &[]string{"lobby"}})
	if err != nil {
		t.Fatal(err)
	}
	a := clientSubscribe(t, aURL, client.SubscribeOptions{HTTPClient: hc})
	ac := a.connected()
	if ac.Ns != ns || fmt.Sprint(ac.Rooms) != "[lobby]" || ac.Restored || ac.User != nil {
		t.Errorf("a connected: %+v", ac)
	}
	b := clientSubscribe(t, mustURL(t)(client.RoomEventsURL(s.URL, ns, "lobby", nil)), client.SubscribeOptions{HTTPClient: hc})
	bc := b.connected()

	t.Run("raw streams", func(t *testing.T) {
		// The generated methods open the stream; reading it is
		// Subscribe's job.
		for _, open := range []func() (*http.Response, error){
			func() (*http.Response, error) {
				return cl.Connect(ctx, ns, &client.ConnectParams{Rooms: &[]string{"raw"}})
			},
			func() (*http.Response, error) { return cl.RoomEvents(ctx, ns, "raw", nil) },
		} {
			resp, err := open()
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Errorf("%s: %d %s", resp.Request.URL, resp.StatusCode, resp.Header.Get("Content-Type"))
			}
		}
	})

	var ids []string
	t.Run("publish", func(t *testing.T) {
		p, err := cl.PublishWithResponse(ctx, ns, client.PublishRequest{Event: "announcement", Data: ptr[client.Payload]("hello")})
		clientStatus(t, "publish", p.StatusCode(), p.Body, err, 202)
		ids = append(ids, p.JSON202.Id)
		for _, sub := range []*clientSub{a, b} {
			if env := sub.message("announcement"); env.Id != p.JSON202.Id || env.Room != nil || env.From != nil || env.Data != "hello" {
				t.Errorf("announcement %+v", env)
			}
		}
		// As connection a, to the lobby but b, with an idempotency key.
		body := client.PublishRequest{Event: "chat message", Data: ptr[client.Payload](map[string]any{"text": "hi"}),
			Rooms: &[]string{"lobby"}, Except: &[]string{bc.Id}, Id: ptr("k-1")}
		p, err = cl.PublishWithResponse(ctx, ns, body, client.Bearer(ac.Token))
		clientStatus(t, "publish as a", p.StatusCode(), p.Body, err, 202)
		again, err := cl.PublishWithResponse(ctx, ns, body, client.Bearer(ac.Token))
		clientStatus(t, "publish again", again.StatusCode(), again.Body, err, 202)
		if again.JSON202.Id != p.JSON202.Id || again.JSON202.Duplicate == nil || !*again.JSON202.Duplicate {
			t.Errorf("idempotent retry: %s, want %s duplicate", again.Body, p.JSON202.Id)
		}
		ids = append(ids, p.JSON202.Id)
		if env := a.message("chat message"); env.From == nil || *env.From != ac.Id {
			t.Errorf("from %v, want %s", env.From, ac.Id)
		}
		r, err := cl.PublishToRoomWithResponse(ctx, ns, "lobby", client.RoomPublishRequest{Event: "room", Data: ptr[client.Payload](1.0)})
		clientStatus(t, "publishToRoom", r.StatusCode(), r.Body, err, 202)
		ids = append(ids, r.JSON202.Id)
		a.message("room")
		if env := b.message("room"); env.Room == nil || *env.Room != "lobby" {
			t.Errorf("room message %+v", env)
		}
		d, err := cl.PublishToConnectionWithResponse(ctx, ns, bc.Id, client.DirectPublishRequest{Event: "private"})
		clientStatus(t, "publishToConnection", d.StatusCode(), d.Body, err, 202)
		if env := b.message("private"); env.To == nil || *env.To != bc.Id {
			t.Errorf("direct message %+v", env)
		}
		// A batch: one result per message, in order (to a room nobody is
		// in, so that the lobby's history checked below is unchanged).
		bt, err := cl.PublishBatchWithResponse(ctx, ns, client.BatchRequest{Messages: []client.BatchMessage{
			{Event: "b1", Rooms: &[]string{"elsewhere"}}, {Event: "connected"}, {Event: "b3", Rooms: &[]string{"elsewhere"}, Id: ptr("k-b3")}}})
		clientStatus(t, "publishBatch", bt.StatusCode(), bt.Body, err, 200)
		if r := bt.JSON200.Results; len(r) != 3 || r[0].Id == nil || r[1].Error == nil || r[1].Error.Status != 400 || r[2].Id == nil ||
			e2eSeq(t, *r[2].Id) <= e2eSeq(t, *r[0].Id) {
			t.Errorf("batch results %s: want an id, a 400 problem, a later id", bt.Body)
		}
		// A volatile message: 204, and on the streams a Volatile event.
		v, err := cl.PublishToRoomWithResponse(ctx, ns, "lobby", client.RoomPublishRequest{Event: "typing", Volatile: ptr(true)})
		clientStatus(t, "volatile publish", v.StatusCode(), v.Body, err, 204)
		for _, sub := range []*clientSub{a, b} {
			if ev := sub.next(); ev.Volatile == nil || ev.Message != nil || ev.Volatile.Event != "typing" || ev.Volatile.Room == nil || *ev.Volatile.Room != "lobby" {
				t.Errorf("volatile event %q %s: want Volatile set", ev.Name, ev.Data)
			}
		}
		// Refusals come back typed.
		bad, err := cl.PublishWithResponse(ctx, ns, client.PublishRequest{Event: "connected"})
		clientStatus(t, "reserved event", bad.StatusCode(), bad.Body, err, 400)
		if bad.ApplicationproblemJSON400 == nil || bad.ApplicationproblemJSON400.Errors == nil {
			t.Errorf("400 without its problem: %s", bad.Body)
		}
	})

	t.Run("rooms and members", func(t *testing.T) {
		j, err := cl.JoinRoomWithResponse(ctx, ns, "news", ac.Id, client.Bearer(ac.Token))
		clientStatus(t, "joinRoom", j.StatusCode(), j.Body, err, 200)
		if !j.JSON200.Changed || fmt.Sprint(j.JSON200.Rooms) != "[lobby news]" {
			t.Errorf("join: %s", j.Body)
		}
		n, err := cl.JoinRoomWithResponse(ctx, ns, "news", ac.Id)
		clientStatus(t, "joinRoom without token", n.StatusCode(), n.Body, err, 401)
		if n.ApplicationproblemJSON401 == nil || n.Headers401 == nil || n.Headers401.WWWAuthenticate == "" {
			t.Errorf("401 without problem or WWW-Authenticate: %s", n.Body)
		}
		rooms, err := cl.ListRoomsWithResponse(ctx, ns)
		clientStatus(t, "listRooms", rooms.StatusCode(), rooms.Body, err, 200)
		got := map[string]int{}
		for _, r := range rooms.JSON200.Rooms {
			got[r.Name] = r.Members
		}
		if got["lobby"] != 2 || got["news"] != 1 {
			t.Errorf("rooms %v, want lobby 2 and news 1", got)
		}
		room, err := cl.GetRoomWithResponse(ctx, ns, "lobby")
		clientStatus(t, "getRoom", room.StatusCode(), room.Body, err, 200)
		if room.JSON200.Members != 2 {
			t.Errorf("lobby: %s", room.Body)
		}
		mem, err := cl.ListMembersWithResponse(ctx, ns, "news")
		clientStatus(t, "listMembers", mem.StatusCode(), mem.Body, err, 200)
		if len(mem.JSON200.Members) != 1 || mem.JSON200.Members[0].Id != ac.Id {
			t.Errorf("news members: %s", mem.Body)
		}
		conn, err := cl.GetConnectionWithResponse(ctx, ns, ac.Id)
		clientStatus(t, "getConnection", conn.StatusCode(), conn.Body, err, 200)
		if fmt.Sprint(conn.JSON200.Rooms) != "[lobby news]" || conn.JSON200.Ns != ns {
			t.Errorf("connection: %s", conn.Body)
		}
		news, err := cl.PublishToRoomWithResponse(ctx, ns, "news", client.RoomPublishRequest{Event: "news"})
		clientStatus(t, "publish to news", news.StatusCode(), news.Body, err, 202)
		ids = append(ids, news.JSON202.Id)
		a.message("news")
		l, err := cl.LeaveRoomWithResponse(ctx, ns, "news", ac.Id, client.Bearer(ac.Token))
		clientStatus(t, "leaveRoom", l.StatusCode(), l.Body, err, 200)
		if l.JSON200.Member || !l.JSON200.Changed || fmt.Sprint(l.JSON200.Rooms) != "[lobby]" {
			t.Errorf("leave: %s", l.Body)
		}
	})

	t.Run("history", func(t *testing.T) {
		h, err := cl.RoomHistoryWithResponse(ctx, ns, "lobby", &client.RoomHistoryParams{Limit: ptr(100)})
		clientStatus(t, "roomHistory", h.StatusCode(), h.Body, err, 200)
		var got []string
		for _, m := range h.JSON200.Messages {
			got = append(got, m.Id)
		}
		if want := ids[:3]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("lobby history %v, want %v (the news message is not the lobby's)", got, want)
		}
		page, err := cl.RoomHistoryWithResponse(ctx, ns, "lobby", &client.RoomHistoryParams{After: ptr(ids[0]), Limit: ptr(1)})
		clientStatus(t, "roomHistory page", page.StatusCode(), page.Body, err, 200)
		if len(page.JSON200.Messages) != 1 || page.JSON200.Messages[0].Id != ids[1] || page.JSON200.Last == nil || *page.JSON200.Last != ids[1] {
			t.Errorf("history after %s: %s, want %s", ids[0], page.Body, ids[1])
		}
	})

	t.Run("groups", func(t *testing.T) {
		const room, group = "orders", "drivers"
		pg, err := cl.PutGroupWithResponse(ctx, ns, room, group, client.GroupSettings{AckWait: ptr("1m"), MaxDeliver: ptr(1)})
		clientStatus(t, "putGroup", pg.StatusCode(), pg.Body, err, 200)
		if pg.JSON200.Config.MaxDeliver != 1 || pg.JSON200.Config.AckWait != "1m0s" {
			t.Errorf("putGroup: %s", pg.Body)
		}
		m := clientSubscribe(t, mustURL(t)(client.RoomEventsURL(s.URL, ns, room, &client.RoomEventsParams{Group: ptr(group)})), client.SubscribeOptions{HTTPClient: hc})
		mc := m.connected()
		publish := func(data string) string {
			t.Helper()
			p, err := cl.PublishToRoomWithResponse(ctx, ns, room, client.RoomPublishRequest{Event: "job", Data: ptr[client.Payload](data)})
			clientStatus(t, "publish job", p.StatusCode(), p.Body, err, 202)
			return p.JSON202.Id
		}
		delivery := func(id string) string {
			t.Helper()
			env := m.message("job")
			if (id != "" && env.Id != id) || env.AckId == nil || env.Delivery == nil || *env.Delivery != 1 {
				t.Fatalf("delivery %+v, want message %s with an ack id", env, id)
			}
			return *env.AckId
		}
		id1, id2 := publish("parcel 1"), publish("parcel 2")
		ack1, ack2 := delivery(id1), delivery(id2)

		gm, err := cl.GroupMessagesWithResponse(ctx, ns, room, group, &client.GroupMessagesParams{Limit: ptr(10)})
		clientStatus(t, "groupMessages", gm.StatusCode(), gm.Body, err, 200)
		if len(gm.JSON200.Messages) != 2 {
			t.Errorf("unacknowledged: %s, want 2", gm.Body)
		}
		pr, err := cl.ProgressWithResponse(ctx, ns, room, group, client.AckRequest{Ids: []string{ack1}}, client.Bearer(mc.Token))
		clientStatus(t, "progress", pr.StatusCode(), pr.Body, err, 204)
		ack, err := cl.AckWithResponse(ctx, ns, room, group, client.AckRequest{Ids: []string{ack1}}, client.Bearer(mc.Token))
		clientStatus(t, "ack", ack.StatusCode(), ack.Body, err, 204)
		other, err := cl.AckWithResponse(ctx, ns, room, group, client.AckRequest{Ids: []string{ack2}}, client.Bearer(ac.Token))
		clientStatus(t, "ack with another connection's token", other.StatusCode(), other.Body, err, 403)
		// max_deliver 1: refused once, parked.
		nack, err := cl.NackWithResponse(ctx, ns, room, group, client.NackRequest{Ids: []string{ack2}}, client.Bearer(mc.Token))
		clientStatus(t, "nack", nack.StatusCode(), nack.Body, err, 204)
		var dead []client.DeadLetter
		eventually(t, specTimeout, "the refused delivery to be parked", func() bool {
			d, err := cl.ListDeadWithResponse(ctx, ns, room, group, &client.ListDeadParams{Limit: ptr(10)})
			clientStatus(t, "listDead", d.StatusCode(), d.Body, err, 200)
			dead = d.JSON200.DeadLetters
			return len(dead) == 1
		})
		if dead[0].Message.Id != id2 || dead[0].Deliveries != 1 {
			t.Errorf("dead letter %+v, want %s after 1 delivery", dead[0], id2)
		}
		g, err := cl.GetGroupWithResponse(ctx, ns, room, group)
		clientStatus(t, "getGroup", g.StatusCode(), g.Body, err, 200)
		if g.JSON200.DeadLetters != 1 || len(g.JSON200.Members) != 1 || g.JSON200.Members[0].Id != mc.Id {
			t.Errorf("group: %s, want 1 dead letter and the member", g.Body)
		}
		rp, err := cl.ReplayDeadWithResponse(ctx, ns, room, group, dead[0].Seq)
		clientStatus(t, "replayDead", rp.StatusCode(), rp.Body, err, 202)
		replayed := m.message("job")
		if replayed.Data != "parcel 2" || replayed.AckId == nil {
			t.Fatalf("replayed %+v, want parcel 2 again", replayed)
		}

		ack, err = cl.AckWithResponse(ctx, ns, room, group, client.AckRequest{Ids: []string{*replayed.AckId}}, client.Bearer(mc.Token))
		clientStatus(t, "ack replayed", ack.StatusCode(), ack.Body, err, 204)

		id3 := publish("parcel 3")
		nack, err = cl.NackWithResponse(ctx, ns, room, group, client.NackRequest{Ids: []string{delivery(id3)}}, client.Bearer(mc.Token))
		clientStatus(t, "nack 3", nack.StatusCode(), nack.Body, err, 204)
		eventually(t, specTimeout, "parcel 3 to be parked", func() bool {
			d, err := cl.ListDeadWithResponse(ctx, ns, room, group, nil)
			clientStatus(t, "listDead", d.StatusCode(), d.Body, err, 200)
			dead = d.JSON200.DeadLetters
			return len(dead) == 1 && dead[0].Message.Id == id3
		})
		// Both parks were announced to the member.
		for len(m.notices) < 2 {
			if ev := m.next(); ev.Name == "dead_letter" {
				m.notices = append(m.notices, ev.Message)
			}
		}
		for i, want := range []string{id2, id3} {
			if d, _ := m.notices[i].Data.(map[string]any); d["id"] != want {
				t.Errorf("dead_letter notice %d: %+v, want one for %s", i, m.notices[i], want)
			}
		}
		dd, err := cl.DropDeadWithResponse(ctx, ns, room, group, dead[0].Seq)
		clientStatus(t, "dropDead", dd.StatusCode(), dd.Body, err, 204)
		lg, err := cl.ListGroupsWithResponse(ctx, ns, room)
		clientStatus(t, "listGroups", lg.StatusCode(), lg.Body, err, 200)
		if len(lg.JSON200.Groups) != 1 || lg.JSON200.Groups[0].Group != group || lg.JSON200.Groups[0].DeadLetters != 0 {
			t.Errorf("groups: %s", lg.Body)
		}
		if err := m.stop(); !errors.Is(err, context.Canceled) {
			t.Errorf("Subscribe after cancel: %v, want context.Canceled", err)
		}
		del, err := cl.DeleteGroupWithResponse(ctx, ns, room, group)
		clientStatus(t, "deleteGroup", del.StatusCode(), del.Body, err, 204)
		gone, err := cl.GetGroupWithResponse(ctx, ns, room, group)
		clientStatus(t, "deleted group", gone.StatusCode(), gone.Body, err, 404)
	})

	t.Run("tickets", func(t *testing.T) {
		tok := specJWT(t, jwt.SigningMethodHS256, specSecret, "carol", map[string]any{"subscribe": []string{"chat"}}, map[string]any{"iss": nil})
		anon, err := cl.IssueTicketWithResponse(ctx, "secure")
		clientStatus(t, "issueTicket anonymous", anon.StatusCode(), anon.Body, err, 401)
		tk, err := cl.IssueTicketWithResponse(ctx, "secure", client.Bearer(tok))
		clientStatus(t, "issueTicket", tk.StatusCode(), tk.Body, err, 201)
		if time.Until(tk.JSON201.ExpiresAt) > time.Minute || tk.JSON201.Ticket == "" {
			t.Errorf("ticket %s", tk.Body)
		}
		u := mustURL(t)(client.ConnectURL(s.URL, "secure", &client.ConnectParams{Rooms: &[]string{"chat"}, Ticket: ptr(tk.JSON201.Ticket)}))
		sub := clientSubscribe(t, u, client.SubscribeOptions{HTTPClient: hc})
		if c := sub.connected(); c.User == nil || *c.User != "carol" || fmt.Sprint(c.Rooms) != "[chat]" {
			t.Errorf("ticket stream connected %+v, want carol in chat", c)
		}
		sub.stop()
		// A stream refused for good ends Subscribe with the problem.
		refused := clientSubscribe(t, mustURL(t)(client.ConnectURL(s.URL, "secure", nil)), client.SubscribeOptions{HTTPClient: hc})
		var se *client.StatusError
		if err := refused.ended(); !errors.As(err, &se) || se.StatusCode != 401 || se.Problem == nil {
			t.Errorf("anonymous stream in a jwt namespace: Subscribe returned %v, want a 401 StatusError", err)
		}
	})

	t.Run("disconnect", func(t *testing.T) {
		d, err := cl.DisconnectWithResponse(ctx, ns, bc.Id, client.Bearer(ac.Token))
		clientStatus(t, "disconnect with another token", d.StatusCode(), d.Body, err, 403)
		d, err = cl.DisconnectWithResponse(ctx, ns, ac.Id, client.Bearer(ac.Token))
		clientStatus(t, "disconnect", d.StatusCode(), d.Body, err, 204)
		// The stream says why it ends, and Subscribe stops there.
		var end client.Event
		for end.End == nil {
			end = a.next()
		}
		if end.End.Reason != client.Disconnected {
			t.Errorf("end reason %q, want disconnected", end.End.Reason)
		}
		if err := a.ended(); !errors.Is(err, client.ErrDisconnected) {
			t.Errorf("Subscribe after a disconnect on request: %v, want ErrDisconnected", err)
		}
		// A client that knows no end event (EventSource) resumes: the 204
		// answer stops it.
		again := clientSubscribe(t, aURL, client.SubscribeOptions{HTTPClient: hc, LastEventID: end.ID})
		if err := again.ended(); !errors.Is(err, client.ErrDisconnected) {
			t.Errorf("a resume of a connection disconnected on request: %v, want ErrDisconnected", err)
		}
		if !tr.seen("connect", 204) {
			t.Error("the resume's 204 was not validated")
		}
	})

	// Every operation of the spec, with a success — when every subtest ran
	// (a -run filter picking one subtest skips the others' operations).
	if f := flag.Lookup("test.run"); f != nil && strings.Contains(f.Value.String(), "/") {
		t.Log("a subtest filter is set: the check that every operation was performed is skipped")
		return
	}
	var missing []string
	for path, item := range tr.c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			ok := false
			for code := 200; code < 300; code++ {
				ok = ok || tr.seen(op.OperationID, code)
			}
			if !ok {
				missing = append(missing, op.OperationID+" ("+method+" "+path+")")
			}
		}
	}
	slices.Sort(missing)
	for _, m := range missing {
		t.Errorf("the generated client never performed %s successfully", m)
	}
}

// mustURL unwraps the (url, error) of ConnectURL and RoomEventsURL.
func mustURL(t *testing.T) func(string, error) string {
	return func(u string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
}

// TestClientSubscribeResume: Subscribe delivers typed envelopes and resumes
// with no gap and no duplicate across server-side disconnects (the JWT of
// the stream expires: the server ends it, a new one is fetched) and across
// a restart of the server on the same data and port.
func TestClientSubscribeResume(t *testing.T) {
	data, addr := t.TempDir(), freeAddr(t)
	s := startClientServer(t, data, "--addr", addr)
	cl, hc, _ := newClient(t, s)
	ctx := context.Background()

	t.Run("token expiry", func(t *testing.T) {
		// Each token lives 2 s: the server ends the stream when it expires,
		// and Subscribe comes back with a fresh one.
		var mu sync.Mutex
		minted := 0
		tokens := func(context.Context) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			minted++
			return specJWT(t, jwt.SigningMethodHS256, specSecret, "dave", map[string]any{"subscribe": []string{"feed"}, "publish": []string{"feed"}},
				map[string]any{"iss": nil, "exp": time.Now().Add(2 * time.Second).Unix()}), nil
		}
		u := mustURL(t)(client.ConnectURL(s.URL, "secure", &client.ConnectParams{Rooms: &[]string{"feed"}}))
		var drops []string
		sub := clientSubscribe(t, u, client.SubscribeOptions{HTTPClient: hc, TokenFunc: tokens, MaxInterval: 200 * time.Millisecond,
			OnRetry: func(err error, _ time.Duration) { mu.Lock(); drops = append(drops, err.Error()); mu.Unlock() }})
		first := sub.connected()
		var want []string
		deadline := time.Now().Add(5 * time.Second) // two or three expiries
		for i := 0; time.Now().Before(deadline); i++ {
			tok, _ := tokens(ctx)
			p, err := cl.PublishToRoomWithResponse(ctx, "secure", "feed", client.RoomPublishRequest{Event: "tick", Data: ptr[client.Payload](float64(i))}, client.Bearer(tok))
			if p == nil {
				t.Fatalf("publish: %v", err)
			}
			clientStatus(t, "publish", p.StatusCode(), p.Body, err, 202)
			want = append(want, p.JSON202.Id)
			time.Sleep(50 * time.Millisecond)
		}
		var got []string
		restored, expired := 0, 0
		for len(got) < len(want) {
			ev := sub.next()
			switch {
			case ev.Connected != nil:
				if !ev.Connected.Restored || ev.Connected.Id != first.Id {
					t.Fatalf("after a drop: connected %+v, want %s restored", ev.Connected, first.Id)
				}
				restored++
			case ev.End != nil:
				if ev.End.Reason != client.Expired {
					t.Fatalf("the stream ended with %q, want expired", ev.End.Reason)
				}
				expired++
			case ev.Message != nil:
				got = append(got, ev.Message.Id)
			default:
				t.Fatalf("unexpected event %q: %s", ev.Name, ev.Data)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("received %v\nwant %v", got, want)
		}
		mu.Lock()
		defer mu.Unlock()
		if restored < 2 {
			t.Errorf("the stream was resumed %d times in 5 s of 2 s tokens, want at least 2 (retries: %v)", restored, drops)
		}
		if expired < restored {
			t.Errorf("%d resumes but %d end events: each expiry is announced (end, reason expired)", restored, expired)
		}
	})

	t.Run("restart", func(t *testing.T) {
		u := mustURL(t)(client.RoomEventsURL(s.URL, "default", "lobby", nil))
		sub := clientSubscribe(t, u, client.SubscribeOptions{HTTPClient: hc, MaxInterval: 500 * time.Millisecond})
		first := sub.connected()
		publish := func(cl *client.ClientWithResponses, n int) []string {
			t.Helper()
			var ids []string
			for i := range n {
				p, err := cl.PublishToRoomWithResponse(ctx, "default", "lobby", client.RoomPublishRequest{Event: "chat message", Data: ptr[client.Payload](map[string]any{"n": float64(i)})})
				clientStatus(t, "publish", p.StatusCode(), p.Body, err, 202)
				ids = append(ids, p.JSON202.Id)
			}
			return ids
		}
		want := publish(cl, 5)
		for _, id := range want {
			if env := sub.message("chat message"); env.Id != id {
				t.Fatalf("got %s, want %s", env.Id, id)
			}
		}
		s.Stop()
		s2 := startClientServer(t, data, "--addr", addr)
		cl2, _, _ := newClient(t, s2)
		// Published while the client is away, then live.
		missed := publish(cl2, 5)
		ev := sub.next()
		if ev.End == nil || ev.End.Reason != client.Shutdown {
			t.Fatalf("the stream ended with %q %s, want end with reason shutdown", ev.Name, ev.Data)
		}
		ev = sub.next()
		if ev.Connected == nil || !ev.Connected.Restored || ev.Connected.Id != first.Id {
			t.Fatalf("after the restart: %q %s, want connection %s restored", ev.Name, ev.Data, first.Id)
		}
		live := publish(cl2, 3)
		for _, id := range append(missed, live...) {
			if env := sub.message("chat message"); env.Id != id {
				t.Fatalf("got %s, want %s (missed %v, live %v)", env.Id, id, missed, live)
			}
		}
		if err := sub.stop(); !errors.Is(err, context.Canceled) {
			t.Errorf("Subscribe after cancel: %v", err)
		}
	})
}
