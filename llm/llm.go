// Package llm is the adapter contract: one provider call in (Request), its
// answer normalised to OpenAI's shape out (Response), and the one typed error
// every adapter returns (ProviderError). Adapters (llm/openai, llm/anthropic,
// llm/gemini) implement Completer and, optionally, Streamer and Embedder; the
// worker pool finds those by type assertion. An adapter makes exactly one
// HTTP attempt per call: retries belong to the pool alone.
package llm

import (
	"context"
	"encoding/json"

	"github.com/switchboard-llm/switchboard/schemas"
)

// Request is one provider call: an OpenAI chat-completions body and the
// provider-side model name to put in it.
type Request struct {
	// Model is the provider's model name (the part after "provider/").
	Model string
	// Body is the caller's OpenAI chat-completions body, passed through;
	// adapters override its "model" (and "stream") fields.
	Body json.RawMessage
	// Native is the caller's request in a vendor's own shape, when it came
	// in one (POST /v1/messages). An adapter of that vendor sends it
	// instead of translating Body; every other adapter ignores it.
	Native *schemas.NativeRequest
}

// Response is a provider's answer normalised to OpenAI's shape.
type Response struct {
	// Body is an OpenAI chat.completion object, whatever the provider.
	Body json.RawMessage
	// Usage is the token usage reported by the provider.
	Usage schemas.Usage
	// StatusCode is the upstream HTTP status.
	StatusCode int
	// BadChunks counts malformed stream events the adapter skipped.
	BadChunks int
}

// MaxBadChunks is how many malformed events a stream may hold: they are
// skipped (and counted); one more makes the stream broken (stream_broken).
const MaxBadChunks = 3

// Completer makes one non-streaming provider call. It makes exactly one HTTP
// attempt: retries belong to the worker pool alone. Errors are *ProviderError
// (or wrap one) so the pool can classify them.
type Completer interface {
	Complete(ctx context.Context, req *Request) (*Response, error)
}

// Embedder is implemented by adapters whose provider computes embeddings.
// Embed makes one call for an OpenAI embeddings body (Request.Body; the
// adapter sets its model) and returns OpenAI's embeddings list object as the
// Response body, with the input tokens as usage.
type Embedder interface {
	Embed(ctx context.Context, req *Request) (*Response, error)
}

// Streamer is implemented by adapters that can stream. Stream calls emit with
// each chunk as an OpenAI chat.completion.chunk object (JSON); when emit
// returns an error the adapter stops and returns it. The returned Response
// holds the usage and the assembled chat.completion object.
type Streamer interface {
	Stream(ctx context.Context, req *Request, emit func(chunk json.RawMessage) error) (*Response, error)
}
