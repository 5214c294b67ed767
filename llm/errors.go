package llm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/switchboard-llm/switchboard/schemas"
)

// ProviderError is the one typed error adapters return for a failed call.
type ProviderError struct {
	Provider string
	// Status is the upstream HTTP status, 0 when no response arrived.
	Status int
	// Type is one of the schemas.Err* error types.
	Type string
	// Retryable says whether the same target may be tried again.
	Retryable bool
	// RetryAfter is the wait the provider asked for (Retry-After), if any.
	RetryAfter time.Duration
	// Message is the provider's error message; it never contains keys.
	Message string
	// Code is the provider's own error code, when its body carried one
	// (e.g. "context_length_exceeded").
	Code string
}

func (e *ProviderError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("%s: %s (status %d): %s", e.Provider, e.Type, e.Status, e.Message)
	}
	return fmt.Sprintf("%s: %s: %s", e.Provider, e.Type, e.Message)
}

// ErrorFromStatus builds the ProviderError for an HTTP error response.
func ErrorFromStatus(provider string, status int, header http.Header, message string) *ProviderError {
	e := &ProviderError{Provider: provider, Status: status, Message: message}
	switch {
	case status == http.StatusTooManyRequests:
		e.Type, e.Retryable = schemas.ErrRateLimited, true
	case status == http.StatusRequestTimeout || status == http.StatusGatewayTimeout:
		e.Type, e.Retryable = schemas.ErrTimeout, true
	case status >= 500:
		e.Type, e.Retryable = schemas.ErrServerError, true
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.Type = schemas.ErrAuth
	case status == http.StatusNotFound:
		e.Type = schemas.ErrNotFound
	case status == http.StatusUnprocessableEntity || status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge:
		e.Type = schemas.ErrInvalidRequest
	default:
		e.Type = schemas.ErrInvalidRequest
	}
	if header != nil {
		e.RetryAfter = ParseRetryAfter(header.Get("Retry-After"), time.Now())
	}
	return e
}

// ParseRetryAfter reads a Retry-After value in seconds or as an HTTP date.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 {
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// AsProviderError extracts the ProviderError of err, if any.
func AsProviderError(err error) (*ProviderError, bool) {
	var pe *ProviderError
	ok := errors.As(err, &pe)
	return pe, ok
}

// ErrorFromTransport classifies an error from the HTTP round trip itself (no
// response): a deadline is a timeout, anything else a connection error.
func ErrorFromTransport(provider string, err error) *ProviderError {
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		return &ProviderError{Provider: provider, Type: schemas.ErrTimeout, Retryable: true, Message: "request timed out"}
	}
	if errors.Is(err, context.Canceled) {
		return &ProviderError{Provider: provider, Type: schemas.ErrCanceled, Message: "request canceled"}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL may carry credentials; keep only the cause
	}
	return &ProviderError{Provider: provider, Type: schemas.ErrConnection, Retryable: true, Message: err.Error()}
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
