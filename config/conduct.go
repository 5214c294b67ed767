package config

import (
	"fmt"
	"strings"
	"time"
)

// DefaultStreamIdleTimeout is the longest silence between two chunks of a
// stream before it counts as stalled (well below the provider timeout,
// which bounds the wait for the first byte).
const DefaultStreamIdleTimeout = 10 * time.Second

// DefaultRetryOn is the error types retried on the same target when neither
// the route nor the provider says (retry_on). A timeout is not among them: a
// silent provider moves on to the next target at once. An error type not in
// retry_on is still retried when no later target remains.
var DefaultRetryOn = []string{"rate_limited", "server_error", "connection", "bad_response"}

// prefillKinds is the default models[].prefill per provider kind: Anthropic
// and Gemini continue a final assistant (model) message; OpenAI's API does
// not (other OpenAI-compatible servers may: set prefill: true per model);
// the mock does, like Anthropic.
var prefillKinds = map[string]bool{KindAnthropic: true, KindGemini: true, KindMock: true, KindOpenAI: false}

// StreamIdle returns the stream idle timeout of a call to provider p on
// route rt (nil for a pinned job): the route's, else the provider's, else
// DefaultStreamIdleTimeout.
func StreamIdle(rt *Route, p Provider) time.Duration {
	switch {
	case rt != nil && rt.StreamIdleTimeout > 0:
		return rt.StreamIdleTimeout
	case p.StreamIdleTimeout > 0:
		return p.StreamIdleTimeout
	}
	return DefaultStreamIdleTimeout
}

// RetryOnFor returns the error types retried on the same target: the
// route's retry_on, else the provider's, else DefaultRetryOn.
func RetryOnFor(rt *Route, p Provider) []string {
	switch {
	case rt != nil && rt.RetryOn != nil:
		return rt.RetryOn
	case p.RetryOn != nil:
		return p.RetryOn
	}
	return DefaultRetryOn
}

// Prefill reports whether provider/model accepts an assistant prefill as
// configured: models[].prefill, else the default of the provider's kind.
// explicit is false when the answer is the kind's default.
func (c *Config) Prefill(provider, model string) (ok, explicit bool) {
	for _, m := range c.Models {
		if m.Provider == provider && m.Name == model && m.Prefill != nil {
			return *m.Prefill, true
		}
	}
	p, _ := c.Provider(provider)
	return prefillKinds[p.Kind], false
}

// validateConduct checks stream_idle_timeout and retry_on of providers and
// routes.
func (c *Config) validateConduct(bad func(path, format string, args ...any)) {
	check := func(path string, idle time.Duration, retryOn []string) {
		if idle < 0 {
			bad(path+".stream_idle_timeout", "must not be negative")
		}
		for j, e := range retryOn {
			if !contains(ErrorTypes, e) {
				bad(fmt.Sprintf("%s.retry_on[%d]", path, j), "unknown error type %q (one of %s)", e, strings.Join(ErrorTypes, ", "))
			}
		}
	}
	for i, p := range c.Providers {
		check(fmt.Sprintf("providers[%d]", i), p.StreamIdleTimeout, p.RetryOn)
	}
	for i, r := range c.Routes {
		check(fmt.Sprintf("routes[%d]", i), r.StreamIdleTimeout, r.RetryOn)
	}
}
