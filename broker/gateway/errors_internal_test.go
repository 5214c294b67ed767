package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/router"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

func TestResultErrorMapping(t *testing.T) {
	cases := map[string]int{
		schemas.ErrRateLimited:      429,
		schemas.ErrBudgetExceeded:   429,
		schemas.ErrInvalidRequest:   400,
		schemas.ErrContentFilter:    400,
		schemas.ErrNotFound:         404,
		schemas.ErrAuth:             502,
		schemas.ErrTimeout:          504,
		schemas.ErrDeadlineExceeded: 504,
		schemas.ErrServerError:      502,
		schemas.ErrConnection:       502,
		schemas.ErrBadResponse:      502,
		"exhausted":                 502,
		schemas.ErrCanceled:         499,
		schemas.ErrNoTarget:         503,
		schemas.ErrInternal:         500,
		"something_new":             502,
	}
	for typ, want := range cases {
		if got, _ := ResultError(&schemas.ErrorInfo{Type: typ}); got != want {
			t.Errorf("%s -> %d, want %d", typ, got, want)
		}
	}
	res := &schemas.Result{Status: schemas.StatusFailed, Error: &schemas.ErrorInfo{Type: schemas.ErrRateLimited, Message: "slow down"},
		Attempts: []schemas.Attempt{{}, {}}}
	e := fromResult(res)
	if e.Status != 429 || e.RetryAfter == 0 || e.Code != "rate_limited" || e.Message != "slow down (after 2 attempts)" {
		t.Errorf("fromResult = %+v", e)
	}
}

func TestSubmitErrorMapping(t *testing.T) {
	cases := []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("publish: %w", topology.ErrQueueFull), http.StatusTooManyRequests, "queue_full"},
		{fmt.Errorf("job: %w", broker.ErrDeadlineExceeded), http.StatusGatewayTimeout, "deadline_exceeded"},
		{&router.BudgetError{Tenant: "a", Reason: "daily"}, http.StatusTooManyRequests, "budget_exceeded"},
		{&schemas.FieldError{Field: "request.messages", Msg: "must hold at least one message"}, 400, "invalid_request"},
		{&schemas.FieldError{Field: "request", Msg: "job is 9 bytes, over the limit of 8"}, 413, "request_too_large"},
		{&schemas.FieldError{Field: "route", Msg: `unknown route "x"`}, 404, "model_not_found"},
		{errors.New("nats: connection closed"), 503, "broker_unavailable"},
	}
	for _, tc := range cases {
		e := fromSubmit(tc.err, "request.")
		if e.Status != tc.status || e.Code != tc.code || e.Message == "" {
			t.Errorf("%v -> %+v, want %d %s", tc.err, e, tc.status, tc.code)
		}
		if e.Status == 429 && e.RetryAfter == 0 {
			t.Errorf("%v: 429 without Retry-After", tc.err)
		}
	}
	if e := fromSubmit(&schemas.FieldError{Field: "request.messages", Msg: "x"}, "request."); e.Param != "messages" {
		t.Errorf("param %q", e.Param)
	}
}
