package oai

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/workers"
)

// MaxBody caps a successful response body; MaxErrorBody an error body.
const (
	MaxBody      = 64 << 20
	MaxErrorBody = 64 << 10
)

// Redact removes key from s. Every message that leaves an adapter goes
// through it, so a provider echoing the key cannot leak it.
func Redact(s, key string) string {
	if key == "" || !strings.Contains(s, key) {
		return s
	}
	return strings.ReplaceAll(s, key, "[redacted]")
}

// Snippet shortens a body for an error message.
func Snippet(b []byte) string {
	const max = 300
	s := strings.TrimSpace(string(b))
	if len(s) > max {
		s = s[:max]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "..."
	}
	if s == "" {
		return "empty body"
	}
	return s
}

// Do sends req with hc and maps a failed round trip to a ProviderError.
func Do(hc *http.Client, provider string, req *http.Request) (*http.Response, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return nil, TransportError(req.Context(), provider, err)
	}
	return resp, nil
}

// TransportError classifies err from a round trip or a body read, preferring
// the context's own verdict (deadline -> timeout, cancel -> canceled).
func TransportError(ctx context.Context, provider string, err error) *workers.ProviderError {
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(cerr, context.DeadlineExceeded) || errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
			return workers.ErrorFromTransport(provider, context.DeadlineExceeded)
		}
		return workers.ErrorFromTransport(provider, cerr)
	}
	return workers.ErrorFromTransport(provider, err)
}

// ReadBody reads a response body up to limit bytes.
func ReadBody(ctx context.Context, provider string, resp *http.Response, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, TransportError(ctx, provider, err)
	}
	if int64(len(b)) > limit {
		return nil, &workers.ProviderError{Provider: provider, Status: resp.StatusCode, Type: schemas.ErrBadResponse,
			Retryable: true, Message: fmt.Sprintf("response body over %d bytes", limit)}
	}
	return b, nil
}

// BadResponse is the error for a 2xx answer that cannot be understood.
func BadResponse(provider string, status int, format string, args ...any) *workers.ProviderError {
	return &workers.ProviderError{Provider: provider, Status: status, Type: schemas.ErrBadResponse,
		Retryable: true, Message: fmt.Sprintf(format, args...)}
}

// InvalidRequest is the error for a request body the adapter cannot send.
func InvalidRequest(provider string, format string, args ...any) *workers.ProviderError {
	return &workers.ProviderError{Provider: provider, Type: schemas.ErrInvalidRequest, Message: fmt.Sprintf(format, args...)}
}
