// Package dashboard is Switchboard's built-in web dashboard: one
// self-contained page (GET /, every asset embedded) and the JSON endpoints
// behind it under /api/. History (traffic, latency, cost, the request log)
// is read from ClickHouse; live state (queue depth per provider and lane,
// waiting workers, DLQ size, telemetry not yet loaded) from NATS, so the
// page still shows the live state, and says analytics is buffering, when
// ClickHouse is absent. The gateway mounts it (gateway.Options.Dashboard)
// behind its admin keys.
package dashboard

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/analytics/store"
	"github.com/switchboard-llm/switchboard/config"
)

// Defaults and bounds of the endpoints' parameters.
const (
	DefaultSince = time.Hour
	MaxSince     = 31 * 24 * time.Hour
	// DefaultLimit and MaxLimit bound the request log's rows.
	DefaultLimit = 50
	MaxLimit     = 500
	// RetryClickHouse is how long a failed ClickHouse connect is remembered
	// before the next request tries again.
	RetryClickHouse = 10 * time.Second
	// queryTimeout bounds one endpoint's queries.
	queryTimeout = 10 * time.Second
)

// ErrNoJetStream means Options carried no JetStream context.
var ErrNoJetStream = errors.New("dashboard: a JetStream context is required")

// BreakerReader reads a target's shared circuit-breaker state
// (policy/breaker.Set satisfies it through BreakerFunc).
type BreakerReader func(provider, model string) string

// SpendReader reads a tenant's spend in the UTC day and month holding at
// (policy/budget.Tracker.Spent).
type SpendReader func(tenant string, at time.Time) (day, month float64)

// Options configure a Dashboard.
type Options struct {
	// Config returns the live config (routes, providers, budgets).
	Config func() *config.Config
	// JS reads the live queue state.
	JS jetstream.JetStream
	// ClickHouse is an open connection; when nil, DSN is dialled on demand
	// (and again after RetryClickHouse when it failed). Both empty: no
	// analytics, only live state.
	ClickHouse driver.Conn
	DSN        string
	// Breakers and Spend are optional readers of shared state.
	Breakers BreakerReader
	Spend    SpendReader
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Dashboard serves the page and its JSON endpoints.
type Dashboard struct {
	opts    Options
	log     *slog.Logger
	ch      chConn
	handler http.Handler
}

// New builds a dashboard.
func New(opts Options) (*Dashboard, error) {
	if opts.JS == nil {
		return nil, ErrNoJetStream
	}
	if opts.Config == nil {
		return nil, fmt.Errorf("dashboard: %w", errors.New("a config source is required"))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	d := &Dashboard{opts: opts, log: opts.Logger}
	if d.log == nil {
		d.log = slog.Default()
	}
	d.ch = chConn{conn: opts.ClickHouse, dsn: opts.DSN, now: opts.Now}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", d.handleIndex)
	mux.HandleFunc("GET /api/overview", d.api(d.overview))
	mux.HandleFunc("GET /api/providers", d.api(d.providers))
	mux.HandleFunc("GET /api/routes", d.api(d.routes))
	mux.HandleFunc("GET /api/tenants", d.api(d.tenants))
	mux.HandleFunc("GET /api/queue", d.api(d.queue))
	mux.HandleFunc("GET /api/jobs", d.api(d.jobs))
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody(fmt.Sprintf("unknown dashboard endpoint %s %s", r.Method, r.URL.Path)))
	})
	d.handler = mux
	return d, nil
}

// ServeHTTP serves GET / and /api/.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) { d.handler.ServeHTTP(w, r) }

// Close closes a ClickHouse connection the dashboard dialled itself.
func (d *Dashboard) Close() error { return d.ch.close() }

//go:embed web/index.html
var indexHTML []byte

//go:embed web/style.css
var styleCSS []byte

//go:embed web/app.js
var appJS []byte

// page is index.html with the stylesheet and script inlined: one request,
// nothing fetched from elsewhere.
var page = func() []byte {
	s := strings.Replace(string(indexHTML), "/*STYLE*/", string(styleCSS), 1)
	s = strings.Replace(s, "/*SCRIPT*/", string(appJS), 1)
	return []byte(s)
}()

func (d *Dashboard) handleIndex(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	w.Write(page)
}

// badRequest is an invalid parameter (answered 400).
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

// api wraps an endpoint: parameters, timeout, JSON answer.
func (d *Dashboard) api(f func(ctx context.Context, q query) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q, err := d.parseQuery(r)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody(err.Error()))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
		defer cancel()
		v, err := f(ctx, q)
		if err != nil {
			var br *badRequest
			if errors.As(err, &br) {
				writeJSON(w, http.StatusBadRequest, errorBody(br.msg))
				return
			}
			d.log.Warn("dashboard query failed", "path", r.URL.Path, "err", err)
			writeJSON(w, http.StatusInternalServerError, errorBody(err.Error()))
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, v)
	}
}

// query is the parsed parameters of an endpoint.
type query struct {
	since  time.Duration
	from   time.Time
	to     time.Time
	limit  int
	jobID  string
	tenant string
	route  string
	status string
}

func (d *Dashboard) parseQuery(r *http.Request) (query, error) {
	v := r.URL.Query()
	q := query{since: DefaultSince, limit: DefaultLimit}
	if s := v.Get("since"); s != "" {
		dur, err := time.ParseDuration(s)
		if err != nil || dur < time.Minute || dur > MaxSince {
			return q, fmt.Errorf("since: %q must be a duration between 1m and %s (e.g. 15m, 1h, 24h)", s, MaxSince)
		}
		q.since = dur
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return q, fmt.Errorf("limit: %q must be a whole number between 1 and %d", s, MaxLimit)
		}
		q.limit = n
	}
	q.jobID = strings.TrimSpace(v.Get("job_id"))
	q.tenant = v.Get("tenant")
	q.route = v.Get("route")
	q.status = v.Get("status")
	switch q.status {
	case "", "succeeded", "failed":
	default:
		return q, fmt.Errorf("status: %q must be succeeded or failed", q.status)
	}
	for name, s := range map[string]string{"job_id": q.jobID, "tenant": q.tenant, "route": q.route} {
		if len(s) > 256 {
			return q, fmt.Errorf("%s: longer than 256 bytes", name)
		}
	}
	q.to = d.opts.Now().UTC()
	q.from = q.to.Add(-q.since).Truncate(time.Minute)
	return q, nil
}

func errorBody(msg string) any {
	return map[string]any{"error": map[string]string{"message": msg}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"message":"could not encode the answer"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// chConn is the dashboard's ClickHouse connection, dialled on demand.
type chConn struct {
	mu      sync.Mutex
	conn    driver.Conn
	dsn     string
	owned   bool
	lastErr error
	lastTry time.Time
	now     func() time.Time
}

// errNoAnalytics means no ClickHouse is configured.
var errNoAnalytics = errors.New("no ClickHouse configured (start with --clickhouse DSN or SWITCHBOARD_CLICKHOUSE, or install clickhouse-server for `up`)")

func (c *chConn) get(ctx context.Context) (driver.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		return c.conn, nil
	}
	if c.dsn == "" {
		return nil, errNoAnalytics
	}
	if c.lastErr != nil && c.now().Sub(c.lastTry) < RetryClickHouse {
		return nil, c.lastErr
	}
	c.lastTry = c.now()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := store.Open(ctx, c.dsn)
	if err != nil {
		c.lastErr = err
		return nil, err
	}
	c.conn, c.owned, c.lastErr = conn, true, nil
	return conn, nil
}

func (c *chConn) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.owned && c.conn != nil {
		err := c.conn.Close()
		c.conn = nil
		return err
	}
	return nil
}

// SetDSN sets the ClickHouse DSN once it is known (`up` starts its managed
// server after the gateway is built); a connection already open stays.
func (d *Dashboard) SetDSN(dsn string) {
	d.ch.mu.Lock()
	defer d.ch.mu.Unlock()
	if d.ch.dsn != dsn {
		d.ch.dsn, d.ch.lastErr = dsn, nil
	}
}
