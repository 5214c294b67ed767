// Package router turns a job's route, pinned model or metadata into a plan:
// the ordered targets its workers will try. The order follows the route's
// strategy (ordered, weighted, least-latency, lowest-cost); targets whose
// circuit breaker is open move to the end; a tenant over budget is rerouted
// or rejected; targets that cannot answer before the job's deadline are
// dropped.
package router

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/pricing"
	"github.com/switchboard-llm/switchboard/schemas"
)

// Health reports whether a target's circuit breaker is open (calls to it are
// refused). Implemented by policy/breaker.Set.
type Health interface {
	Open(provider, model string) bool
}

// Latencies reports the recent latency of a target (an EWMA shared by all
// processes). Implemented by *latency.Store.
type Latencies interface {
	Latency(provider, model string) (time.Duration, bool)
}

// Budgets reports whether a tenant is over its budget under cfg, and why.
// Implemented by policy/budget.Tracker. A Budgets that also implements
// Configurer is told the config on New and on every SetConfig.
type Budgets interface {
	Exceeded(cfg *config.Config, tenant string) (reason string, exceeded bool)
}

// Configurer is told the live config (policy/budget.Tracker counts spend
// only while the config has a budget).
type Configurer interface {
	Configure(cfg *config.Config)
}

// Options are what a Resolver reads besides the config; every field is
// optional.
type Options struct {
	// Health makes plans put targets with an open breaker last.
	Health Health
	// Latencies feeds least-latency routing and deadline trimming.
	Latencies Latencies
	// Budgets enforces tenant budgets at routing time.
	Budgets Budgets
	// Prices makes lowest-cost routing price targets with the table the
	// workers bill with (pricing.Load: config prices, then imported
	// LiteLLM prices), under each config's own model prices
	// (pricing.Table.For). Without it, only the config's model prices count.
	Prices *pricing.Table
	// Live, when set, is the running config (config/live.Holder.Load): the
	// resolver reads it on every Resolve, so a reload needs no SetConfig.
	Live func() *config.Config
	// Now is the clock used for deadlines; default time.Now.
	Now func() time.Time
}

// Resolver resolves jobs against the current config; a reload (Options.Live
// or SetConfig) swaps it atomically, and jobs in flight keep the plan they
// have.
type Resolver struct {
	cfg     atomic.Pointer[config.Config]
	health  Health
	latency Latencies
	budgets Budgets
	now     func() time.Time
	live    func() *config.Config
	mu      sync.Mutex // serialises SetConfig
	// base holds the imported prices; prices is base for the current config.
	base   *pricing.Table
	prices atomic.Pointer[pricing.Table]
}

// New returns a Resolver for cfg (and, with opts.Live, for every config
// that follows it).
func New(cfg *config.Config, opts Options) *Resolver {
	r := &Resolver{health: opts.Health, latency: opts.Latencies, budgets: opts.Budgets, base: opts.Prices, live: opts.Live, now: opts.Now}
	if r.now == nil {
		r.now = time.Now
	}
	if r.base == nil {
		r.base = pricing.New(nil)
	}
	r.SetConfig(cfg)
	return r
}

// Config returns the config the resolver uses now.
func (r *Resolver) Config() *config.Config {
	if r.live != nil {
		if cur := r.live(); cur != nil && cur != r.cfg.Load() {
			r.SetConfig(cur)
		}
	}
	return r.cfg.Load()
}

// SetConfig replaces the config (cfg must be valid); later Resolve calls
// use it. With Options.Live the resolver calls it itself.
func (r *Resolver) SetConfig(cfg *config.Config) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cfg.Load() == cfg {
		return
	}
	r.prices.Store(r.base.For(cfg))
	if c, ok := r.budgets.(Configurer); ok {
		c.Configure(cfg)
	}
	r.cfg.Store(cfg)
}

// Resolve fills job.Route (when a rule or the default picks it) and job.Plan.
// A job that already has a plan keeps it. Errors are *schemas.FieldError
// naming "route" or "model", or a *BudgetError (errors.Is ErrBudgetExceeded)
// when the job's tenant is over budget and its budget says reject.
func (r *Resolver) Resolve(job *schemas.Job) error {
	if len(job.Plan) > 0 {
		return nil
	}
	cfg := r.Config()
	var rt *config.Route
	if job.Model != "" {
		provider, model, ok := strings.Cut(job.Model, "/")
		if !ok || provider == "" || model == "" {
			return &schemas.FieldError{Field: "model", Msg: fmt.Sprintf("%q must be provider/model", job.Model)}
		}
		if _, ok := cfg.Provider(provider); !ok {
			return &schemas.FieldError{Field: "model", Msg: fmt.Sprintf("unknown provider %q in %q", provider, job.Model)}
		}
		rt = &config.Route{Name: "", Strategy: config.StrategyOrdered, Targets: []config.RouteTarget{{Provider: provider, Model: model, Weight: 1}}}
	} else {
		name := job.Route
		if name == "" {
			name = Match(cfg, job)
		}
		var ok bool
		rt, ok = cfg.Route(name)
		if !ok {
			if name == "" {
				return &schemas.FieldError{Field: "route", Msg: "no route given and no default route configured"}
			}
			return &schemas.FieldError{Field: "route", Msg: fmt.Sprintf("unknown route %q", name)}
		}
	}
	if r.budgets != nil {
		if reason, over := r.budgets.Exceeded(cfg, job.Tenant()); over {
			b, _ := cfg.BudgetFor(job.Tenant())
			alt, ok := cfg.Route(b.OnExceed.Route)
			if b.OnExceed.Reject || !ok {
				return &BudgetError{Tenant: job.Tenant(), Reason: reason}
			}
			rt = alt
			job.Model = ""
		}
	}
	if rt.Name != "" {
		job.Route = rt.Name
	}
	plan := r.Order(cfg, rt, job)
	if job.Deadline != nil {
		plan = TrimForDeadline(plan, *job.Deadline, r.now(), r.latency)
	}
	job.Plan = plan
	return nil
}

// Order lists a route's targets in the order its strategy tries them for
// job, targets with an open breaker last.
func (r *Resolver) Order(cfg *config.Config, rt *config.Route, job *schemas.Job) []schemas.Target {
	var plan []schemas.Target
	switch rt.Strategy {
	case config.StrategyWeighted:
		plan = Weighted(rt, job.ID)
	case config.StrategyLeastLatency:
		plan = LeastLatency(rt, r.latency)
	case config.StrategyLowestCost:
		in, out := pricing.EstimateTokens(job.Request, cfg.Routing.DefaultOutputTokens)
		plan = LowestCost(rt, r.pricesFor(cfg), in, out)
	default:
		plan = Plan(rt)
	}
	return HealthyFirst(plan, r.health)
}

// pricesFor is the price table of cfg: the current one, or one built for an
// older or other cfg.
func (r *Resolver) pricesFor(cfg *config.Config) *pricing.Table {
	if p := r.prices.Load(); p != nil && p.Config() == cfg {
		return p
	}
	return r.base.For(cfg)
}

// Match returns the route of the first rule whose conditions all hold, or
// the default route. A condition names a metadata key (tenant, tier, task or
// any other) or "priority", and holds when the job's value is one of the
// accepted values.
func Match(cfg *config.Config, job *schemas.Job) string {
	for _, rule := range cfg.Rules {
		if ruleMatches(rule, job) {
			return rule.Route
		}
	}
	return cfg.DefaultRoute
}

func ruleMatches(rule config.Rule, job *schemas.Job) bool {
	for key, want := range rule.When {
		var got string
		if key == "priority" {
			got = job.Priority
			if got == "" {
				got = schemas.PriorityNormal
			}
		} else {
			got = job.Metadata[key]
		}
		if !want.Matches(got) {
			return false
		}
	}
	return true
}

// Plan lists a route's targets in configuration order.
func Plan(rt *config.Route) []schemas.Target {
	plan := make([]schemas.Target, 0, len(rt.Targets))
	for _, t := range rt.Targets {
		plan = append(plan, schemas.Target{Provider: t.Provider, Model: t.Model})
	}
	return plan
}

// HealthyFirst moves targets whose breaker is open to the end of the plan,
// keeping the relative order of both groups. Open targets stay in the plan
// so a job always has somewhere to go: the pool skips an open target without
// calling it while a later one remains, and waits for the breaker's probe
// when it is the last.
func HealthyFirst(plan []schemas.Target, h Health) []schemas.Target {
	if h == nil {
		return plan
	}
	out := make([]schemas.Target, 0, len(plan))
	var open []schemas.Target
	for _, t := range plan {
		if h.Open(t.Provider, t.Model) {
			open = append(open, t)
		} else {
			out = append(out, t)
		}
	}
	return append(out, open...)
}

// TrimForDeadline drops targets whose recent latency says they cannot answer
// before deadline. Targets of unknown latency stay. When no target would be
// left, the fastest one stays (the EWMA is an average, it may still make it);
// a job already past its deadline keeps its plan and fails in the pool with
// deadline_exceeded without a call.
func TrimForDeadline(plan []schemas.Target, deadline, now time.Time, l Latencies) []schemas.Target {
	if l == nil || len(plan) == 0 || !now.Before(deadline) {
		return plan
	}
	left := deadline.Sub(now)
	out := make([]schemas.Target, 0, len(plan))
	best, bestLat := -1, time.Duration(0)
	for i, t := range plan {
		lat, ok := l.Latency(t.Provider, t.Model)
		if !ok || lat <= left {
			out = append(out, t)
			continue
		}
		if best < 0 || lat < bestLat {
			best, bestLat = i, lat
		}
	}
	if len(out) == 0 && best >= 0 {
		out = append(out, plan[best])
	}
	return out
}
