package oai

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/switchboard-llm/switchboard/internal/redact"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/workers"
)

// MaxBody caps a successful response body; MaxErrorBody an error body.
const (
	MaxBody      = 64 << 20
	MaxErrorBody = 64 << 10
)

// Redact removes key from s. Every message that leaves an adapter goes
// through it (or through Snippet or ReadErrorBody, which redact first), so
// a provider echoing the key cannot leak it.
func Redact(s, key string) string { return redact.Secrets(s, key) }

// SnippetLen bounds a body quoted in an error message.
const SnippetLen = 300

// Snippet quotes a body in an error message: key redacted from the whole
// body first, then cut to SnippetLen bytes on a character boundary.
func Snippet(b []byte, key string) string {
	s := redact.Clip(strings.TrimSpace(string(b)), SnippetLen, key)
	if s == "" {
		return "empty body"
	}
	return s
}

// ReadErrorBody reads an error response body of up to MaxErrorBody bytes
// with key redacted. It reads len(key) bytes past the limit and redacts
// before cutting, so a key straddling the limit does not survive in part.
func ReadErrorBody(r io.Reader, key string) []byte {
	raw, _ := io.ReadAll(io.LimitReader(r, MaxErrorBody+int64(len(key))))
	return []byte(redact.Prefix(redact.Secrets(string(raw), key), MaxErrorBody))
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
