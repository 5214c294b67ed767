package workers

import (
	"time"

	backoffpkg "github.com/switchboard-llm/switchboard/internal/backoff"
)

// backoff is the wait before the retry-th retry (0-based) of a call: a
// uniform random wait in [base, min(max, base·2^(retry+1))] (not "full
// jitter", which would start at 0: every retry waits at least base), and
// never less than the provider's Retry-After.
func backoff(base, max time.Duration, retry int, retryAfter time.Duration) time.Duration {
	if base <= 0 {
		base = time.Millisecond
	}
	d := backoffpkg.Jitter(base, backoffpkg.Exp(base, max, retry+1))
	if retryAfter > d {
		d = retryAfter
	}
	return d
}

// sleepCtx waits for d or until ctx ends; it reports whether the full wait
// elapsed.
func sleepCtx(ctx interface{ Done() <-chan struct{} }, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
