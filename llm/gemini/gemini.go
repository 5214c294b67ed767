// Package gemini is the adapter for Google's Gemini API (generateContent and
// streamGenerateContent). It translates OpenAI chat-completions bodies and
// answers. The API key travels in the x-goog-api-key header, never in the
// URL. Each call makes exactly one HTTP attempt.
package gemini

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
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

// DefaultBaseURL is the Gemini API root; "/v1beta" is appended unless the
// base URL already ends in a version segment.
const DefaultBaseURL = "https://generativelanguage.googleapis.com"

// Config configures a Client.
type Config struct {
	// Name is the provider name used in errors.
	Name string
	// BaseURL is the API root (default DefaultBaseURL).
	BaseURL string
	// APIKey is sent as the x-goog-api-key header.
	APIKey string
	// HTTPClient makes the calls; nil means http.DefaultClient.
	HTTPClient *http.Client
}

// Client calls the Gemini API.
type Client struct {
	name string
	base string // ends in /v1beta (or the configured version)
	key  string
	hc   *http.Client
	now  func() time.Time
}

// New returns a Client for cfg.
func New(cfg Config) *Client {
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	if !strings.HasSuffix(base, "/v1beta") && !strings.HasSuffix(base, "/v1") && !strings.HasSuffix(base, "/v1alpha") {
		base += "/v1beta"
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	name := cfg.Name
	if name == "" {
		name = "gemini"
	}
	return &Client{name: name, base: base, key: cfg.APIKey, hc: hc, now: time.Now}
}

// String describes the client without its key.
func (c *Client) String() string { return fmt.Sprintf("gemini.Client{%s %s}", c.name, c.base) }

// GoString describes the client without its key.
func (c *Client) GoString() string { return c.String() }

func (c *Client) url(model, method string) string {
	model = strings.TrimPrefix(model, "models/")
	return c.base + "/models/" + url.PathEscape(model) + ":" + method
}

// Complete makes one non-streaming call.
func (c *Client) Complete(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	body, _, err := c.body(req)
	if err != nil {
		return nil, err
	}
	resp, err := c.post(ctx, c.url(req.Model, "generateContent"), body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := oai.ReadBody(ctx, c.name, resp, oai.MaxBody)
	if err != nil {
		return nil, err
	}
	var g generateResponse
	if err := json.Unmarshal(raw, &g); err != nil {
		return nil, oai.BadResponse(c.name, resp.StatusCode, "unparseable response body: %s", oai.Snippet(raw, c.key))
	}
	if err := c.check(resp.StatusCode, &g); err != nil {
		return nil, err
	}
	comp := g.completion(req.Model, c.now().Unix())
	return &llm.Response{Body: oai.Marshal(comp), Usage: oai.ParseUsage(comp.Usage), StatusCode: resp.StatusCode}, nil
}

// check turns an error object, a blocked prompt or a missing candidate into
// a ProviderError.
func (c *Client) check(status int, g *generateResponse) error {
	if g.Error != nil {
		return oai.BadResponse(c.name, status, "%s", oai.Redact(g.Error.text(), c.key))
	}
	if g.PromptFeedback != nil && g.PromptFeedback.BlockReason != "" {
		return &llm.ProviderError{Provider: c.name, Status: status, Type: schemas.ErrContentFilter,
			Message: "prompt blocked: " + g.PromptFeedback.BlockReason}
	}
	if len(g.Candidates) == 0 {
		return oai.BadResponse(c.name, status, "response has no candidates")
	}
	return nil
}

// Stream makes one streaming call (SSE), translating each response piece
// into chat.completion.chunk objects.
func (c *Client) Stream(ctx context.Context, req *llm.Request, emit func(chunk json.RawMessage) error) (*llm.Response, error) {
	body, includeUsage, err := c.body(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := c.post(ctx, c.url(req.Model, "streamGenerateContent")+"?alt=sse", body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()

	e := oai.NewEmitter(emit)
	e.ID, e.Created, e.Model = newID("chatcmpl-"), c.now().Unix(), req.Model
	var usage *usageMetadata
	finish, started, calls, bad := "", false, 0, 0
	r := sse.NewReader(resp.Body)
	for {
		ev, rerr := r.Next()
		if rerr != nil && ctx.Err() == nil && finish != "" {
			break // the stream is over and the answer finished
		}
		if rerr != nil {
			return nil, oai.StreamCut(ctx, c.name, resp.StatusCode, e.Asm.Chunks, bad, rerr)
		}
		if len(bytes.TrimSpace(ev.Data)) == 0 {
			continue
		}
		var g generateResponse
		if err := json.Unmarshal(ev.Data, &g); err != nil {
			// A malformed event is skipped; too many break the stream.
			if bad++; bad > llm.MaxBadChunks {
				return nil, oai.TooManyBadChunks(c.name, resp.StatusCode, bad, ev.Data, c.key)
			}
			continue
		}
		if g.Error != nil {
			pe := llm.ErrorFromStatus(c.name, g.Error.Code, nil, oai.Redact(fmt.Sprintf("stream error after %d chunks: %s", e.Asm.Chunks, g.Error.text()), c.key))
			if g.Error.Code == 0 || g.Error.Code < 400 {
				pe.Type, pe.Retryable = schemas.ErrServerError, true
			}
			pe.Code = g.Error.Status
			pe = oai.MarkContextLength(pe)
			pe.Status = resp.StatusCode
			return nil, pe
		}
		if g.PromptFeedback != nil && g.PromptFeedback.BlockReason != "" {
			return nil, &llm.ProviderError{Provider: c.name, Status: resp.StatusCode, Type: schemas.ErrContentFilter,
				Message: "prompt blocked: " + g.PromptFeedback.BlockReason}
		}
		if g.UsageMetadata != nil {
			usage = g.UsageMetadata
		}
		if g.ModelVersion != "" {
			e.Model = g.ModelVersion
		}
		if !started {
			if g.ResponseID != "" {
				e.ID = g.ResponseID
			}
			started = true
			if err := e.Role(); err != nil {
				return nil, err
			}
		}
		if len(g.Candidates) == 0 {
			continue
		}
		cand := g.Candidates[0]
		for _, p := range visibleParts(cand.Content) {
			var err error
			switch {
			case p.FunctionCall != nil:
				err = e.ToolCall(calls, newID("call_"), p.FunctionCall.Name, argsString(p.FunctionCall.Args))
				calls++
			case p.Text != "":
				err = e.Text(p.Text)
			}
			if err != nil {
				return nil, err
			}
		}
		if cand.FinishReason != "" && finish == "" {
			finish = finishReason(cand.FinishReason, calls > 0)
			if err := e.Finish(finish); err != nil {
				return nil, err
			}
		}
	}
	ou := usage.openAI()
	if err := e.Usage(ou, includeUsage); err != nil {
		return nil, err
	}
	comp := e.Asm.Completion()
	comp.Usage = ou.Raw()
	return &llm.Response{Body: oai.Marshal(comp), Usage: oai.ParseUsage(comp.Usage), StatusCode: resp.StatusCode, BadChunks: bad}, nil
}

func (c *Client) body(req *llm.Request) ([]byte, bool, error) {
	if strings.TrimPrefix(req.Model, "models/") == "" {
		return nil, false, oai.InvalidRequest(c.name, "model: is required")
	}
	gr, includeUsage, err := translate(req.Body)
	if err != nil {
		return nil, false, oai.InvalidRequest(c.name, "%v", err)
	}
	if tc := nativeThinking(req.Native); tc != nil {
		gr.GenerationConfig.ThinkingConfig = tc
	}
	b, err := json.Marshal(gr)
	if err != nil {
		return nil, false, oai.InvalidRequest(c.name, "encoding request: %v", err)
	}
	return b, includeUsage, nil
}

func (c *Client) post(ctx context.Context, u string, body []byte) (*http.Response, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, oai.InvalidRequest(c.name, "building request: %v", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if c.key != "" {
		hreq.Header.Set("X-Goog-Api-Key", c.key) // never in the URL
	}
	resp, err := oai.Do(c.hc, c.name, hreq)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		raw := oai.ReadErrorBody(resp.Body, c.key)
		return nil, c.statusError(resp, raw)
	}
	return resp, nil
}

// apiError is Google's {"error":{"code","message","status","details"}}.
type apiError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Status  string          `json:"status"`
	Details json.RawMessage `json:"details"`
}

func (e *apiError) text() string {
	if e.Status == "" {
		return e.Message
	}
	return e.Status + ": " + e.Message
}

func (c *Client) statusError(resp *http.Response, raw []byte) error {
	var body struct {
		Error *apiError `json:"error"`
	}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) > 0 && trimmed[0] == '[' { // non-SSE stream errors come as an array
		var arr []json.RawMessage
		if json.Unmarshal(trimmed, &arr) == nil && len(arr) > 0 {
			trimmed = arr[0]
		}
	}
	msg := http.StatusText(resp.StatusCode)
	if json.Unmarshal(trimmed, &body) == nil && body.Error != nil {
		msg = body.Error.text()
	} else if len(trimmed) > 0 {
		msg = oai.Snippet(trimmed, c.key)
	}
	pe := llm.ErrorFromStatus(c.name, resp.StatusCode, resp.Header, oai.Redact(msg, c.key))
	// Gemini answers a bad key with 400 INVALID_ARGUMENT, reason API_KEY_INVALID.
	if resp.StatusCode == http.StatusBadRequest && body.Error != nil &&
		(bytes.Contains(body.Error.Details, []byte("API_KEY_INVALID")) || strings.Contains(body.Error.Message, "API key not valid")) {
		pe.Type, pe.Retryable = schemas.ErrAuth, false
	}
	if body.Error != nil {
		pe.Code = body.Error.Status
	}
	return oai.MarkContextLength(pe)
}
