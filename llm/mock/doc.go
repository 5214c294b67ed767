// Package mock is Switchboard's fault-injecting mock LLM provider. It speaks
// the OpenAI, Anthropic and Gemini HTTP APIs over real HTTP so adapters,
// worker pools and end-to-end tests exercise the real wire, and it injects
// failures on demand.
//
// # Starting
//
//	srv, err := mock.Listen("127.0.0.1:0", mock.Options{})
//	defer srv.Close()
//	base := srv.URL() // http://127.0.0.1:PORT
//
// New returns the same server as a plain http.Handler to mount yourself.
// The CLI equivalent is `switchboard mock --listen 127.0.0.1:9999`.
//
// # Shapes
//
//   - OpenAI: POST {any prefix}/chat/completions (so base URL URL()+"/v1" or
//     URL()); a chat.completion object, or with "stream":true SSE
//     chat.completion.chunk events ending "data: [DONE]" (a final
//     usage chunk with empty choices when stream_options.include_usage).
//     GET /v1/models lists Options.Models. Key: Authorization: Bearer.
//     Errors: {"error":{"message","type","param","code"}}.
//   - Anthropic Messages: POST /v1/messages (base URL URL()); requires the
//     anthropic-version header and max_tokens like the real API. A message
//     object with text or tool_use content, or with "stream":true the event
//     stream message_start, content_block_start, content_block_delta
//     (text_delta / input_json_delta), content_block_stop, message_delta
//     (stop_reason, usage), message_stop. Key: x-api-key. Errors:
//     {"type":"error","error":{"type","message"}}.
//   - Gemini: POST /v1beta/models/{model}:generateContent and
//     :streamGenerateContent (?alt=sse for SSE, else a JSON array); base URL
//     URL()+"/v1beta". candidates[].content.parts (text / functionCall),
//     finishReason, usageMetadata. Key: x-goog-api-key (?key= works but is
//     flagged in RecordedRequest.KeyInURL). Errors: {"error":{"code","message","status"}}.
//
// # Deterministic replies
//
// The reply is "mock reply to: <text of the last user message>" (or
// Options.Reply(prompt)). Tokens are whitespace-separated words: input =
// words of every message text including the system prompt, output = words
// of the reply. A max-token limit (OpenAI max_tokens / max_completion_tokens,
// Anthropic max_tokens, Gemini generationConfig.maxOutputTokens) truncates the
// reply to that many words (finish length / max_tokens / MAX_TOKENS). Stop
// sequences (OpenAI stop, Anthropic stop_sequences, Gemini stopSequences)
// cut the reply before the earliest match (stop / stop_sequence / STOP).
// When tools are declared and tool choice is not none, the reply is a call
// to the named tool or else the first one, with Options.ToolArguments
// (default {}); its output tokens are the words of name and arguments.
// Streams send one content chunk per word (tool arguments in 16-byte pieces;
// Gemini sends a tool call whole).
//
// # Faults
//
// Options.Faults applies to every call; Options.ModelFaults[model] replaces
// it for calls naming that model. Change both at runtime with SetFaults /
// SetModelFaults / ClearModelFaults or over HTTP:
//
//	PUT    /_mock/faults[?model=M]  {"fail_first":2,"error_status":429,"retry_after":"1s"}
//	GET    /_mock/faults[?model=M]
//	DELETE /_mock/faults[?model=M]
//
// Knobs (JSON names in parentheses): ErrorRate (error_rate), FailFirst
// (fail_first), ErrorStatus (error_status, default 500), ErrorBody
// (error_body: a raw, non-JSON error body), RetryAfter
// (retry_after), Latency (latency), Jitter (jitter), Hang (hang), Malformed
// (malformed), InputTokens / OutputTokens (input_tokens, output_tokens),
// ErrorAfterChunks (error_after_chunks), TTFB (ttfb), ChunkDelay
// (chunk_delay), CutAfterChunks (cut_after_chunks) with CutWithFinish
// (cut_with_finish), StallAfterChunks (stall_after_chunks),
// MalformedAfterChunks (malformed_after_chunks), NoDone (no_done),
// ContextLength (context_length), RejectPrefill (reject_prefill). See Faults
// for their meaning. Order per call: API key check (401), request validation
// (400), Latency+Jitter, Hang, injected error, ContextLength, RejectPrefill,
// then the answer (Malformed, TTFB, chunks with ErrorAfterChunks,
// CutAfterChunks, StallAfterChunks and MalformedAfterChunks, NoDone).
//
// # Prefill
//
// A request whose last message is the assistant's (OpenAI/Anthropic role
// assistant, Gemini role model) asks to continue that text. When the reply
// starts with it, the mock answers only the rest (its tokens too), as
// Anthropic does; RejectPrefill answers such a request with the vendor's 400. Randomness
// comes from Options.Seed, so a sequential run is reproducible.
//
// # Observing
//
// Stats (GET /_mock/stats) counts calls per shape, injected errors, InFlight,
// MaxInFlight (to prove a concurrency cap) and Canceled (clients that went
// away mid-call, to prove cancellation reaches the provider). Reset (POST
// /_mock/reset) zeroes them. LastRequest (GET /_mock/last) and Requests
// return what reached the wire, with API keys redacted. Tests should poll
// Stats (natstest.CheckFor), not sleep.
package mock
