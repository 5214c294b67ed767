// Package route turns a job's route, pinned model or metadata into a plan:
// the ordered targets its workers will try.
package route

import (
	"fmt"
	"strings"

	"github.com/switchboard-llm/switchboard/broker/config"
	"github.com/switchboard-llm/switchboard/schemas"
)

// Resolver resolves jobs against one config.
type Resolver struct {
	cfg *config.Config
}

// New returns a Resolver for cfg.
func New(cfg *config.Config) *Resolver { return &Resolver{cfg: cfg} }

// Config returns the config the resolver uses.
func (r *Resolver) Config() *config.Config { return r.cfg }

// Resolve fills job.Route (when a rule or the default picks it) and job.Plan.
// A job that already has a plan keeps it. Errors are *schemas.FieldError
// naming "route" or "model".
func (r *Resolver) Resolve(job *schemas.Job) error {
	if len(job.Plan) > 0 {
		return nil
	}
	if job.Model != "" {
		provider, model, ok := strings.Cut(job.Model, "/")
		if !ok || provider == "" || model == "" {
			return &schemas.FieldError{Field: "model", Msg: fmt.Sprintf("%q must be provider/model", job.Model)}
		}
		if _, ok := r.cfg.Provider(provider); !ok {
			return &schemas.FieldError{Field: "model", Msg: fmt.Sprintf("unknown provider %q in %q", provider, job.Model)}
		}
		job.Plan = []schemas.Target{{Provider: provider, Model: model}}
		return nil
	}
	name := job.Route
	if name == "" {
		name = r.match(job)
	}
	rt, ok := r.cfg.Route(name)
	if !ok {
		if name == "" {
			return &schemas.FieldError{Field: "route", Msg: "no route given and no default route configured"}
		}
		return &schemas.FieldError{Field: "route", Msg: fmt.Sprintf("unknown route %q", name)}
	}
	job.Route = rt.Name
	job.Plan = Plan(rt)
	return nil
}

// match returns the route of the first rule whose conditions all hold, or
// the default route.
func (r *Resolver) match(job *schemas.Job) string {
	for _, rule := range r.cfg.Rules {
		if ruleMatches(rule, job) {
			return rule.Route
		}
	}
	return r.cfg.DefaultRoute
}

func ruleMatches(rule config.Rule, job *schemas.Job) bool {
	for key, want := range rule.When {
		var got string
		if key == "priority" {
			got = job.Priority
		} else {
			got = job.Metadata[key]
		}
		if !want.Matches(got) {
			return false
		}
	}
	return true
}

// Plan lists a route's targets in the order its strategy tries them.
func Plan(rt *config.Route) []schemas.Target {
	plan := make([]schemas.Target, 0, len(rt.Targets))
	for _, t := range rt.Targets {
		plan = append(plan, schemas.Target{Provider: t.Provider, Model: t.Model})
	}
	return plan
}
