// Package schemas holds Switchboard's wire contracts (version 1): the Job that
// travels through JetStream, the Attempt history it accumulates, the Result a
// caller receives and the telemetry Event the analytics path ingests.
package schemas

import (
	"encoding/json"
	"time"
)

// Version is the schema version every v1 message carries in its "v" field.
const Version = 1

// Metadata keys with a meaning of their own; any other string key is allowed.
const (
	MetaTenant   = "tenant"
	MetaTier     = "tier"
	MetaTask     = "task"
	MetaCustomID = "custom_id"
)

// Priority lanes a job may ask for.
const (
	PriorityHigh   = "high"
	PriorityNormal = "normal"
	PriorityLow    = "low"
)

// Target is one provider/model pair a job may be sent to.
type Target struct {
	Provider string `json:"provider"`
	Model    string `json:"model"`
}

// String renders the target as "provider/model".
func (t Target) String() string { return t.Provider + "/" + t.Model }

// Job is a completion request in flight. It is published on llm.submit (raw,
// unrouted) or llm.jobs.<provider> (routed: Plan[0] is the target to call).
type Job struct {
	V  int    `json:"v"`
	ID string `json:"id"`
	// Route names a configured route; Model ("provider/model") pins one target.
	Route string `json:"route,omitempty"`
	Model string `json:"model,omitempty"`
	// Kind is what the job asks for: "" (a chat completion) or
	// KindEmbeddings (Request is then an OpenAI embeddings body).
	Kind string `json:"kind,omitempty"`
	// Request is an OpenAI chat-completions body, passed through untouched.
	Request json.RawMessage `json:"request"`
	// Native, when set, is the request as the caller sent it in a vendor's
	// own API (POST /v1/messages: Anthropic Messages). Request then holds
	// its translation, used by targets of other kinds and for estimates; a
	// target of Native's kind gets Native.Body unchanged except its model.
	Native   *NativeRequest `json:"native,omitempty"`
	Metadata Metadata       `json:"metadata,omitempty"`
	Priority string         `json:"priority,omitempty"`
	Deadline *time.Time     `json:"deadline,omitempty"`
	Batch    string         `json:"batch,omitempty"`
	// Reply is a core NATS subject that also receives the Result (sync callers).
	Reply string `json:"reply,omitempty"`
	// Stream asks the worker to stream chunks on llm.stream.<id>.
	Stream bool `json:"stream,omitempty"`
	// Plan holds the targets still to try; Plan[0] is the current one.
	Plan []Target `json:"plan,omitempty"`
	// Hop counts how many times the job was published to a provider subject
	// (0 for the first); it keys the per-hop dedup id.
	Hop       int       `json:"hop,omitempty"`
	Attempts  []Attempt `json:"attempts,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// Continuation is set by the broker when a streamed answer broke after
	// its first chunk: the next target continues it (broker-owned).
	Continuation *Continuation `json:"continuation,omitempty"`
}

// Continuation is the part of a streamed answer already sent to the caller
// when its target broke mid-stream. The next target is asked to continue
// it (the text as a final assistant message, a prefill) or, when it cannot,
// to answer again from the start; only what follows Text reaches the caller.
type Continuation struct {
	// Text is the content already sent (choice 0).
	Text string `json:"text"`
	// Chunks counts the chunks already sent.
	Chunks int64 `json:"chunks"`
	// InputTokens and OutputTokens are the usage of the earlier calls (an
	// estimate for a cut stream that reported none), added to the final
	// usage so it covers the whole answer.
	InputTokens  int64 `json:"input_tokens,omitempty"`
	OutputTokens int64 `json:"output_tokens,omitempty"`
	// FirstChunkAt is when the first chunk reached the caller (the job's
	// time to first token, whichever target ends up finishing it).
	FirstChunkAt time.Time `json:"first_chunk_at,omitzero"`
}

// Job kinds (Job.Kind); the empty kind is a chat completion.
const (
	// KindEmbeddings is an OpenAI embeddings request ({"model","input",
	// "dimensions"?}); its Result's response is OpenAI's embeddings list.
	KindEmbeddings = "embeddings"
)

// Request formats of NativeRequest.Format.
const (
	// FormatAnthropic is an Anthropic Messages API body.
	FormatAnthropic = "anthropic"
)

// Headers of the Anthropic API that NativeRequest.Headers may carry (to
// Anthropic-kind targets only).
const (
	HeaderAnthropicVersion = "anthropic-version"
	HeaderAnthropicBeta    = "anthropic-beta"
)

// NativeRequest is a request in a vendor's own API shape, kept beside its
// OpenAI translation so a target of that vendor's kind gets it verbatim.
type NativeRequest struct {
	// Format names the shape: FormatAnthropic.
	Format string `json:"format"`
	// Body is the caller's request body.
	Body json.RawMessage `json:"body"`
	// Headers are the caller's vendor headers to forward (lower-case
	// names: anthropic-version, anthropic-beta).
	Headers map[string]string `json:"headers,omitempty"`
}

// Tenant returns the job's tenant metadata, or "" when absent.
func (j *Job) Tenant() string { return j.Metadata[MetaTenant] }

// Attempt outcomes.
const (
	OutcomeOK       = "ok"
	OutcomeRetry    = "retry"
	OutcomeFallback = "fallback"
	OutcomeFatal    = "fatal"
)

// Error types recorded on attempts and results.
const (
	ErrRateLimited      = "rate_limited"
	ErrServerError      = "server_error"
	ErrTimeout          = "timeout"
	ErrConnection       = "connection"
	ErrInvalidRequest   = "invalid_request"
	ErrAuth             = "auth"
	ErrContentFilter    = "content_filter"
	ErrNotFound         = "not_found"
	ErrBadResponse      = "bad_response"
	ErrDeadlineExceeded = "deadline_exceeded"
	ErrNoTarget         = "no_target"
	ErrBudgetExceeded   = "budget_exceeded"
	ErrCanceled         = "canceled"
	ErrInternal         = "internal"
	// ErrContextLength: the request does not fit the model's context window
	// (the next target may have a larger one).
	ErrContextLength = "context_length"
	// ErrStreamBroken: a stream broke after its first chunk and could not be
	// continued, or held too many malformed events.
	ErrStreamBroken = "stream_broken"
	// ErrBadChunk marks a successful attempt whose stream held malformed
	// events that were skipped (telemetry only, never a job's failure).
	ErrBadChunk = "bad_chunk"
	// ErrCircuitOpen marks an attempt skipped because the target's circuit
	// breaker is open (no call was made).
	ErrCircuitOpen = "circuit_open"
)

// Attempt records one provider call made for a job.
type Attempt struct {
	Provider     string    `json:"provider"`
	Model        string    `json:"model"`
	StartedAt    time.Time `json:"started_at"`
	DurationMS   int64     `json:"duration_ms"`
	StatusCode   int       `json:"status_code,omitempty"`
	ErrorType    string    `json:"error_type,omitempty"`
	ErrorMessage string    `json:"error_message,omitempty"`
	Outcome      string    `json:"outcome"`
	InputTokens  int64     `json:"input_tokens,omitempty"`
	OutputTokens int64     `json:"output_tokens,omitempty"`
}
