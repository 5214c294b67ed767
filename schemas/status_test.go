package schemas

import "testing"

func TestHTTPStatus(t *testing.T) {
	cases := map[string]int{
		ErrInvalidRequest: 400, ErrContentFilter: 400, ErrContextLength: 400,
		ErrNotFound: 404, ErrRateLimited: 429, ErrBudgetExceeded: 429,
		ErrTimeout: 504, ErrDeadlineExceeded: 504, ErrCanceled: 499,
		// No provider was called: the broker cannot serve the job now.
		ErrNoTarget: 503,
		ErrInternal: 500,
		ErrAuth:     502, ErrServerError: 502, ErrConnection: 502, ErrBadResponse: 502, ErrStreamBroken: 502,
		"exhausted": 502, "something_new": 502,
	}
	for typ, want := range cases {
		if got := HTTPStatus(typ); got != want {
			t.Errorf("%s -> %d, want %d", typ, got, want)
		}
	}
}
