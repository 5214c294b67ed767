// Package config loads and validates switchboard.yaml: providers, model
// prices, routes and the rules that pick a route. Decoding is strict: an
// unknown key or a value of the wrong type is an error naming the key's path.
package config

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/switchboard-llm/switchboard/schemas"
)

// Provider kinds.
const (
	KindOpenAI    = "openai"
	KindAnthropic = "anthropic"
	KindGemini    = "gemini"
	KindMock      = "mock"
)

// Routing strategies.
const (
	StrategyOrdered      = "ordered"
	StrategyWeighted     = "weighted"
	StrategyLeastLatency = "least-latency"
	StrategyLowestCost   = "lowest-cost"
)

// Config is the whole switchboard.yaml.
type Config struct {
	Providers []Provider `yaml:"providers"`
	Models    []Model    `yaml:"models"`
	Routes    []Route    `yaml:"routes"`
	Rules     []Rule     `yaml:"rules"`
	// DefaultRoute serves jobs that name no route and match no rule; when
	// empty, the first route is the default.
	DefaultRoute string    `yaml:"default_route"`
	Limits       Limits    `yaml:"limits"`
	Gateway      Gateway   `yaml:"gateway"`
	Analytics    Analytics `yaml:"analytics"`
	// Resilience policies (see resilience.go).
	Budgets    []Budget   `yaml:"budgets"`
	Breaker    Breaker    `yaml:"breaker"`
	RateLimits RateLimits `yaml:"rate_limits"`
	Lanes      Lanes      `yaml:"lanes"`
	Routing    Routing    `yaml:"routing"`
	// NATS configures JetStream provisioning (nats.go).
	NATS NATS `yaml:"nats"`
}

// Provider is one upstream endpoint and its limits.
type Provider struct {
	// Name is the subject token: llm.jobs.<name>.
	Name    string `yaml:"name"`
	Kind    string `yaml:"kind"`
	BaseURL string `yaml:"base_url"`
	// APIKeyEnv names the environment variable that holds the key; keys are
	// never read from the file.
	APIKeyEnv string `yaml:"api_key_env"`
	// APIKeyEnvs names more key variables; the pool rotates keys on 429 and
	// takes a key out of rotation on 401 (see APIKeys).
	APIKeyEnvs []string `yaml:"api_key_envs"`
	// Concurrency caps in-flight calls over all worker processes (MaxAckPending).
	Concurrency int           `yaml:"concurrency"`
	RPM         int           `yaml:"rpm"`
	TPM         int           `yaml:"tpm"`
	Timeout     time.Duration `yaml:"timeout"`
	// Stream conduct (conduct.go): the longest silence between two chunks
	// of a stream, and the error types retried on the same target.
	StreamIdleTimeout time.Duration `yaml:"stream_idle_timeout"`
	RetryOn           []string      `yaml:"retry_on"`
}

// APIKey reads the provider's key from its environment variable.
func (p Provider) APIKey() string {
	if p.APIKeyEnv == "" {
		return ""
	}
	return os.Getenv(p.APIKeyEnv)
}

// Model is the price of one provider's model in USD per million tokens.
type Model struct {
	Provider      string  `yaml:"provider"`
	Name          string  `yaml:"name"`
	InputPerMTok  float64 `yaml:"input_per_mtok"`
	OutputPerMTok float64 `yaml:"output_per_mtok"`
	// Prefill says whether the model continues a final assistant message
	// (mid-stream failover by continuation); nil: the provider kind's
	// default (conduct.go).
	Prefill *bool `yaml:"prefill"`
	// Dimensions is an embeddings model's vector length; a route whose
	// targets declare different dimensions is a config error (failover
	// must not change the vector space).
	Dimensions int `yaml:"dimensions"`
}

// Route is a named, ordered set of targets and the policy for moving on.
type Route struct {
	Name     string        `yaml:"name"`
	Strategy string        `yaml:"strategy"`
	Targets  []RouteTarget `yaml:"targets"`
	// Retries per target before falling back; nil means DefaultRetries.
	Retries *int `yaml:"retries"`
	// FallbackOn lists the error types that move a job to the next target.
	FallbackOn       []string      `yaml:"fallback_on"`
	LatencyThreshold time.Duration `yaml:"latency_threshold"`
	// Mode is what happens at LatencyThreshold: "cancel" (default) stops the
	// slow call and moves on, "hedge" starts the next target beside it and
	// the first answer wins.
	Mode string `yaml:"mode"`
	// StreamIdleTimeout and RetryOn override the providers' (conduct.go).
	StreamIdleTimeout time.Duration `yaml:"stream_idle_timeout"`
	RetryOn           []string      `yaml:"retry_on"`
}

// RouteTarget is one provider/model of a route.
type RouteTarget struct {
	Provider string `yaml:"provider"`
	Model    string `yaml:"model"`
	Weight   int    `yaml:"weight"`
}

// Rule picks a route for jobs whose metadata matches every key of When.
type Rule struct {
	When  map[string]Match `yaml:"when"`
	Route string           `yaml:"route"`
}

// Limits bounds what the broker accepts and stores.
type Limits struct {
	// MaxJobBytes bounds one encoded job.
	MaxJobBytes int `yaml:"max_job_bytes"`
	// JobsMaxMsgs and JobsMaxBytes bound the JOBS stream; when full, new
	// jobs are refused (backpressure) rather than old ones dropped.
	JobsMaxMsgs   int64         `yaml:"jobs_max_msgs"`
	JobsMaxBytes  int64         `yaml:"jobs_max_bytes"`
	DedupWindow   time.Duration `yaml:"dedup_window"`
	ResultsMaxAge time.Duration `yaml:"results_max_age"`
	// ResultsMaxMsgs and ResultsMaxBytes also bound RESULTS by size: beyond
	// either, the oldest Results are dropped before results_max_age. Every
	// stored Result is one subject in the server's per-subject index (~90 B
	// of its memory each), so the count bounds the server's memory, which
	// under a sustained load the age alone does not.
	ResultsMaxMsgs  int64         `yaml:"results_max_msgs"`
	ResultsMaxBytes int64         `yaml:"results_max_bytes"`
	TelemetryMaxAge time.Duration `yaml:"telemetry_max_age"`
	// DLQMaxAge and DLQMaxBytes bound the DLQ stream: dead letters older
	// than DLQMaxAge, or the oldest beyond DLQMaxBytes, are dropped.
	DLQMaxAge   time.Duration `yaml:"dlq_max_age"`
	DLQMaxBytes int64         `yaml:"dlq_max_bytes"`
}

// Gateway configures the HTTP front door.
type Gateway struct {
	// MaxBodyBytes bounds a request body (413 above it).
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// RequestTimeout bounds a sync request without a deadline of its own.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// MaxInFlight bounds the requests the gateway serves at once; above it
	// callers get 429 with Retry-After.
	MaxInFlight int `yaml:"max_in_flight"`
	// APIKeys, when any are set, are the only bearer keys the gateway
	// accepts; each key's tenant and tier override the request's metadata.
	APIKeys []GatewayKey `yaml:"api_keys"`
	// ReadHeaderTimeout bounds receiving a request's headers; a client
	// slower than that is disconnected.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadBodyTimeout bounds receiving a request's body, counted from the
	// end of its headers; a client slower than that gets 408 and is
	// disconnected. The body is read before the request takes one of
	// max_in_flight's slots.
	ReadBodyTimeout time.Duration `yaml:"read_body_timeout"`
	// PublicMetrics serves /metrics without a gateway key even when
	// APIKeys are configured (by default it then needs one).
	PublicMetrics bool `yaml:"public_metrics"`
}

// GatewayKey is one gateway API key. The key itself is read from the
// environment variable KeyEnv, never from the file.
type GatewayKey struct {
	KeyEnv string `yaml:"key_env"`
	Tenant string `yaml:"tenant"`
	Tier   string `yaml:"tier"`
	// Admin keys may also open the dashboard (GET / and /api/).
	Admin bool `yaml:"admin"`
}

// Key reads the gateway key from its environment variable.
func (k GatewayKey) Key() string { return os.Getenv(k.KeyEnv) }

// Analytics configures telemetry ingestion into ClickHouse.
type Analytics struct {
	BatchRows     int           `yaml:"batch_rows"`
	BatchInterval time.Duration `yaml:"batch_interval"`
	// PricesFile optionally imports prices in LiteLLM's
	// model_prices_and_context_window.json format; config prices win.
	PricesFile string `yaml:"prices_file"`
	// LogBodies stores each job's request and response bodies with its
	// outcome (ClickHouse completions), for the dashboard's request log:
	// known keys redacted, each body cut to LogBodyBytes. Off by default
	// (metadata only).
	LogBodies bool `yaml:"log_bodies"`
	// LogBodyBytes caps each stored body (default 8 KiB, at most
	// MaxLogBodyBytes: the bodies travel in a telemetry message).
	LogBodyBytes int `yaml:"log_body_bytes"`
}

// MaxLogBodyBytes bounds analytics.log_body_bytes.
const MaxLogBodyBytes = 256 << 10

// MaxBatchRows bounds analytics.batch_rows (one ClickHouse insert).
const MaxBatchRows = 1_000_000

// validate checks the analytics section; problems carry their key path.
func (a Analytics) validate() []string {
	var errs []string
	if a.BatchRows < 0 || a.BatchRows > MaxBatchRows {
		errs = append(errs, fmt.Sprintf("analytics.batch_rows: must be between 1 and %d, got %d", MaxBatchRows, a.BatchRows))
	}
	if a.LogBodyBytes < 0 || a.LogBodyBytes > MaxLogBodyBytes {
		errs = append(errs, fmt.Sprintf("analytics.log_body_bytes: must be between 1 and %d, got %d", MaxLogBodyBytes, a.LogBodyBytes))
	}
	if a.BatchInterval < 0 {
		errs = append(errs, fmt.Sprintf("analytics.batch_interval: must be positive, got %s", a.BatchInterval))
	}
	if a.PricesFile != "" {
		if st, err := os.Stat(a.PricesFile); err != nil || st.IsDir() {
			errs = append(errs, fmt.Sprintf("analytics.prices_file: %q is not a readable file", a.PricesFile))
		}
	}
	return errs
}

// The smallest limits.results_max_msgs and results_max_bytes accepted.
const (
	MinResultsMaxMsgs  = 10_000
	MinResultsMaxBytes = 64 << 20
)

// Defaults.
const (
	DefaultRetries          = 2
	DefaultConcurrency      = 16
	DefaultTimeout          = 60 * time.Second
	DefaultMaxJobBytes      = 1 << 20
	DefaultJobsMaxMsgs      = 1_000_000
	DefaultJobsMaxBytes     = 4 << 30
	DefaultDedupWindow      = 2 * time.Minute
	DefaultResultsMaxAge    = 24 * time.Hour
	DefaultResultsMaxMsgs   = 1_000_000
	DefaultResultsMaxBytes  = 4 << 30
	DefaultTelemetryMaxAge  = 7 * 24 * time.Hour
	DefaultDLQMaxAge        = 30 * 24 * time.Hour
	DefaultDLQMaxBytes      = 1 << 30
	DefaultMaxBodyBytes     = 1 << 20
	DefaultRequestTimeout   = 120 * time.Second
	DefaultMaxInFlight      = 1024
	DefaultBatchRows        = 50_000
	DefaultBatchInterval    = time.Second
	DefaultLogBodyBytes     = 8 << 10
	DefaultProviderStrategy = StrategyOrdered
)

// Defaults of the gateway's slow-client bounds.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadBodyTimeout   = 30 * time.Second
)

// DefaultFallbackOn is the error types that move a job on when a route does
// not say.
// context_length is among them because the next target may have a larger
// context window; bad_response and stream_broken because another provider
// may answer well-formed where this one did not.
var DefaultFallbackOn = []string{"rate_limited", "server_error", "timeout", "connection", "auth", "context_length", "bad_response", "stream_broken"}

// ErrorTypes are the error classes a route's fallback_on may name.
var ErrorTypes = []string{"rate_limited", "server_error", "timeout", "connection", "invalid_request", "auth", "content_filter", "not_found", "bad_response", "context_length", "stream_broken"}

var nameRe = regexp.MustCompile(`^[a-z0-9_-]+$`)

// ApplyDefaults fills every unset field with its default.
func (c *Config) ApplyDefaults() {
	for i := range c.Providers {
		p := &c.Providers[i]
		if p.Concurrency == 0 {
			p.Concurrency = DefaultConcurrency
		}
		if p.Timeout == 0 {
			p.Timeout = DefaultTimeout
		}
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		if r.Strategy == "" {
			r.Strategy = DefaultProviderStrategy
		}
		if r.Retries == nil {
			n := DefaultRetries
			r.Retries = &n
		}
		if r.FallbackOn == nil {
			r.FallbackOn = append([]string(nil), DefaultFallbackOn...)
		}
		for j := range r.Targets {
			if r.Targets[j].Weight == 0 {
				r.Targets[j].Weight = 1
			}
		}
	}
	if c.DefaultRoute == "" && len(c.Routes) > 0 {
		c.DefaultRoute = c.Routes[0].Name
	}
	l := &c.Limits
	setIfZero(&l.MaxJobBytes, DefaultMaxJobBytes)
	setIfZero(&l.JobsMaxMsgs, DefaultJobsMaxMsgs)
	setIfZero(&l.JobsMaxBytes, DefaultJobsMaxBytes)
	setIfZero(&l.DedupWindow, DefaultDedupWindow)
	setIfZero(&l.ResultsMaxAge, DefaultResultsMaxAge)
	setIfZero(&l.ResultsMaxMsgs, DefaultResultsMaxMsgs)
	setIfZero(&l.ResultsMaxBytes, DefaultResultsMaxBytes)
	setIfZero(&l.TelemetryMaxAge, DefaultTelemetryMaxAge)
	setIfZero(&l.DLQMaxAge, DefaultDLQMaxAge)
	setIfZero(&l.DLQMaxBytes, DefaultDLQMaxBytes)
	setIfZero(&c.Gateway.MaxBodyBytes, DefaultMaxBodyBytes)
	setIfZero(&c.Gateway.RequestTimeout, DefaultRequestTimeout)
	setIfZero(&c.Gateway.MaxInFlight, DefaultMaxInFlight)
	setIfZero(&c.Gateway.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setIfZero(&c.Gateway.ReadBodyTimeout, DefaultReadBodyTimeout)
	setIfZero(&c.Analytics.BatchRows, DefaultBatchRows)
	setIfZero(&c.Analytics.BatchInterval, DefaultBatchInterval)
	setIfZero(&c.Analytics.LogBodyBytes, DefaultLogBodyBytes)
	c.applyResilienceDefaults()
	c.applyNATSDefaults()
}

func setIfZero[T comparable](dst *T, v T) {
	var zero T
	if *dst == zero {
		*dst = v
	}
}

// Validate checks the config; errors name the key path, e.g.
// "routes[1].targets[0].provider: unknown provider \"x\"".
func (c *Config) Validate() error {
	var errs []string
	bad := func(path, format string, args ...any) {
		errs = append(errs, path+": "+fmt.Sprintf(format, args...))
	}
	if len(c.Providers) == 0 {
		bad("providers", "at least one provider is required")
	}
	providers := map[string]bool{}
	for i, p := range c.Providers {
		path := fmt.Sprintf("providers[%d]", i)
		switch {
		case p.Name == "":
			bad(path+".name", "is required")
		case !nameRe.MatchString(p.Name):
			bad(path+".name", "%q must match [a-z0-9_-]+ (it is a NATS subject token)", p.Name)
		case len(p.Name) > schemas.MaxProviderLen:
			bad(path+".name", "is %d bytes, over the limit of %d", len(p.Name), schemas.MaxProviderLen)
		case providers[p.Name]:
			bad(path+".name", "duplicate provider %q", p.Name)
		}
		providers[p.Name] = true
		switch p.Kind {
		case KindOpenAI, KindAnthropic, KindGemini, KindMock:
		case "":
			bad(path+".kind", "is required (openai, anthropic, gemini or mock)")
		default:
			bad(path+".kind", "%q must be openai, anthropic, gemini or mock", p.Kind)
		}
		if p.Kind == KindOpenAI && p.BaseURL == "" {
			bad(path+".base_url", "is required for kind openai")
		}
		if p.BaseURL != "" && !strings.HasPrefix(p.BaseURL, "http://") && !strings.HasPrefix(p.BaseURL, "https://") {
			bad(path+".base_url", "%q must start with http:// or https://", p.BaseURL)
		}
		if p.APIKeyEnv != "" && !regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`).MatchString(p.APIKeyEnv) {
			bad(path+".api_key_env", "must name an environment variable, not hold a key")
		}
		if p.Concurrency < 0 {
			bad(path+".concurrency", "must be positive, got %d", p.Concurrency)
		}
		if p.RPM < 0 {
			bad(path+".rpm", "must not be negative")
		}
		if p.TPM < 0 {
			bad(path+".tpm", "must not be negative")
		}
		if p.Timeout < 0 {
			bad(path+".timeout", "must be positive")
		}
	}
	for i, m := range c.Models {
		path := fmt.Sprintf("models[%d]", i)
		if !providers[m.Provider] {
			bad(path+".provider", "unknown provider %q", m.Provider)
		}
		if m.Name == "" {
			bad(path+".name", "is required")
		} else {
			limit(bad, path+".name", schemas.CheckModel("name", m.Name))
		}
		if m.InputPerMTok < 0 || m.OutputPerMTok < 0 {
			bad(path, "prices must not be negative")
		}
		if m.Dimensions < 0 {
			bad(path+".dimensions", "must not be negative")
		}
	}
	routes := map[string]bool{}
	for i, r := range c.Routes {
		path := fmt.Sprintf("routes[%d]", i)
		switch {
		case r.Name == "":
			bad(path+".name", "is required")
		case strings.Contains(r.Name, "/"):
			bad(path+".name", "%q must not contain '/' (that form pins provider/model)", r.Name)
		case schemas.CheckRoute("name", r.Name) != nil:
			limit(bad, path+".name", schemas.CheckRoute("name", r.Name))
		case routes[r.Name]:
			bad(path+".name", "duplicate route %q", r.Name)
		}
		routes[r.Name] = true
		switch r.Strategy {
		case StrategyOrdered, StrategyWeighted, StrategyLeastLatency, StrategyLowestCost:
		default:
			bad(path+".strategy", "%q must be ordered, weighted, least-latency or lowest-cost", r.Strategy)
		}
		if len(r.Targets) == 0 {
			bad(path+".targets", "at least one target is required")
		}
		for j, t := range r.Targets {
			tp := fmt.Sprintf("%s.targets[%d]", path, j)
			if !providers[t.Provider] {
				bad(tp+".provider", "unknown provider %q", t.Provider)
			}
			if t.Model == "" {
				bad(tp+".model", "is required")
			} else {
				limit(bad, tp+".model", schemas.CheckModel("model", t.Model))
			}
			if t.Weight < 0 {
				bad(tp+".weight", "must not be negative")
			}
		}
		c.validateDimensions(path, r, bad)
		if r.Retries != nil && (*r.Retries < 0 || *r.Retries > 10) {
			bad(path+".retries", "must be between 0 and 10, got %d", *r.Retries)
		}
		for j, e := range r.FallbackOn {
			if !contains(ErrorTypes, e) {
				bad(fmt.Sprintf("%s.fallback_on[%d]", path, j), "unknown error type %q (one of %s)", e, strings.Join(ErrorTypes, ", "))
			}
		}
		if r.LatencyThreshold < 0 {
			bad(path+".latency_threshold", "must not be negative")
		}
	}
	if len(c.Routes) == 0 {
		bad("routes", "at least one route is required")
	}
	if c.DefaultRoute != "" && !routes[c.DefaultRoute] {
		bad("default_route", "unknown route %q", c.DefaultRoute)
	}
	for i, r := range c.Rules {
		path := fmt.Sprintf("rules[%d]", i)
		if !routes[r.Route] {
			bad(path+".route", "unknown route %q", r.Route)
		}
		if len(r.When) == 0 {
			bad(path+".when", "needs at least one metadata key")
		}
	}
	l := c.Limits
	if l.MaxJobBytes < 0 || l.JobsMaxMsgs < 0 || l.JobsMaxBytes < 0 {
		bad("limits", "sizes must not be negative")
	}
	if l.DedupWindow != 0 && l.DedupWindow < 2*time.Minute {
		bad("limits.dedup_window", "must be at least 2m, got %s", l.DedupWindow)
	}
	// A Result must outlive its job's redelivery and its readers' lag
	// (submit, the budget counter): no tiny caps.
	if belowMin(l.ResultsMaxMsgs, MinResultsMaxMsgs) {
		bad("limits.results_max_msgs", "must be at least %d, got %d", MinResultsMaxMsgs, l.ResultsMaxMsgs)
	}
	if belowMin(l.ResultsMaxBytes, MinResultsMaxBytes) {
		bad("limits.results_max_bytes", "must be at least %d, got %d", MinResultsMaxBytes, l.ResultsMaxBytes)
	}
	if belowMin(l.DLQMaxAge, time.Hour) {
		bad("limits.dlq_max_age", "must be at least 1h (time to inspect and replay), got %s", l.DLQMaxAge)
	}
	jobBytes := int64(l.MaxJobBytes)
	if jobBytes <= 0 {
		jobBytes = DefaultMaxJobBytes
	}
	// A dead letter holds a message JOBS took: up to twice max_job_bytes.
	if minDLQ := 4 * jobBytes; belowMin(l.DLQMaxBytes, minDLQ) {
		bad("limits.dlq_max_bytes", "must be at least %d (two of the largest dead letters), got %d", minDLQ, l.DLQMaxBytes)
	}
	errs = append(errs, c.Analytics.validate()...)
	errs = append(errs, c.Gateway.validate()...)
	c.validateResilience(providers, routes, bad)
	c.validateNATS(bad)
	c.validateConduct(bad)
	if len(errs) > 0 {
		return &Error{Problems: errs}
	}
	return nil
}

// belowMin reports whether an optional setting (0: unset, its default) is
// negative or set below min.
func belowMin[T ~int64](v, min T) bool { return v < 0 || (v > 0 && v < min) }

var envNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// validate checks the gateway section; problems carry their key paths.
func (g Gateway) validate() []string {
	var errs []string
	if g.MaxBodyBytes < 0 {
		errs = append(errs, "gateway.max_body_bytes: must not be negative")
	}
	if g.RequestTimeout < 0 {
		errs = append(errs, "gateway.request_timeout: must not be negative")
	}
	if g.MaxInFlight < 0 {
		errs = append(errs, fmt.Sprintf("gateway.max_in_flight: must be positive, got %d", g.MaxInFlight))
	}
	if g.ReadHeaderTimeout < 0 {
		errs = append(errs, fmt.Sprintf("gateway.read_header_timeout: must not be negative, got %s", g.ReadHeaderTimeout))
	}
	if g.ReadBodyTimeout < 0 {
		errs = append(errs, fmt.Sprintf("gateway.read_body_timeout: must not be negative, got %s", g.ReadBodyTimeout))
	}
	seen := map[string]bool{}
	for i, k := range g.APIKeys {
		path := fmt.Sprintf("gateway.api_keys[%d].key_env", i)
		switch {
		case k.KeyEnv == "":
			errs = append(errs, path+": is required (the environment variable holding the key)")
		case !envNameRe.MatchString(k.KeyEnv):
			errs = append(errs, path+": must name an environment variable, not hold a key")
		case seen[k.KeyEnv]:
			errs = append(errs, fmt.Sprintf("%s: duplicate %q", path, k.KeyEnv))
		}
		seen[k.KeyEnv] = true
		for _, f := range [][2]string{{"tenant", k.Tenant}, {"tier", k.Tier}} {
			if err := schemas.CheckLabel(f[0], f[1]); err != nil {
				errs = append(errs, fmt.Sprintf("gateway.api_keys[%d].%s: %s", i, f[0], limitMsg(err)))
			}
		}
	}
	return errs
}

// limit reports err, an identifier-limit error of schemas, at path.
func limit(bad func(path, format string, args ...any), path string, err error) {
	if err != nil {
		bad(path, "%s", limitMsg(err))
	}
}

// limitMsg is the message of a schemas.FieldError without its field name
// (the config names the key path instead).
func limitMsg(err error) string {
	var fe *schemas.FieldError
	if errors.As(err, &fe) {
		return fe.Msg
	}
	return err.Error()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Provider returns the named provider.
func (c *Config) Provider(name string) (Provider, bool) {
	for _, p := range c.Providers {
		if p.Name == name {
			return p, true
		}
	}
	return Provider{}, false
}

// Route returns the named route.
func (c *Config) Route(name string) (*Route, bool) {
	for i := range c.Routes {
		if c.Routes[i].Name == name {
			return &c.Routes[i], true
		}
	}
	return nil, false
}

// Dimensions is the declared embedding dimensions of provider/model (0:
// none declared).
func (c *Config) Dimensions(provider, model string) int {
	for _, m := range c.Models {
		if m.Provider == provider && m.Name == model {
			return m.Dimensions
		}
	}
	return 0
}

// validateDimensions refuses a route whose targets declare different
// embedding dimensions.
func (c *Config) validateDimensions(path string, r Route, bad func(string, string, ...any)) {
	first, firstAt := 0, 0
	for j, t := range r.Targets {
		d := c.Dimensions(t.Provider, t.Model)
		if d == 0 {
			continue
		}
		if first == 0 {
			first, firstAt = d, j
			continue
		}
		if d != first {
			bad(fmt.Sprintf("%s.targets[%d]", path, j), "%s/%s has %d embedding dimensions but targets[%d] has %d: a route's embedding models must agree",
				t.Provider, t.Model, d, firstAt, first)
		}
	}
}

// Price returns the price of provider/model, if configured.
func (c *Config) Price(provider, model string) (Model, bool) {
	for _, m := range c.Models {
		if m.Provider == provider && m.Name == model {
			return m, true
		}
	}
	return Model{}, false
}
