package testenv

import (
	"iter"
	"strings"
	"time"

	"github.com/switchboard-llm/switchboard/schemas"
)

// CallsPerWindow counts the calls to provider recorded in results per fixed
// window of length w (aligned like the rate limiter's) by when each call
// started in its pool. A pool starts a call only inside the window its
// rate-limit reservation was counted in, so this is the limiter's own
// accounting as the calls really happened; the provider's arrival clock
// would add the request's transit time, which under load can carry a call
// admitted at a window's end into the next one.
func CallsPerWindow(results iter.Seq[*schemas.Result], provider string, w time.Duration) (perWindow map[int64]int, calls int) {
	perWindow = map[int64]int{}
	for r := range results {
		for _, a := range r.Attempts {
			if a.Provider != provider || Skipped(a) {
				continue
			}
			perWindow[a.StartedAt.UnixNano()/int64(w)]++
			calls++
		}
	}
	return perWindow, calls
}

// Skipped reports whether an attempt records a target passed over without
// a call (open breaker, no quota, no time left).
func Skipped(a schemas.Attempt) bool {
	return a.StatusCode == 0 && a.DurationMS == 0 && (a.ErrorType == schemas.ErrCircuitOpen ||
		a.ErrorType == schemas.ErrRateLimited || strings.HasPrefix(a.ErrorMessage, "skipped:"))
}
