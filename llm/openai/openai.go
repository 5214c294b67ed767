// Package openai is the adapter for any OpenAI-compatible chat-completions
// endpoint (OpenAI itself, Azure-style proxies, vLLM, Ollama, our mock).
//
// The caller's body is passed through untouched except for "model" (set to
// the target's model) and "stream"/"stream_options" (removed for Complete,
// "stream": true for Stream). Each call makes exactly one HTTP attempt.
package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/json/jsontext"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/llm/internal/jsonobj"
	"github.com/switchboard-llm/switchboard/llm/internal/oai"
	"github.com/switchboard-llm/switchboard/llm/internal/sse"
	"github.com/switchboard-llm/switchboard/schemas"
)

var (
	_ llm.Completer = (*Client)(nil)
	_ llm.Streamer  = (*Client)(nil)
	_ llm.Embedder  = (*Client)(nil)
)

// DefaultBaseURL is OpenAI's API root.
const DefaultBaseURL = "https://api.openai.com/v1"

// Config configures a Client.
type Config struct {
	// Name is the provider name used in errors (the config's provider name).
	Name string
	// BaseURL is the API root; "/chat/completions" is appended.
	BaseURL string
	// APIKey, when set, is sent as "Authorization: Bearer <key>".
	APIKey string
	// HTTPClient makes the calls; nil means http.DefaultClient.
	HTTPClient *http.Client
}

// Client calls one OpenAI-compatible endpoint.
type Client struct {
	name string
	url  string
	// embedURL is the embeddings endpoint (base + "/embeddings").
	embedURL string
	key      string
	hc       *http.Client
}

// New returns a Client for cfg.
func New(cfg Config) *Client {
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	name := cfg.Name
	if name == "" {
		name = "openai"
	}
	base = strings.TrimRight(base, "/")
	return &Client{name: name, url: base + "/chat/completions", embedURL: base + "/embeddings", key: cfg.APIKey, hc: hc}
}

// String describes the client without its key.
func (c *Client) String() string { return fmt.Sprintf("openai.Client{%s %s}", c.name, c.url) }

// GoString describes the client without its key.
func (c *Client) GoString() string { return c.String() }

// Complete makes one non-streaming call.
func (c *Client) Complete(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	body, _, err := c.body(req, false)
	if err != nil {
		return nil, err
	}
	resp, err := c.post(ctx, body, false)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := oai.ReadBody(ctx, c.name, resp, oai.MaxBody)
	if err != nil {
		return nil, err
	}
	return c.completion(raw, resp.StatusCode)
}

// completion reads a chat.completion body in one pass: whether it has
// choices, its usage and an error object. A usage that is not an object of
// numbers counts as none, as an answer without usage does.
func (c *Client) completion(raw []byte, status int) (*llm.Response, error) {
	var probe struct {
		Choices choiceCount  `json:"choices"`
		Usage   lenientUsage `json:"usage"`
		Error   *apiError    `json:"error"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, oai.BadResponse(c.name, status, "unparseable response body: %s", oai.Snippet(raw, c.key))
	}
	if probe.Error != nil && probe.Choices == 0 {
		return nil, oai.BadResponse(c.name, status, "error in a %d response: %s", status, oai.Redact(probe.Error.Message, c.key))
	}
	if probe.Choices == 0 {
		return nil, oai.BadResponse(c.name, status, "response has no choices")
	}
	return &llm.Response{Body: raw, Usage: probe.Usage.Tokens(), StatusCode: status}, nil
}

// choiceCount decodes a JSON array (or null) as the number of its elements,
// without keeping them.
type choiceCount int

// UnmarshalJSONFrom counts the array's elements.
func (n *choiceCount) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	*n = 0
	if dec.PeekKind() == 'n' {
		_, err := dec.ReadToken()
		return err
	}
	if tok, err := dec.ReadToken(); err != nil {
		return err
	} else if tok.Kind() != '[' {
		return fmt.Errorf("choices is a %v, not an array", tok.Kind())
	}
	for dec.PeekKind() != ']' {
		if err := dec.SkipValue(); err != nil {
			return err
		}
		*n++
	}
	_, err := dec.ReadToken()
	return err
}

// lenientUsage is a usage object decoded in place (oai.Usage.Read): a
// malformed value counts as no usage rather than failing the answer.
type lenientUsage struct{ oai.Usage }

// UnmarshalJSONFrom reads the value and keeps its token counts.
func (u *lenientUsage) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	v, err := dec.ReadValue()
	if err != nil {
		return err
	}
	u.Read(v)
	return nil
}

// Stream makes one streaming call, emitting each chunk as the upstream sent it.
func (c *Client) Stream(ctx context.Context, req *llm.Request, emit func(chunk json.RawMessage) error) (*llm.Response, error) {
	body, callerWantsUsage, err := c.body(req, true)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // closing early tears the upstream connection down
	resp, err := c.post(ctx, body, true)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var asm oai.Assembler
	bad := 0
	r := sse.NewReader(resp.Body)
	for {
		ev, err := r.Next()
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			if ctx.Err() == nil && asm.Finished() {
				break // the end after the finish_reason: [DONE] is optional
			}
			return nil, c.cut(ctx, resp.StatusCode, &asm, bad, err)
		}
		last := err != nil // an event cut off by the end of the body
		if isDone(ev.Data) {
			break
		}
		if len(bytes.TrimSpace(ev.Data)) > 0 {
			var probe struct {
				oai.Chunk
				Error *apiError `json:"error"`
			}
			if jerr := json.Unmarshal(ev.Data, &probe); jerr != nil {
				if last { // cut mid-event
					if ctx.Err() == nil && asm.Finished() {
						break
					}
					return nil, c.cut(ctx, resp.StatusCode, &asm, bad, err)
				}
				// A malformed event is skipped; too many break the stream.
				if bad++; bad > llm.MaxBadChunks {
					return nil, oai.TooManyBadChunks(c.name, resp.StatusCode, bad, ev.Data, c.key)
				}
			} else {
				if probe.Error != nil || ev.Name == "error" {
					return nil, c.streamError(resp.StatusCode, probe.Error, asm.Chunks)
				}
				asm.Add(&probe.Chunk)
				if callerWantsUsage || len(probe.Choices) > 0 || len(probe.Usage) == 0 {
					// (the usage chunk asked for on the caller's behalf is not sent on)
					if err := emit(json.RawMessage(ev.Data)); err != nil {
						return nil, err
					}
				}
			}
		}
		if last {
			if ctx.Err() == nil && asm.Finished() {
				break
			}
			return nil, c.cut(ctx, resp.StatusCode, &asm, bad, err)
		}
	}
	return &llm.Response{Body: oai.Marshal(asm.Completion()), Usage: oai.ParseUsage(asm.Usage()), StatusCode: resp.StatusCode, BadChunks: bad}, nil
}

// cut is the error of a stream that ended (or failed) before it finished.
// An answer whose finish_reason already came is complete: the caller
// treats a read error after it as the end of the stream.
func (c *Client) cut(ctx context.Context, status int, asm *oai.Assembler, bad int, err error) error {
	return oai.StreamCut(ctx, c.name, status, asm.Chunks, bad, err)
}

// streamError is the error of an error event in a stream.
func (c *Client) streamError(status int, ae *apiError, chunks int) *llm.ProviderError {
	msg := "error event in stream"
	if ae != nil {
		msg = oai.Redact(ae.Message, c.key)
	}
	pe := &llm.ProviderError{Provider: c.name, Status: status, Type: schemas.ErrServerError, Retryable: true,
		Message: fmt.Sprintf("stream error after %d chunks: %s", chunks, msg)}
	if ae != nil {
		pe.Code = ae.code()
		if ae.isContentFilter() {
			pe.Type, pe.Retryable = schemas.ErrContentFilter, false
		}
	}
	return pe
}

func isDone(data []byte) bool { return string(bytes.TrimSpace(data)) == "[DONE]" }

// body rewrites the caller's body: model set, stream fields set or removed,
// everything else byte for byte and in order. A stream always asks for
// usage (stream_options.include_usage) so its cost is known; the result
// reports whether the caller asked for it too.
func (c *Client) body(req *llm.Request, stream bool) ([]byte, bool, error) {
	if len(bytes.TrimSpace(req.Body)) == 0 {
		return nil, false, oai.InvalidRequest(c.name, "request body is empty")
	}
	obj, err := jsonobj.Parse(req.Body)
	if err != nil {
		return nil, false, oai.InvalidRequest(c.name, "request: %v", err)
	}
	callerWantsUsage := false
	if req.Model != "" {
		m, _ := json.Marshal(req.Model)
		obj.Set("model", m)
	}
	if stream {
		obj.Set("stream", json.RawMessage("true"))
		opts := &jsonobj.Object{}
		if raw, ok := obj.Get("stream_options"); ok {
			if parsed, err := jsonobj.Parse(raw); err == nil {
				opts = parsed
			}
		}
		if v, ok := opts.Get("include_usage"); ok && string(bytes.TrimSpace(v)) == "true" {
			callerWantsUsage = true
		}
		opts.Set("include_usage", json.RawMessage("true"))
		obj.Set("stream_options", opts.Bytes())
	} else {
		obj.Delete("stream")
		obj.Delete("stream_options")
	}
	return obj.Bytes(), callerWantsUsage, nil
}

func (c *Client) post(ctx context.Context, body []byte, stream bool) (*http.Response, error) {
	return c.postTo(ctx, c.url, body, stream)
}

// Embed makes one embeddings call: the body as sent but for its model; the
// answer is OpenAI's embeddings list, checked to hold one vector per input.
func (c *Client) Embed(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	obj, err := jsonobj.Parse(req.Body)
	if err != nil {
		return nil, oai.InvalidRequest(c.name, "request: %v", err)
	}
	if req.Model != "" {
		m, _ := json.Marshal(req.Model)
		obj.Set("model", m)
	}
	resp, err := c.postTo(ctx, c.embedURL, obj.Bytes(), false)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := oai.ReadBody(ctx, c.name, resp, oai.MaxBody)
	if err != nil {
		return nil, err
	}
	var probe struct {
		Data []struct {
			Embedding json.RawMessage `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int64 `json:"prompt_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, oai.BadResponse(c.name, resp.StatusCode, "unparseable embeddings body: %s", oai.Snippet(raw, c.key))
	}
	inputs, err := schemas.EmbeddingInputs(req.Body)
	if err != nil {
		return nil, oai.InvalidRequest(c.name, "%v", err)
	}
	if len(probe.Data) != len(inputs) {
		return nil, oai.BadResponse(c.name, resp.StatusCode, "%d embeddings for %d inputs", len(probe.Data), len(inputs))
	}
	return &llm.Response{Body: raw, Usage: schemas.Usage{InputTokens: probe.Usage.PromptTokens}, StatusCode: resp.StatusCode}, nil
}

func (c *Client) postTo(ctx context.Context, url string, body []byte, stream bool) (*http.Response, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, oai.InvalidRequest(c.name, "building request: %v", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if stream {
		hreq.Header.Set("Accept", "text/event-stream")
	} else {
		hreq.Header.Set("Accept", "application/json")
	}
	if c.key != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := oai.Do(c.hc, c.name, hreq)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, c.statusError(resp)
	}
	return resp, nil
}

// apiError is the "error" member of an OpenAI error body.
type apiError struct {
	Message string          `json:"message"`
	Type    string          `json:"type"`
	Code    json.RawMessage `json:"code"`
}

func (e *apiError) code() string {
	var s string
	if json.Unmarshal(e.Code, &s) == nil {
		return s
	}
	return strings.Trim(string(e.Code), `"`)
}

func (e *apiError) isContentFilter() bool {
	switch e.code() {
	case "content_filter", "content_policy_violation":
		return true
	}
	return false
}

func (c *Client) statusError(resp *http.Response) error {
	raw := oai.ReadErrorBody(resp.Body, c.key)
	var body struct {
		Error *apiError `json:"error"`
	}
	msg := ""
	if json.Unmarshal(raw, &body) == nil && body.Error != nil && body.Error.Message != "" {
		msg = body.Error.Message
	} else if len(bytes.TrimSpace(raw)) > 0 {
		msg = oai.Snippet(raw, c.key)
	} else {
		msg = http.StatusText(resp.StatusCode)
	}
	pe := llm.ErrorFromStatus(c.name, resp.StatusCode, resp.Header, oai.Redact(msg, c.key))
	if body.Error != nil {
		pe.Code = body.Error.code()
	}
	if body.Error != nil && body.Error.isContentFilter() {
		pe.Type, pe.Retryable = schemas.ErrContentFilter, false
	}
	return oai.MarkContextLength(pe)
}
