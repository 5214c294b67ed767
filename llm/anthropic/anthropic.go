// Package anthropic is the adapter for Anthropic's Messages API. It
// translates OpenAI chat-completions bodies to Messages requests and the
// answers (and event streams) back to OpenAI chat.completion objects and
// chunks. Each call makes exactly one HTTP attempt.
package anthropic

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/llm/internal/oai"
	"github.com/switchboard-llm/switchboard/llm/internal/sse"
	"github.com/switchboard-llm/switchboard/schemas"
)

var (
	_ llm.Completer = (*Client)(nil)
	_ llm.Streamer  = (*Client)(nil)
)

// DefaultBaseURL is Anthropic's API root; "/v1/messages" is appended.
const DefaultBaseURL = "https://api.anthropic.com"

// APIVersion is sent as the anthropic-version header.
const APIVersion = "2023-06-01"

// Config configures a Client.
type Config struct {
	// Name is the provider name used in errors.
	Name string
	// BaseURL is the API root (default DefaultBaseURL).
	BaseURL string
	// APIKey is sent as x-api-key.
	APIKey string
	// HTTPClient makes the calls; nil means http.DefaultClient.
	HTTPClient *http.Client
}

// Client calls the Messages API.
type Client struct {
	name string
	url  string
	key  string
	hc   *http.Client
	now  func() time.Time
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
		name = "anthropic"
	}
	return &Client{name: name, url: strings.TrimRight(base, "/") + "/v1/messages", key: cfg.APIKey, hc: hc, now: time.Now}
}

// String describes the client without its key.
func (c *Client) String() string { return fmt.Sprintf("anthropic.Client{%s %s}", c.name, c.url) }

// GoString describes the client without its key.
func (c *Client) GoString() string { return c.String() }

// Complete makes one non-streaming call.
func (c *Client) Complete(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	body, _, err := c.body(req, false)
	if err != nil {
		return nil, err
	}
	resp, err := c.post(ctx, body, req.Native)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := oai.ReadBody(ctx, c.name, resp, oai.MaxBody)
	if err != nil {
		return nil, err
	}
	var m messageResponse
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, oai.BadResponse(c.name, resp.StatusCode, "unparseable response body: %s", oai.Snippet(raw, c.key))
	}
	if m.Type == "error" {
		pe := c.errorFromBody(resp.StatusCode, nil, raw)
		return nil, pe
	}
	if m.Type != "message" || m.ID == "" {
		return nil, oai.BadResponse(c.name, resp.StatusCode, "response is not a message: %s", oai.Snippet(raw, c.key))
	}
	comp := m.completion(c.now().Unix())
	return &llm.Response{Body: oai.Marshal(comp), Usage: oai.ParseUsage(comp.Usage), StatusCode: resp.StatusCode}, nil
}

// streamEvent is the union of the Messages stream events.
type streamEvent struct {
	Type    string `json:"type"`
	Message *struct {
		ID    string `json:"id"`
		Model string `json:"model"`
		Usage usage  `json:"usage"`
	} `json:"message"`
	Index        int `json:"index"`
	ContentBlock *struct {
		Type  string          `json:"type"`
		Text  string          `json:"text"`
		Data  string          `json:"data"`
		ID    string          `json:"id"`
		Name  string          `json:"name"`
		Input json.RawMessage `json:"input"`
	} `json:"content_block"`
	Delta *struct {
		Type        string `json:"type"`
		Text        string `json:"text"`
		PartialJSON string `json:"partial_json"`
		Thinking    string `json:"thinking"`
		Signature   string `json:"signature"`
		StopReason  string `json:"stop_reason"`
	} `json:"delta"`
	Usage *usage    `json:"usage"`
	Error *apiError `json:"error"`
}

// Stream makes one streaming call, translating the event stream into
// chat.completion.chunk objects.
func (c *Client) Stream(ctx context.Context, req *llm.Request, emit func(chunk json.RawMessage) error) (*llm.Response, error) {
	body, includeUsage, err := c.body(req, true)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := c.post(ctx, body, req.Native)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()

	e := oai.NewEmitter(emit)
	e.Created = c.now().Unix()
	e.Model = req.Model
	var u usage
	tools := map[int]int{} // content block index -> tool call index
	finish := ""
	bad := 0
	// done ends the answer: the finish chunk, usage, the assembled completion.
	done := func() (*llm.Response, error) {
		if finish == "" {
			finish = oai.FinishStop
		}
		if err := e.Finish(finish); err != nil {
			return nil, err
		}
		ou := u.openAI()
		if err := e.Usage(ou, includeUsage); err != nil {
			return nil, err
		}
		comp := e.Asm.Completion()
		comp.Usage = ou.Raw()
		return &llm.Response{Body: oai.Marshal(comp), Usage: oai.ParseUsage(comp.Usage), StatusCode: resp.StatusCode, BadChunks: bad}, nil
	}
	r := sse.NewReader(resp.Body)
	for {
		ev, err := r.Next()
		if err != nil {
			if ctx.Err() == nil && finish != "" {
				// message_delta carried the stop reason: the answer is
				// complete even though message_stop did not come.
				return done()
			}
			return nil, oai.StreamCut(ctx, c.name, resp.StatusCode, e.Asm.Chunks, bad, err)
		}
		if len(bytes.TrimSpace(ev.Data)) == 0 {
			continue
		}
		var se streamEvent
		if err := json.Unmarshal(ev.Data, &se); err != nil {
			// A malformed event is skipped; too many break the stream.
			if bad++; bad > llm.MaxBadChunks {
				return nil, oai.TooManyBadChunks(c.name, resp.StatusCode, bad, ev.Data, c.key)
			}
			continue
		}
		if se.Type == "" {
			se.Type = ev.Name
		}
		switch se.Type {
		case "message_start":
			if se.Message == nil {
				return nil, oai.BadResponse(c.name, resp.StatusCode, "message_start without a message")
			}
			e.ID = se.Message.ID
			if se.Message.Model != "" {
				e.Model = se.Message.Model
			}
			u = se.Message.Usage
			err = e.Role()
		case "content_block_start":
			if cb := se.ContentBlock; cb != nil {
				switch cb.Type {
				case "text":
					if cb.Text != "" {
						err = e.Text(cb.Text)
					}
				case "tool_use":
					idx := len(tools)
					tools[se.Index] = idx
					err = e.ToolCall(idx, cb.ID, cb.Name, "")
				case "redacted_thinking":
					err = e.ThinkingBlock(oai.ThinkingBlock{Type: "redacted_thinking", Data: cb.Data})
				}
			}
		case "content_block_delta":
			if d := se.Delta; d != nil {
				switch d.Type {
				case "text_delta":
					err = e.Text(d.Text)
				case "thinking_delta":
					if d.Thinking != "" {
						err = e.Thinking(d.Thinking)
					}
				case "signature_delta":
					err = e.ThinkingBlock(oai.ThinkingBlock{Type: "thinking", Signature: d.Signature})
				case "input_json_delta":
					idx, ok := tools[se.Index]
					if !ok {
						return nil, oai.BadResponse(c.name, resp.StatusCode, "input_json_delta for block %d, which is not a tool_use", se.Index)
					}
					if d.PartialJSON != "" {
						err = e.ToolCall(idx, "", "", d.PartialJSON)
					}
				}
			}
		case "message_delta":
			if se.Delta != nil && se.Delta.StopReason != "" {
				finish = finishReason(se.Delta.StopReason)
			}
			if se.Usage != nil {
				u.OutputTokens = se.Usage.OutputTokens
				if se.Usage.InputTokens > 0 {
					u.InputTokens = se.Usage.InputTokens
				}
			}
		case "message_stop":
			return done()
		case "error":
			return nil, c.streamError(resp.StatusCode, se.Error, e.Asm.Chunks)
		}
		if err != nil {
			return nil, err // emit refused the chunk
		}
	}
}

func (c *Client) streamError(status int, ae *apiError, chunks int) *llm.ProviderError {
	pe := &llm.ProviderError{Provider: c.name, Status: status, Type: schemas.ErrServerError, Retryable: true}
	msg := "error event"
	if ae != nil {
		pe.Code = ae.Type
		msg = ae.Type + ": " + ae.Message
		switch ae.Type {
		case "rate_limit_error":
			pe.Type = schemas.ErrRateLimited
		case "invalid_request_error", "request_too_large":
			pe.Type, pe.Retryable = schemas.ErrInvalidRequest, false
			if oai.IsContextLength("", ae.Message) {
				pe.Type = schemas.ErrContextLength
			}
		case "authentication_error", "permission_error":
			pe.Type, pe.Retryable = schemas.ErrAuth, false
		case "timeout_error":
			pe.Type = schemas.ErrTimeout
		}
	}
	pe.Message = oai.Redact(fmt.Sprintf("stream error after %d chunks: %s", chunks, msg), c.key)
	return pe
}

func (c *Client) body(req *llm.Request, stream bool) ([]byte, bool, error) {
	if n := req.Native; n != nil && n.Format == schemas.FormatAnthropic {
		b, err := nativeBody(n.Body, req.Model, stream)
		if err != nil {
			return nil, false, oai.InvalidRequest(c.name, "%v", err)
		}
		return b, true, nil
	}
	mr, includeUsage, err := translate(req.Body, req.Model, stream)
	if err != nil {
		return nil, false, oai.InvalidRequest(c.name, "%v", err)
	}
	b, err := json.Marshal(mr)
	if err != nil {
		return nil, false, oai.InvalidRequest(c.name, "encoding request: %v", err)
	}
	return b, includeUsage, nil
}

// nativeBody is a caller's Messages body with the target's model and the
// call's stream flag; every other field passes through unchanged.
func nativeBody(body json.RawMessage, model string, stream bool) ([]byte, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, fmt.Errorf("native request: not a JSON object")
	}
	m, _ := json.Marshal(model)
	fields["model"] = m
	if stream {
		fields["stream"] = json.RawMessage("true")
	} else {
		delete(fields, "stream")
	}
	return json.Marshal(fields)
}

// post sends a Messages request. A native request's anthropic-version and
// anthropic-beta headers are forwarded (the version defaults to APIVersion).
func (c *Client) post(ctx context.Context, body []byte, native *schemas.NativeRequest) (*http.Response, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, oai.InvalidRequest(c.name, "building request: %v", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Anthropic-Version", APIVersion)
	if native != nil && native.Format == schemas.FormatAnthropic {
		if v := native.Headers[schemas.HeaderAnthropicVersion]; v != "" {
			hreq.Header.Set("Anthropic-Version", v)
		}
		if v := native.Headers[schemas.HeaderAnthropicBeta]; v != "" {
			hreq.Header.Set("Anthropic-Beta", v)
		}
	}
	if c.key != "" {
		hreq.Header.Set("X-Api-Key", c.key)
	}
	resp, err := oai.Do(c.hc, c.name, hreq)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		raw := oai.ReadErrorBody(resp.Body, c.key)
		return nil, c.errorFromBody(resp.StatusCode, resp.Header, raw)
	}
	return resp, nil
}

// apiError is the "error" member of {"type":"error","error":{...}}.
type apiError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

func (c *Client) errorFromBody(status int, header http.Header, raw []byte) *llm.ProviderError {
	var body struct {
		Error *apiError `json:"error"`
	}
	msg := http.StatusText(status)
	if json.Unmarshal(raw, &body) == nil && body.Error != nil {
		msg = strings.TrimSpace(body.Error.Type + ": " + body.Error.Message)
	} else if len(bytes.TrimSpace(raw)) > 0 {
		msg = oai.Snippet(raw, c.key)
	}
	if status/100 == 2 { // an error object in a 2xx body
		return oai.BadResponse(c.name, status, "%s", oai.Redact(msg, c.key))
	}
	pe := llm.ErrorFromStatus(c.name, status, header, oai.Redact(msg, c.key))
	if body.Error != nil {
		pe.Code = body.Error.Type
	}
	return oai.MarkContextLength(pe)
}
