package config

import (
	"fmt"
	"os"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchboard-llm/switchboard/schemas"
)

// Latency-threshold modes of a route.
const (
	// ModeCancel stops a call slower than latency_threshold and moves the
	// job to the next target.
	ModeCancel = "cancel"
	// ModeHedge starts the next target beside a call slower than
	// latency_threshold; the first answer wins and the other is cancelled.
	ModeHedge = "hedge"
)

// AnyTenant is the budget tenant that applies to every tenant without a
// budget entry of its own.
const AnyTenant = "*"

// Budget caps what one tenant may spend, in USD, per UTC day and month.
type Budget struct {
	// Tenant is the job metadata "tenant"; "*" covers every tenant without
	// an entry of its own (each such tenant has its own counters).
	Tenant string `yaml:"tenant"`
	// DailyUSD and MonthlyUSD are the caps; 0 means no cap.
	DailyUSD   float64  `yaml:"daily_usd"`
	MonthlyUSD float64  `yaml:"monthly_usd"`
	OnExceed   OnExceed `yaml:"on_exceed"`
}

// OnExceed is what happens to a job of a tenant over budget: `reject`
// (the default) or `{route: NAME}` to reroute it, typically to something
// cheaper.
type OnExceed struct {
	Route  string
	Reject bool
}

// UnmarshalYAML accepts the scalar "reject" or a mapping {route: NAME}.
func (o *OnExceed) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value != "reject" {
			return fmt.Errorf("line %d: %q must be \"reject\" or {route: NAME}", n.Line, n.Value)
		}
		*o = OnExceed{Reject: true}
		return nil
	case yaml.MappingNode:
		var m struct {
			Route string `yaml:"route"`
		}
		dec := n.Content
		for i := 0; i+1 < len(dec); i += 2 {
			if dec[i].Value != "route" {
				return fmt.Errorf("line %d: unknown key %q (want route)", dec[i].Line, dec[i].Value)
			}
		}
		if err := n.Decode(&m); err != nil {
			return err
		}
		*o = OnExceed{Route: m.Route}
		return nil
	default:
		return fmt.Errorf("line %d: must be \"reject\" or {route: NAME}", n.Line)
	}
}

// Breaker configures the circuit breaker of every provider/model target.
type Breaker struct {
	// Disabled turns breakers off.
	Disabled bool `yaml:"disabled"`
	// Failures is the number of consecutive failures that opens a breaker.
	Failures int `yaml:"failures"`
	// ErrorRate opens a breaker when failures/calls within Window reach it,
	// once at least MinRequests calls were made in the window.
	ErrorRate   float64       `yaml:"error_rate"`
	MinRequests int           `yaml:"min_requests"`
	Window      time.Duration `yaml:"window"`
	// Cooldown is how long a breaker stays open before half-open probes.
	Cooldown time.Duration `yaml:"cooldown"`
	// Probes is how many calls a half-open breaker lets through at once.
	Probes int `yaml:"probes"`
	// TripOn lists the error types that count as failures; other outcomes
	// (success, invalid_request, ...) count as successes of the target.
	TripOn []string `yaml:"trip_on"`
}

// RateLimits configures how providers' rpm/tpm are enforced across processes.
type RateLimits struct {
	// Window is the length of one fixed counting window; rpm and tpm are
	// scaled to it (default 1m; shorter windows smooth bursts).
	Window time.Duration `yaml:"window"`
}

// Lanes weighs the priority lanes when a pool's workers are saturated: out of
// High+Normal+Low picks with all lanes waiting, each lane gets its weight.
type Lanes struct {
	High   int `yaml:"high"`
	Normal int `yaml:"normal"`
	Low    int `yaml:"low"`
}

// Routing tunes the routing strategies.
type Routing struct {
	// EWMAAlpha weighs a new latency observation in least-latency's moving
	// average (0 < alpha <= 1).
	EWMAAlpha float64 `yaml:"ewma_alpha"`
	// LatencyFlush is how often a process pushes its observations to KV.
	LatencyFlush time.Duration `yaml:"latency_flush"`
	// DefaultOutputTokens estimates a reply's size for lowest-cost and tpm
	// when the request sets no max_tokens.
	DefaultOutputTokens int `yaml:"default_output_tokens"`
}

// Resilience defaults.
const (
	DefaultBreakerFailures    = 5
	DefaultBreakerErrorRate   = 0.5
	DefaultBreakerMinRequests = 20
	DefaultBreakerWindow      = 30 * time.Second
	DefaultBreakerCooldown    = 15 * time.Second
	DefaultBreakerProbes      = 1
	DefaultRateWindow         = time.Minute
	DefaultLaneHigh           = 6
	DefaultLaneNormal         = 3
	DefaultLaneLow            = 1
	DefaultEWMAAlpha          = 0.3
	DefaultLatencyFlush       = time.Second
	DefaultOutputTokens       = 256
	DefaultRouteMode          = ModeCancel
)

// DefaultTripOn is the error types that count against a breaker by default.
var DefaultTripOn = []string{"server_error", "timeout", "connection"}

// KeyEnvNames lists the provider's API key variables as configured:
// api_key_env first, then api_key_envs in order, empty names skipped.
func (p Provider) KeyEnvNames() []string {
	names := make([]string, 0, 1+len(p.APIKeyEnvs))
	for _, env := range append([]string{p.APIKeyEnv}, p.APIKeyEnvs...) {
		if env != "" {
			names = append(names, env)
		}
	}
	return names
}

// KeyEnvs lists the provider's key variables that hold a key, in
// KeyEnvNames order, without an unset one or one holding a key an earlier
// one holds. It is the one de-duplication of API keys: llm/keys rotates
// over these, and APIKeys (what telemetry redacts) reads them.
func (p Provider) KeyEnvs() []string {
	var envs []string
	seen := map[string]bool{}
	for _, env := range p.KeyEnvNames() {
		if k := os.Getenv(env); k != "" && !seen[k] {
			seen[k] = true
			envs = append(envs, env)
		}
	}
	return envs
}

// APIKeys returns the provider's keys: the values of KeyEnvs.
func (p Provider) APIKeys() []string {
	var keys []string
	for _, env := range p.KeyEnvs() {
		keys = append(keys, os.Getenv(env))
	}
	return keys
}

// BudgetFor returns the budget of tenant: its own entry, else the "*"
// entry.
func (c *Config) BudgetFor(tenant string) (Budget, bool) {
	var any *Budget
	for i := range c.Budgets {
		b := &c.Budgets[i]
		if b.Tenant == tenant {
			return *b, true
		}
		if b.Tenant == AnyTenant && any == nil {
			any = b
		}
	}
	if any != nil {
		return *any, true
	}
	return Budget{}, false
}

func (c *Config) applyResilienceDefaults() {
	for i := range c.Routes {
		if c.Routes[i].Mode == "" {
			c.Routes[i].Mode = DefaultRouteMode
		}
	}
	for i := range c.Budgets {
		if c.Budgets[i].OnExceed.Route == "" {
			c.Budgets[i].OnExceed.Reject = true
		}
	}
	b := &c.Breaker
	setIfZero(&b.Failures, DefaultBreakerFailures)
	setIfZero(&b.ErrorRate, DefaultBreakerErrorRate)
	setIfZero(&b.MinRequests, DefaultBreakerMinRequests)
	setIfZero(&b.Window, DefaultBreakerWindow)
	setIfZero(&b.Cooldown, DefaultBreakerCooldown)
	setIfZero(&b.Probes, DefaultBreakerProbes)
	if b.TripOn == nil {
		b.TripOn = append([]string(nil), DefaultTripOn...)
	}
	setIfZero(&c.RateLimits.Window, DefaultRateWindow)
	setIfZero(&c.Lanes.High, DefaultLaneHigh)
	setIfZero(&c.Lanes.Normal, DefaultLaneNormal)
	setIfZero(&c.Lanes.Low, DefaultLaneLow)
	setIfZero(&c.Routing.EWMAAlpha, DefaultEWMAAlpha)
	setIfZero(&c.Routing.LatencyFlush, DefaultLatencyFlush)
	setIfZero(&c.Routing.DefaultOutputTokens, DefaultOutputTokens)
}

func (c *Config) validateResilience(providers, routes map[string]bool, bad func(path, format string, args ...any)) {
	for i, p := range c.Providers {
		for j, env := range p.APIKeyEnvs {
			if !envNameRe.MatchString(env) {
				bad(fmt.Sprintf("providers[%d].api_key_envs[%d]", i, j), "must name an environment variable, not hold a key")
			}
		}
	}
	for i, r := range c.Routes {
		switch r.Mode {
		case "", ModeCancel, ModeHedge:
		default:
			bad(fmt.Sprintf("routes[%d].mode", i), "%q must be cancel or hedge", r.Mode)
		}
	}
	tenants := map[string]bool{}
	for i, b := range c.Budgets {
		path := fmt.Sprintf("budgets[%d]", i)
		switch {
		case b.Tenant == "":
			bad(path+".tenant", "is required (a tenant name or \"*\")")
		case tenants[b.Tenant]:
			bad(path+".tenant", "duplicate budget for tenant %q", b.Tenant)
		default:
			limit(bad, path+".tenant", schemas.CheckLabel("tenant", b.Tenant))
		}
		tenants[b.Tenant] = true
		if b.DailyUSD < 0 {
			bad(path+".daily_usd", "must not be negative")
		}
		if b.MonthlyUSD < 0 {
			bad(path+".monthly_usd", "must not be negative")
		}
		if b.DailyUSD == 0 && b.MonthlyUSD == 0 {
			bad(path, "needs daily_usd or monthly_usd")
		}
		if b.OnExceed.Route != "" && !routes[b.OnExceed.Route] {
			bad(path+".on_exceed.route", "unknown route %q", b.OnExceed.Route)
		}
	}
	br := c.Breaker
	if br.Failures < 0 {
		bad("breaker.failures", "must not be negative")
	}
	if br.ErrorRate < 0 || br.ErrorRate > 1 {
		bad("breaker.error_rate", "must be between 0 and 1, got %g", br.ErrorRate)
	}
	if br.MinRequests < 0 {
		bad("breaker.min_requests", "must not be negative")
	}
	if br.Window < 0 {
		bad("breaker.window", "must not be negative")
	}
	if br.Cooldown < 0 {
		bad("breaker.cooldown", "must not be negative")
	}
	if br.Probes < 0 {
		bad("breaker.probes", "must not be negative")
	}
	for j, e := range br.TripOn {
		if !contains(ErrorTypes, e) {
			bad(fmt.Sprintf("breaker.trip_on[%d]", j), "unknown error type %q", e)
		}
	}
	if belowMin(c.RateLimits.Window, 100*time.Millisecond) {
		bad("rate_limits.window", "must be at least 100ms, got %s", c.RateLimits.Window)
	}
	l := c.Lanes
	if l.High < 0 || l.Normal < 0 || l.Low < 0 {
		bad("lanes", "weights must not be negative")
	}
	if c.Routing.EWMAAlpha < 0 || c.Routing.EWMAAlpha > 1 {
		bad("routing.ewma_alpha", "must be in (0, 1], got %g", c.Routing.EWMAAlpha)
	}
	if c.Routing.LatencyFlush < 0 {
		bad("routing.latency_flush", "must not be negative")
	}
	if c.Routing.DefaultOutputTokens < 0 {
		bad("routing.default_output_tokens", "must not be negative")
	}
}
