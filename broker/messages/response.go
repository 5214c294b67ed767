package messages

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// Message is a Messages API response object.
type Message struct {
	ID           string  `json:"id"`
	Type         string  `json:"type"`
	Role         string  `json:"role"`
	Model        string  `json:"model"`
	Content      []Block `json:"content"`
	StopReason   *string `json:"stop_reason"`
	StopSequence *string `json:"stop_sequence"`
	Usage        Usage   `json:"usage"`
}

// Block is a content block of a response; only its type's fields are set.
type Block struct {
	Type      string          `json:"type"`
	Text      *string         `json:"text,omitempty"`
	Thinking  *string         `json:"thinking,omitempty"`
	Signature *string         `json:"signature,omitempty"`
	Data      string          `json:"data,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
}

// Usage is a Messages usage object. InputTokens excludes cached input, as
// Anthropic counts it.
type Usage struct {
	InputTokens              int64 `json:"input_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
}

// Stop reasons.
const (
	StopEndTurn   = "end_turn"
	StopMaxTokens = "max_tokens"
	StopToolUse   = "tool_use"
	StopRefusal   = "refusal"
)

// completion is the part of an OpenAI chat.completion (or chunk) read here.
// reasoning_content and thinking_blocks are the de-facto extension for a
// model's reasoning (what the Anthropic adapter fills from thinking blocks).
type completion struct {
	ID      string `json:"id"`
	Model   string `json:"model"`
	Choices []struct {
		Message      *chatOut `json:"message"`
		Delta        *chatOut `json:"delta"`
		FinishReason *string  `json:"finish_reason"`
	} `json:"choices"`
	Usage *chatUsage `json:"usage"`
}

type chatOut struct {
	Content          *string `json:"content"`
	Refusal          *string `json:"refusal"`
	ReasoningContent *string `json:"reasoning_content"`
	ThinkingBlocks   []struct {
		Type      string `json:"type"`
		Thinking  string `json:"thinking"`
		Signature string `json:"signature"`
		Data      string `json:"data"`
	} `json:"thinking_blocks"`
	ToolCalls []struct {
		Index    int    `json:"index"`
		ID       string `json:"id"`
		Function struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		} `json:"function"`
	} `json:"tool_calls"`
}

type chatUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

func (u *chatUsage) messages() Usage {
	if u == nil {
		return Usage{}
	}
	out := Usage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens}
	if d := u.PromptTokensDetails; d != nil && d.CachedTokens > 0 && d.CachedTokens <= u.PromptTokens {
		out.CacheReadInputTokens = d.CachedTokens
		out.InputTokens -= d.CachedTokens
	}
	return out
}

// StopReason maps an OpenAI finish_reason to a Messages stop_reason.
func StopReason(finish string) string {
	switch finish {
	case "length":
		return StopMaxTokens
	case "tool_calls", "function_call":
		return StopToolUse
	case "content_filter":
		return StopRefusal
	default:
		return StopEndTurn
	}
}

// messageID keeps an upstream id that already looks like Anthropic's and
// prefixes any other.
func messageID(id string) string {
	if strings.HasPrefix(id, "msg_") {
		return id
	}
	return "msg_" + id
}

// toolInput is a tool call's arguments as a JSON object ({} when empty);
// arguments that are not an object are kept under "arguments".
func toolInput(args string) json.RawMessage {
	if strings.TrimSpace(args) == "" {
		return json.RawMessage("{}")
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal([]byte(args), &obj) == nil && obj != nil {
		var buf bytes.Buffer
		if json.Compact(&buf, []byte(args)) == nil {
			return buf.Bytes()
		}
	}
	b, _ := json.Marshal(map[string]string{"arguments": args})
	return b
}

func str(s string) *string { return &s }

// FromCompletion translates an OpenAI chat.completion into a Messages
// response (choice 0).
func FromCompletion(body []byte) (*Message, error) {
	var c completion
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, fmt.Errorf("the completion is not JSON: %w", err)
	}
	if len(c.Choices) == 0 || c.Choices[0].Message == nil {
		return nil, fmt.Errorf("the completion has no message")
	}
	ch := c.Choices[0]
	m := ch.Message
	out := &Message{ID: messageID(c.ID), Type: "message", Role: "assistant", Model: c.Model, Content: []Block{}, Usage: c.Usage.messages()}
	out.Content = append(out.Content, thinkingBlocks(m)...)
	if m.Content != nil && *m.Content != "" {
		out.Content = append(out.Content, Block{Type: "text", Text: m.Content})
	}
	if m.Refusal != nil && *m.Refusal != "" {
		out.Content = append(out.Content, Block{Type: "text", Text: m.Refusal})
	}
	for _, tc := range m.ToolCalls {
		out.Content = append(out.Content, Block{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: toolInput(tc.Function.Arguments)})
	}
	finish := ""
	if ch.FinishReason != nil {
		finish = *ch.FinishReason
	}
	if m.Refusal != nil && *m.Refusal != "" {
		finish = "content_filter"
	}
	out.StopReason = str(StopReason(finish))
	return out, nil
}

// thinkingBlocks are a message's reasoning as thinking blocks: its
// thinking_blocks (with their signatures) or else its reasoning_content.
func thinkingBlocks(m *chatOut) []Block {
	var out []Block
	for _, tb := range m.ThinkingBlocks {
		switch tb.Type {
		case "redacted_thinking":
			out = append(out, Block{Type: "redacted_thinking", Data: tb.Data})
		default:
			out = append(out, Block{Type: "thinking", Thinking: str(tb.Thinking), Signature: str(tb.Signature)})
		}
	}
	if len(out) == 0 && m.ReasoningContent != nil && *m.ReasoningContent != "" {
		out = append(out, Block{Type: "thinking", Thinking: m.ReasoningContent, Signature: str("")})
	}
	return out
}

// Error types of Anthropic's error shape.
const (
	ErrInvalidRequest = "invalid_request_error"
	ErrAuthentication = "authentication_error"
	ErrPermission     = "permission_error"
	ErrNotFound       = "not_found_error"
	ErrTooLarge       = "request_too_large"
	ErrRateLimit      = "rate_limit_error"
	ErrAPI            = "api_error"
	ErrOverloaded     = "overloaded_error"
	ErrTimeout        = "timeout_error"
)

// StatusOverloaded is Anthropic's status for an overloaded service.
const StatusOverloaded = 529

// ErrorStatus maps a gateway status to Anthropic's status and error type:
// 4xx keep their status (408 and 504 are timeout_error), 503 (no target,
// broker unavailable) becomes 529 overloaded_error, 504 timeout_error, and
// every other 5xx (every provider failed) 500 api_error.
func ErrorStatus(status int) (int, string) {
	switch status {
	case http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusUnprocessableEntity:
		return status, ErrInvalidRequest
	case http.StatusUnauthorized:
		return status, ErrAuthentication
	case http.StatusForbidden:
		return status, ErrPermission
	case http.StatusNotFound:
		return status, ErrNotFound
	case http.StatusRequestEntityTooLarge:
		return status, ErrTooLarge
	case http.StatusTooManyRequests:
		return status, ErrRateLimit
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return status, ErrTimeout
	case http.StatusServiceUnavailable, StatusOverloaded:
		return StatusOverloaded, ErrOverloaded
	}
	if status < 500 {
		return status, ErrInvalidRequest
	}
	return http.StatusInternalServerError, ErrAPI
}

// ErrorBody is Anthropic's error object {"type":"error","error":{...}}.
func ErrorBody(errType, message string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(map[string]any{"type": "error", "error": map[string]string{"type": errType, "message": message}})
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
