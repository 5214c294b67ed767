package oai

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/switchboard-llm/switchboard/internal/redact"
	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/schemas"
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
func TransportError(ctx context.Context, provider string, err error) *llm.ProviderError {
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(cerr, context.DeadlineExceeded) || errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
			return llm.ErrorFromTransport(provider, context.DeadlineExceeded)
		}
		return llm.ErrorFromTransport(provider, cerr)
	}
	return llm.ErrorFromTransport(provider, err)
}

// ReadBody reads a response body up to limit bytes.
func ReadBody(ctx context.Context, provider string, resp *http.Response, limit int64) ([]byte, error) {
	b, err := readAll(io.LimitReader(resp.Body, limit+1), resp.ContentLength, limit)
	if err != nil {
		return nil, TransportError(ctx, provider, err)
	}
	if int64(len(b)) > limit {
		return nil, &llm.ProviderError{Provider: provider, Status: resp.StatusCode, Type: schemas.ErrBadResponse,
			Retryable: true, Message: fmt.Sprintf("response body over %d bytes", limit)}
	}
	return b, nil
}

// presizeMax bounds the buffer a declared Content-Length reserves up front,
// so a length the body does not live up to cannot make each call reserve
// up to MaxBody.
const presizeMax = 1 << 20

// readAll is io.ReadAll with its first buffer sized for a declared length
// (within limit and presizeMax), so a body of known length is read without
// regrowing.
func readAll(r io.Reader, length, limit int64) ([]byte, error) {
	size := int64(512)
	if length > 0 && length <= min(limit, presizeMax) {
		size = length + 1 // the read that sees the end needs no room to grow
	}
	b := make([]byte, 0, size)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// BadResponse is the error for a 2xx answer that cannot be understood.
func BadResponse(provider string, status int, format string, args ...any) *llm.ProviderError {
	return &llm.ProviderError{Provider: provider, Status: status, Type: schemas.ErrBadResponse,
		Retryable: true, Message: fmt.Sprintf(format, args...)}
}

// InvalidRequest is the error for a request body the adapter cannot send.
func InvalidRequest(provider string, format string, args ...any) *llm.ProviderError {
	return &llm.ProviderError{Provider: provider, Type: schemas.ErrInvalidRequest, Message: fmt.Sprintf(format, args...)}
}

// TooManyBadChunks is the error for a stream holding more malformed events
// than llm.MaxBadChunks: the stream is broken.
func TooManyBadChunks(provider string, status, bad int, last []byte, key string) *llm.ProviderError {
	return &llm.ProviderError{Provider: provider, Status: status, Type: schemas.ErrStreamBroken, Retryable: true,
		Message: fmt.Sprintf("%d malformed stream events (more than %d), the last: %s", bad, llm.MaxBadChunks, Snippet(last, key))}
}

// contextLengthPhrases are the phrases vendors use for a request that does
// not fit the model's context window (OpenAI and compatible servers,
// Anthropic, Gemini, vLLM, Mistral).
var contextLengthPhrases = []string{
	"maximum context length",               // OpenAI, vLLM
	"context_length_exceeded",              // OpenAI's code, sometimes quoted in messages
	"context window",                       // several compatible servers
	"prompt is too long",                   // Anthropic
	"exceed context limit",                 // Anthropic: input length and max_tokens exceed context limit
	"exceeds the maximum number of tokens", // Gemini: the input token count (N) exceeds ...
	"too many tokens",
	"reduce the length of the messages",
}

// IsContextLength reports whether an error code or message says the request
// is longer than the model's context window.
func IsContextLength(code, message string) bool {
	if code == "context_length_exceeded" {
		return true
	}
	m := strings.ToLower(message)
	for _, p := range contextLengthPhrases {
		if strings.Contains(m, p) {
			return true
		}
	}
	return false
}

// MarkContextLength retypes a 400 whose code or message says the context
// window is exceeded as context_length (not retryable on the same target).
func MarkContextLength(pe *llm.ProviderError) *llm.ProviderError {
	if pe.Status == 400 && pe.Type == schemas.ErrInvalidRequest && IsContextLength(pe.Code, pe.Message) {
		pe.Type, pe.Retryable = schemas.ErrContextLength, false
	}
	return pe
}

// StreamCut is the error of a stream that ended, or failed to read, before
// its answer finished (no finish reason) after chunks good and bad
// malformed events: a cancelled call or a transport error keeps its own
// class; a cut is a connection error, or bad_response when malformed events
// were all the stream held before it ended.
func StreamCut(ctx context.Context, provider string, status, chunks, bad int, err error) *llm.ProviderError {
	if ctx.Err() != nil || !(errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
		return TransportError(ctx, provider, err)
	}
	if bad > 0 {
		return BadResponse(provider, status, "stream ended without a finish reason after %d chunks and %d malformed events", chunks, bad)
	}
	return &llm.ProviderError{Provider: provider, Status: status, Type: schemas.ErrConnection,
		Retryable: true, Message: fmt.Sprintf("stream ended without a finish reason after %d chunks", chunks)}
}
