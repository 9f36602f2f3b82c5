package api

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-playground/validator/v10"

	"github.com/roomcast/roomcast/internal/hub"
)

// Streams serves an SSE stream (implemented by sse.Server): it opens the
// connection req describes (the Streams provides its Sink) and streams to
// it. It returns an error only when it wrote nothing, so that the API can
// answer a problem.
type Streams interface {
	Serve(w http.ResponseWriter, r *http.Request, ns *hub.Namespace, req hub.OpenRequest) error
}

// Namespace is a declared namespace's HTTP settings.
type Namespace struct {
	Name     string
	MaxBody  int64
	Security Security
	// MaxBatch and MaxBatchBody bound a batch publish: its messages and its
	// body's bytes (0: DefaultMaxBatch, DefaultMaxBatchBody).
	MaxBatch     int
	MaxBatchBody int64
}

// The bounds of a batch publish of a namespace that sets none (the config's
// max_batch and max_batch_body).
const (
	DefaultMaxBatch     = 1000
	DefaultMaxBatchBody = 1 << 20
)

// Config wires the API.
type Config struct {
	Hub        *hub.Hub
	Streams    Streams
	Namespaces []Namespace
	// Ready reports whether the engine can take publishes (/readyz).
	Ready func(ctx context.Context) error
	Spec  []byte // openapi.yaml, served at /openapi.yaml
	// Web returns the browser app, served at / (nil: not served); it is
	// given the API's problem+json 404 handler for paths that name no file.
	Web    func(notFound http.Handler) http.Handler
	Logger *slog.Logger
	// Metrics serves /metrics (nil: not served).
	Metrics http.Handler
	// ObserveRequest, when set, is called after each request with its chi
	// route pattern (a bounded label), method, status and duration.
	ObserveRequest func(route, method string, code int, d time.Duration, streaming bool)
	// Tickets stores stream tickets (nil: POST …/tickets answers 503).
	Tickets TicketStore
	// MaxConnections bounds open streams on this node (0: unlimited).
	MaxConnections int
	// Status describes this node at GET /status (nil: not served).
	Status *Status
	// Limits bound every request in time and per client address.
	Limits Limits
}

// API holds the handlers' dependencies.
type API struct {
	cfg      Config
	logger   *slog.Logger
	validate *validator.Validate
	conns    *connLimiter
}

// New returns the router serving the whole HTTP surface.
func New(cfg Config) (http.Handler, error) {
	a := &API{cfg: cfg, logger: cfg.Logger, validate: newValidator(), conns: newConnLimiter(cfg.MaxConnections)}
	r := chi.NewRouter()
	r.Use(middleware.RequestID, a.accessLog, a.limits, middleware.Recoverer, middleware.GetHead)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, Problem{Type: "about:blank", Title: "not found", Status: http.StatusNotFound,
			Detail: "no such endpoint; see /openapi.yaml", Instance: r.URL.Path, RequestID: middleware.GetReqID(r.Context())})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		// RFC 9110: a 405 lists the methods the resource supports.
		var allowed []string
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete} {
			if r.Match(chi.NewRouteContext(), m, req.URL.Path) {
				allowed = append(allowed, m)
			}
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeProblem(w, Problem{Type: "about:blank", Title: "method not allowed", Status: http.StatusMethodNotAllowed,
			Detail: req.Method + " is not allowed here; see /openapi.yaml", Instance: req.URL.Path, RequestID: middleware.GetReqID(req.Context())})
	})

	r.Get("/healthz", a.healthz)
	r.Get("/readyz", a.readyz)
	r.Get("/openapi.yaml", a.spec)
	if cfg.Metrics != nil {
		r.Method(http.MethodGet, "/metrics", cfg.Metrics)
	}
	r.Get("/ns", a.listNamespaces)
	if cfg.Status != nil {
		r.Get("/status", a.status) // status.go
	}
	if cfg.Web != nil {
		r.Get("/*", cfg.Web(r.NotFoundHandler()).ServeHTTP)
	}

	// One route group per declared namespace, each with its own middleware
	// stack; chi matches these static prefixes before the catch-all below.
	for _, nc := range cfg.Namespaces {
		ns, err := cfg.Hub.Namespace(nc.Name)
		if err != nil {
			return nil, err
		}
		sec := nc.Security
		h := &nsAPI{API: a, ns: ns, maxBody: nc.MaxBody, sec: &sec,
			batch: batchLimits{count: cmp.Or(nc.MaxBatch, DefaultMaxBatch), body: cmp.Or(nc.MaxBatchBody, DefaultMaxBatchBody)}}
		csrf, err := crossOrigin(sec.CORSOrigins)
		if err != nil {
			return nil, fmt.Errorf("namespace %s: %w", nc.Name, err)
		}
		r.Route("/ns/"+nc.Name, func(r chi.Router) {
			r.Use(noSniff)
			if len(sec.CORSOrigins) > 0 {
				r.Use(corsMiddleware(sec.CORSOrigins))
			}
			r.Use(csrf)
			connect, publish, join := limit(sec.Connect), limit(sec.Publish), limit(sec.Join)
			// SSE: no timeout or throttle middleware (it would kill or pin
			// long-lived streams); a connection limit instead.
			r.With(connect...).Get("/events", h.connect)
			r.With(connect...).Get("/rooms/{room}/events", h.roomEvents)
			r.With(connect...).Post("/tickets", h.issueTicket)

			r.With(publish...).Post("/messages", h.publish)
			r.Post("/messages/batch", h.publishBatch(publish)) // rate limits per message, once the body is read
			r.Get("/rooms", h.listRooms)
			r.Get("/rooms/{room}", h.getRoom)
			r.With(publish...).Post("/rooms/{room}/messages", h.publishRoom)
			r.Get("/rooms/{room}/messages", h.history)
			r.Get("/rooms/{room}/members", h.listMembers)
			r.With(join...).Put("/rooms/{room}/members/{id}", h.join)
			r.With(join...).Delete("/rooms/{room}/members/{id}", h.leave)
			r.Get("/connections/{id}", h.getConnection)
			r.Delete("/connections/{id}", h.disconnect)
			r.With(publish...).Post("/connections/{id}/messages", h.publishConn)

			r.Get("/rooms/{room}/groups", h.listGroups)
			r.Get("/rooms/{room}/groups/{group}", h.getGroup)
			r.Put("/rooms/{room}/groups/{group}", h.putGroup)
			r.Delete("/rooms/{room}/groups/{group}", h.deleteGroup)
			r.Get("/rooms/{room}/groups/{group}/messages", h.groupMessages)
			r.Post("/rooms/{room}/groups/{group}/acks", h.ack)
			r.Post("/rooms/{room}/groups/{group}/nacks", h.nack)
			r.Post("/rooms/{room}/groups/{group}/progress", h.progress)
			r.Get("/rooms/{room}/groups/{group}/dead", h.listDead)
			r.Post("/rooms/{room}/groups/{group}/dead/{seq}/replay", h.replayDead)
			r.Delete("/rooms/{room}/groups/{group}/dead/{seq}", h.dropDead)
		})
	}
	r.HandleFunc("/ns/{ns}", a.unknownNamespace)
	r.HandleFunc("/ns/{ns}/*", a.unknownNamespace)
	return r, nil
}

func noSniff(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

// accessLog writes one line per request (at its end, so SSE streams log
// their whole duration) and feeds the request metrics. Query strings and
// headers are never logged: last_event_id, Last-Event-ID and Authorization
// carry connection tokens.
func (a *API) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		start := time.Now()
		next.ServeHTTP(ww, r)
		d := time.Since(start)
		streaming := strings.HasPrefix(ww.Header().Get("Content-Type"), "text/event-stream")
		if a.cfg.ObserveRequest != nil {
			route := "unmatched"
			if rc := chi.RouteContext(r.Context()); rc != nil {
				// RoutePattern builds a string each call.
				if p := rc.RoutePattern(); p != "" {
					route = p
				}
			}
			a.cfg.ObserveRequest(route, r.Method, ww.Status(), d, streaming)
		}
		// The arguments box and allocate even when the level is off (the
		// benchmarks run at warn): build them only when the line is written.
		if a.logger.Enabled(r.Context(), slog.LevelInfo) {
			a.logger.Info("request", "request_id", middleware.GetReqID(r.Context()), "method", r.Method,
				"path", r.URL.Path, "status", ww.Status(), "bytes", ww.BytesWritten(),
				"duration", d.Round(time.Microsecond).String(), "remote", r.RemoteAddr)
		}
	})
}

func (a *API) unknownNamespace(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "ns")
	if !hub.ValidNamespace(name) {
		writeError(w, r, a.logger, invalidParam("ns", "must be 1–64 of A-Z a-z 0-9 _ -"))
		return
	}
	writeError(w, r, a.logger, notFound("namespace "+name+" is not declared on this server, which serves "+
		a.declared()+": declare it under namespaces: in the config file (--config)"))
}

// declared lists the namespaces served, for the 404 of an undeclared one
// (the first 10, by name).
func (a *API) declared() string {
	names := make([]string, 0, len(a.cfg.Namespaces))
	for _, n := range a.cfg.Namespaces {
		names = append(names, n.Name)
	}
	slices.Sort(names)
	if len(names) > 10 {
		names = append(names[:10], "…")
	}
	return strings.Join(names, ", ")
}

func (a *API) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if a.cfg.Ready != nil {
		if err := a.cfg.Ready(ctx); err != nil {
			writeError(w, r, a.logger, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (a *API) spec(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(a.cfg.Spec)
}

type namespaceInfo struct {
	Name        string `json:"name"`
	Connections int    `json:"connections"`
	Rooms       int    `json:"rooms"`
}

func (a *API) listNamespaces(w http.ResponseWriter, _ *http.Request) {
	out := []namespaceInfo{}
	for _, ns := range a.cfg.Hub.Namespaces() {
		conns, rooms := ns.LocalCounts()
		out = append(out, namespaceInfo{Name: ns.Name(), Connections: conns, Rooms: rooms})
	}
	writeJSON(w, http.StatusOK, map[string]any{"namespaces": out})
}
