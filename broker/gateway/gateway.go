// Package gateway is Switchboard's OpenAI-compatible HTTP front door. Every
// chat completion becomes a durable Job on JetStream, answered when its Result
// (or, for stream: true, its chunks) arrives; POST /v1/jobs queues jobs for
// later; GET /v1/jobs/{id} reads results back; /v1/models, /healthz, /readyz
// and /metrics serve operators.
package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/router"
	"github.com/switchboard-llm/switchboard/topology"
)

// Defaults of Options.
const (
	DefaultShutdownGrace = 10 * time.Second
	DefaultQueueDepthTTL = 3 * time.Second
)

// Options configure a gateway.
type Options struct {
	// Config is the validated switchboard config; its gateway section is
	// read once by New. Optional when Resolver is set.
	Config *config.Config
	// Resolver routes jobs (breakers, latencies, budgets); its live config
	// (Options.Live, or SetConfig) serves routes, providers and /v1/models. Default:
	// router.New(Config, router.Options{}).
	Resolver *router.Resolver
	// Conn and JS reach NATS; the caller owns and closes them.
	Conn *nats.Conn
	JS   jetstream.JetStream
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Getenv reads gateway keys (default os.Getenv).
	Getenv func(string) string
	// ShutdownGrace bounds how long Run waits for in-flight requests.
	ShutdownGrace time.Duration
	// QueueDepthTTL is how long /metrics caches consumer queue depths.
	QueueDepthTTL time.Duration
	// Dashboard, when set, serves GET / and /api/ (see dashboard.go).
	Dashboard http.Handler
	// Collectors are the metrics of the process's other components (up's
	// worker pools and ingester), served on /metrics beside the gateway's.
	Collectors []prometheus.Collector
}

// Server is the HTTP front door. It is safe for concurrent use.
type Server struct {
	gwCfg    config.Gateway
	resolver *router.Resolver
	nc       *nats.Conn
	js       jetstream.JetStream
	client   *broker.Client
	log      *slog.Logger
	keys     []apiKey
	sem      chan struct{}
	metrics  *metrics
	grace    time.Duration
	depth    depthCache
	handler  http.Handler
	dash     http.Handler
	known    knownJobs
}

// apiKey is a configured gateway key, kept only as its SHA-256 digest so
// comparisons take constant time regardless of length.
type apiKey struct {
	digest [32]byte
	tenant string
	tier   string
	admin  bool
}

// New builds a gateway. Keys configured under gateway.api_keys are read from
// the environment now; a configured key whose variable is empty is an error.
func New(opts Options) (*Server, error) {
	if opts.Config == nil && opts.Resolver != nil {
		opts.Config = opts.Resolver.Config()
	}
	if opts.Config == nil {
		return nil, ErrNoConfig
	}
	resolver := opts.Resolver
	if resolver == nil {
		resolver = router.New(opts.Config, router.Options{})
	}
	if opts.Conn == nil {
		return nil, ErrNoConn
	}
	js := opts.JS
	var err error
	if js == nil {
		if js, err = jetstream.New(opts.Conn); err != nil {
			return nil, fmt.Errorf("gateway: jetstream: %w", err)
		}
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg := opts.Config
	maxInFlight := cfg.Gateway.MaxInFlight
	if maxInFlight <= 0 {
		maxInFlight = config.DefaultMaxInFlight
	}
	s := &Server{
		gwCfg:    cfg.Gateway,
		resolver: resolver,
		nc:       opts.Conn,
		js:       js,
		client:   broker.NewClient(opts.Conn, js, resolver),
		log:      log,
		sem:      make(chan struct{}, maxInFlight),
		metrics:  newMetrics(opts.Collectors...),
		grace:    opts.ShutdownGrace,
		dash:     opts.Dashboard,
		known:    knownJobs{ttl: cfg.Limits.ResultsMaxAge},
	}
	if s.grace <= 0 {
		s.grace = DefaultShutdownGrace
	}
	if s.gwCfg.RequestTimeout <= 0 {
		s.gwCfg.RequestTimeout = config.DefaultRequestTimeout
	}
	if s.gwCfg.MaxBodyBytes <= 0 {
		s.gwCfg.MaxBodyBytes = config.DefaultMaxBodyBytes
	}
	if s.gwCfg.ReadHeaderTimeout <= 0 {
		s.gwCfg.ReadHeaderTimeout = config.DefaultReadHeaderTimeout
	}
	if s.gwCfg.ReadBodyTimeout <= 0 {
		s.gwCfg.ReadBodyTimeout = config.DefaultReadBodyTimeout
	}
	s.depth.ttl = opts.QueueDepthTTL
	if s.depth.ttl <= 0 {
		s.depth.ttl = DefaultQueueDepthTTL
	}
	for i, k := range cfg.Gateway.APIKeys {
		v := getenv(k.KeyEnv)
		if v == "" {
			return nil, fmt.Errorf("gateway.api_keys[%d].key_env %s: %w", i, k.KeyEnv, ErrKeyNotSet)
		}
		s.keys = append(s.keys, apiKey{digest: sha256.Sum256([]byte(v)), tenant: k.Tenant, tier: k.Tier, admin: k.Admin})
	}
	s.handler = s.routes()
	return s, nil
}

// Close releases the gateway's NATS subscription; Run and Serve call it
// when they return. The connection itself belongs to the caller.
func (s *Server) Close() error { return s.client.Close() }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.authed(s.withBody(s.limited(s.handleChat))))
	mux.HandleFunc("POST /v1/jobs", s.authed(s.withBody(s.limited(s.handleSubmit))))
	mux.HandleFunc("GET /v1/jobs/{id}", s.authed(s.handleGetJob))
	mux.HandleFunc("POST /v1/embeddings", s.authed(s.withBody(s.limited(s.handleEmbeddings))))
	mux.HandleFunc("POST /v1/messages", s.authed(s.withBody(s.limited(s.handleMessages))))
	mux.HandleFunc("POST /v1/messages/count_tokens", s.authed(s.handleCountTokens))
	mux.HandleFunc("GET /v1/models", s.authed(s.handleModels))
	mux.HandleFunc("GET /v1/models/{id...}", s.authed(s.handleModel))
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.HandleFunc("GET /readyz", s.handleReady)
	mux.HandleFunc("GET /metrics", s.metricsAccess(s.handleMetrics))
	s.mountDashboard(mux)
	mux.HandleFunc("/", s.handleUnknown)
	return s.bodyDeadline(mux)
}

// metricsAccess puts /metrics behind the gateway keys, when any are
// configured, unless gateway.public_metrics is set.
func (s *Server) metricsAccess(next http.HandlerFunc) http.HandlerFunc {
	if s.gwCfg.PublicMetrics {
		return next
	}
	return s.authed(next)
}

// config is the live config (routes, providers, models).
func (s *Server) config() *config.Config { return s.resolver.Config() }

// Handler returns the gateway's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves on ln until ctx ends, then shuts down gracefully. It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	defer s.Close()
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.gwCfg.ReadHeaderTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("gateway listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("gateway: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = srv.Close()
	}
	<-errc
	if err != nil {
		return fmt.Errorf("gateway: shutdown: %w", err)
	}
	return nil
}

// authed checks the gateway key when keys are configured and puts the key's
// identity in the request context. The key comes as Authorization: Bearer
// (OpenAI SDKs) or, without an Authorization header, as x-api-key
// (Anthropic SDKs, Claude Code).
func (s *Server) authed(next http.HandlerFunc) http.HandlerFunc {
	if len(s.keys) == 0 {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) {
		key, ok := s.authenticate(r.Header.Get("Authorization"))
		if !ok && r.Header.Get("Authorization") == "" {
			key, ok = s.authenticate("Bearer " + r.Header.Get("X-Api-Key"))
		}
		if !ok {
			s.writeError(w, r, endpointOf(r), "", &apiError{Status: http.StatusUnauthorized, Type: typeAuthentication, Code: "invalid_api_key",
				Message: "missing or invalid API key: send Authorization: Bearer <key> (or x-api-key: <key>)"})
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), keyCtx{}, key)))
	}
}

type keyCtx struct{}

// authenticate compares the bearer key with every configured key in
// constant time (digests of equal length; no early exit).
func (s *Server) authenticate(header string) (*apiKey, bool) {
	token, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		token, ok = strings.CutPrefix(header, "bearer ")
	}
	token = strings.TrimSpace(token)
	if !ok || token == "" {
		return nil, false
	}
	d := sha256.Sum256([]byte(token))
	var found *apiKey
	for i := range s.keys {
		if subtle.ConstantTimeCompare(d[:], s.keys[i].digest[:]) == 1 {
			found = &s.keys[i]
		}
	}
	return found, found != nil
}

func keyFrom(ctx context.Context) *apiKey {
	k, _ := ctx.Value(keyCtx{}).(*apiKey)
	return k
}

// limited bounds in-flight requests; over the bound it answers 429.
func (s *Server) limited(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.sem <- struct{}{}:
		default:
			s.writeError(w, r, endpointOf(r), "", &apiError{Status: http.StatusTooManyRequests, Type: typeRateLimit, Code: "too_many_requests", RetryAfter: 1,
				Message: fmt.Sprintf("the gateway is serving its limit of %d requests (gateway.max_in_flight); retry later", cap(s.sem))})
			return
		}
		s.metrics.inFlight.Inc()
		defer func() {
			s.metrics.inFlight.Dec()
			<-s.sem
		}()
		next(w, r)
	}
}

func endpointOf(r *http.Request) string {
	switch {
	case r.URL.Path == "/v1/chat/completions":
		return "chat"
	case r.URL.Path == "/v1/jobs" && r.Method == http.MethodPost:
		return "jobs_submit"
	case strings.HasPrefix(r.URL.Path, "/v1/jobs/"):
		return "jobs_get"
	case strings.HasPrefix(r.URL.Path, "/v1/models"):
		return "models"
	case strings.HasPrefix(r.URL.Path, "/v1/messages"):
		return "messages"
	case r.URL.Path == "/v1/embeddings":
		return "embeddings"
	}
	return "other"
}

func (s *Server) handleUnknown(w http.ResponseWriter, r *http.Request) {
	known := map[string]bool{"/v1/chat/completions": true, "/v1/messages": true, "/v1/messages/count_tokens": true, "/v1/embeddings": true, "/v1/jobs": true,
		"/v1/models": true, "/healthz": true, "/readyz": true, "/metrics": true}
	if known[r.URL.Path] || strings.HasPrefix(r.URL.Path, "/v1/jobs/") || strings.HasPrefix(r.URL.Path, "/v1/models/") {
		s.writeError(w, r, "other", "", &apiError{Status: http.StatusMethodNotAllowed, Type: typeInvalidRequest, Code: "method_not_allowed",
			Message: fmt.Sprintf("method %s is not allowed on %s", r.Method, r.URL.Path)})
		return
	}
	s.writeError(w, r, "other", "", &apiError{Status: http.StatusNotFound, Type: typeNotFound, Code: "unknown_url",
		Message: fmt.Sprintf("unknown endpoint %s %s", r.Method, r.URL.Path)})
}

// handleHealth answers 200 while the process can still serve: 503 once its
// NATS connection is closed for good (a reconnecting one still counts as
// alive; /readyz tells it apart).
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if s.nc.IsClosed() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable",
			"reason": "the NATS connection is closed and will not reconnect; restart the process"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleReady answers 200 when NATS is connected and the four streams exist.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if !s.nc.IsConnected() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": "NATS is not connected (" + s.nc.Status().String() + ")"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	for _, name := range []string{topology.StreamJobs, topology.StreamResults, topology.StreamTelemetry, topology.StreamDLQ} {
		if _, err := s.js.Stream(ctx, name); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": fmt.Sprintf("stream %s: %v", name, err)})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// model is one entry of GET /v1/models in OpenAI's shape.
type model struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// models lists routes (owned by "switchboard") and provider/model pairs
// (owned by their provider): every route target and priced model.
func (s *Server) models() []model {
	cfg := s.config()
	var data []model
	seen := map[string]bool{}
	add := func(id, owner string) {
		if !seen[id] {
			seen[id] = true
			data = append(data, model{ID: id, Object: "model", OwnedBy: owner})
		}
	}
	for _, rt := range cfg.Routes {
		add(rt.Name, "switchboard")
	}
	for _, rt := range cfg.Routes {
		for _, t := range rt.Targets {
			add(t.Provider+"/"+t.Model, t.Provider)
		}
	}
	for _, m := range cfg.Models {
		add(m.Provider+"/"+m.Name, m.Provider)
	}
	return data
}

// handleModels lists the models in OpenAI's list shape.
func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	s.metrics.requests.WithLabelValues("models", "", "200").Inc()
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": s.models()})
}

// handleModel serves GET /v1/models/{id}: one route or provider/model of
// the list in OpenAI's model shape, 404 for any other id.
func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	for _, m := range s.models() {
		if m.ID == id {
			s.metrics.requests.WithLabelValues("models", "", "200").Inc()
			writeJSON(w, http.StatusOK, m)
			return
		}
	}
	s.writeError(w, r, "models", "", &apiError{Status: http.StatusNotFound, Type: typeInvalidRequest, Code: "model_not_found", Param: "model",
		Message: fmt.Sprintf("model %q is neither a route nor a configured provider/model (GET /v1/models lists them)", id)})
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	s.refreshDepth(r.Context())
	s.metrics.handler.ServeHTTP(w, r)
}

// depthCache rate-limits consumer info lookups for /metrics.
type depthCache struct {
	mu   sync.Mutex
	ttl  time.Duration
	last time.Time
}

// refreshDepth updates the queue gauges of every provider lane from its
// consumer (or, before the consumer exists, the stream's per-subject count).
func (s *Server) refreshDepth(ctx context.Context) {
	s.depth.mu.Lock()
	defer s.depth.mu.Unlock()
	if time.Since(s.depth.last) < s.depth.ttl {
		return
	}
	s.depth.last = time.Now()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	stream, err := s.js.Stream(ctx, topology.StreamJobs)
	if err != nil {
		s.log.Warn("metrics: jobs stream", "err", err)
		return
	}
	var counts map[string]uint64
	for _, p := range s.config().Providers {
		for _, lane := range topology.Priorities {
			c, err := stream.Consumer(ctx, topology.LaneConsumer(p.Name, lane))
			if err == nil {
				if info, err := c.Info(ctx); err == nil {
					s.metrics.queueDepth.WithLabelValues(p.Name, lane).Set(float64(info.NumPending))
					s.metrics.queueActive.WithLabelValues(p.Name, lane).Set(float64(info.NumAckPending))
					continue
				}
			}
			if counts == nil {
				counts = map[string]uint64{}
				if info, err := stream.Info(ctx, jetstream.WithSubjectFilter(topology.JobsAll)); err == nil {
					counts = info.State.Subjects
				}
			}
			s.metrics.queueDepth.WithLabelValues(p.Name, lane).Set(float64(counts[topology.JobsLane(p.Name, lane)]))
		}
	}
}
