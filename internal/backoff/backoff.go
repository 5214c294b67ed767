// Package backoff computes the waits between retries: capped exponential
// growth and a uniform jitter. It is the one implementation used by the
// worker attempt loop, internal/supervise's restarts, the ingester's
// ClickHouse retries, the telemetry consumer's re-creation and kvstate's
// compare-and-set retries.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Exp is base·2^n (n >= 0), capped at limit; base when limit < base, and
// base is at least 1ns.
func Exp(base, limit time.Duration, n int) time.Duration {
	base = max(base, 1)
	if limit < base {
		return base
	}
	d := base
	for i := 0; i < n && d < limit; i++ {
		if d > limit/2 {
			return limit
		}
		d *= 2
	}
	return d
}

// Jitter is a uniformly random wait in [lo, hi]; lo when hi <= lo.
func Jitter(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo+1)
}

// Equal is "equal jitter": a uniformly random wait in [d/2, d] for
// d = Exp(base, limit, n), so waits grow but processes retrying together
// after one outage spread out.
func Equal(base, limit time.Duration, n int) time.Duration {
	d := Exp(base, limit, n)
	return Jitter(d/2, d)
}
