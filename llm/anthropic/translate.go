package anthropic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/switchboard-llm/switchboard/llm/internal/oai"
)

// DefaultMaxTokens is sent when the caller gives no max_tokens, because the
// Messages API requires one.
const DefaultMaxTokens = 4096

// messagesRequest is a Messages API request body.
type messagesRequest struct {
	Model         string      `json:"model"`
	System        string      `json:"system,omitempty"`
	Messages      []message   `json:"messages"`
	MaxTokens     int64       `json:"max_tokens"`
	Temperature   *float64    `json:"temperature,omitempty"`
	TopP          *float64    `json:"top_p,omitempty"`
	StopSequences []string    `json:"stop_sequences,omitempty"`
	Tools         []tool      `json:"tools,omitempty"`
	ToolChoice    *toolChoice `json:"tool_choice,omitempty"`
	Metadata      *metadata   `json:"metadata,omitempty"`
	Stream        bool        `json:"stream,omitempty"`
}

type message struct {
	Role    string  `json:"role"`
	Content []block `json:"content"`
}

// block is a content block; only the fields of its Type are set.
type block struct {
	Type string `json:"type"`
	// text
	Text string `json:"text,omitempty"`
	// image
	Source *imageSource `json:"source,omitempty"`
	// tool_use
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`
	// tool_result
	ToolUseID string  `json:"tool_use_id,omitempty"`
	Content   []block `json:"content,omitempty"`
}

type imageSource struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type"`
	Data      string `json:"data"`
}

type tool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema"`
}

type toolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
}

type metadata struct {
	UserID string `json:"user_id"`
}

// translate turns an OpenAI chat-completions body into a Messages request.
// The returned bool is stream_options.include_usage.
func translate(body []byte, model string, stream bool) (*messagesRequest, bool, error) {
	r, err := oai.ParseRequest(body)
	if err != nil {
		return nil, false, err
	}
	out := &messagesRequest{Model: model, MaxTokens: r.MaxOutput(), Temperature: r.Temperature, TopP: r.TopP, Stream: stream}
	if out.MaxTokens <= 0 {
		out.MaxTokens = DefaultMaxTokens
	}
	if out.StopSequences, err = r.StopList(); err != nil {
		return nil, false, err
	}
	if r.User != "" {
		out.Metadata = &metadata{UserID: r.User}
	}
	var system []string
	for i, m := range r.Messages {
		field := fmt.Sprintf("messages[%d]", i)
		switch m.Role {
		case "system", "developer":
			parts, err := oai.ContentParts(m.Content, field+".content")
			if err != nil {
				return nil, false, err
			}
			for _, p := range parts {
				if p.Type != "text" {
					return nil, false, fmt.Errorf("%s.content: a system message may only hold text", field)
				}
			}
			if t := oai.TextOf(parts); t != "" {
				system = append(system, t)
			}
		case "user", "assistant":
			parts, err := oai.ContentParts(m.Content, field+".content")
			if err != nil {
				return nil, false, err
			}
			blocks := partsToBlocks(parts)
			if m.Role == "user" && len(m.ToolCalls) > 0 {
				return nil, false, fmt.Errorf("%s.tool_calls: only assistant messages may carry tool calls", field)
			}
			for j, tc := range m.ToolCalls {
				args, err := oai.Arguments(tc.Function.Arguments, fmt.Sprintf("%s.tool_calls[%d].function.arguments", field, j))
				if err != nil {
					return nil, false, err
				}
				if tc.ID == "" || tc.Function.Name == "" {
					return nil, false, fmt.Errorf("%s.tool_calls[%d]: id and function.name are required", field, j)
				}
				blocks = append(blocks, block{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: args})
			}
			out.Messages = appendTurn(out.Messages, m.Role, blocks)
		case "tool":
			if m.ToolCallID == "" {
				return nil, false, fmt.Errorf("%s.tool_call_id: is required for a tool message", field)
			}
			parts, err := oai.ContentParts(m.Content, field+".content")
			if err != nil {
				return nil, false, err
			}
			res := block{Type: "tool_result", ToolUseID: m.ToolCallID, Content: partsToBlocks(parts)}
			out.Messages = appendTurn(out.Messages, "user", []block{res})
		default:
			return nil, false, fmt.Errorf("%s.role: %q must be system, developer, user, assistant or tool", field, m.Role)
		}
	}
	if len(out.Messages) == 0 {
		return nil, false, fmt.Errorf("messages: no user or assistant message to send")
	}
	out.System = strings.Join(system, "\n\n")
	for _, t := range r.Tools {
		schema := t.Function.Parameters
		if len(schema) == 0 || string(schema) == "null" {
			schema = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out.Tools = append(out.Tools, tool{Name: t.Function.Name, Description: t.Function.Description, InputSchema: schema})
	}
	mode, name, err := r.ToolChoiceMode()
	if err != nil {
		return nil, false, err
	}
	switch mode {
	case oai.ChoiceAuto:
		out.ToolChoice = &toolChoice{Type: "auto"}
	case oai.ChoiceNone:
		out.ToolChoice = &toolChoice{Type: "none"}
	case oai.ChoiceRequired:
		out.ToolChoice = &toolChoice{Type: "any"}
	case oai.ChoiceNamed:
		out.ToolChoice = &toolChoice{Type: "tool", Name: name}
	}
	if r.ParallelToolCalls != nil && !*r.ParallelToolCalls && len(out.Tools) > 0 && mode != oai.ChoiceNone {
		if out.ToolChoice == nil {
			out.ToolChoice = &toolChoice{Type: "auto"}
		}
		out.ToolChoice.DisableParallelToolUse = true
	}
	return out, r.IncludeUsage(), nil
}

// partsToBlocks converts content parts, dropping empty text (the API
// rejects empty text blocks).
func partsToBlocks(parts []oai.Part) []block {
	var out []block
	for _, p := range parts {
		switch p.Type {
		case "text":
			if p.Text != "" {
				out = append(out, block{Type: "text", Text: p.Text})
			}
		case "image":
			out = append(out, block{Type: "image", Source: &imageSource{Type: "base64", MediaType: p.MediaType, Data: p.Data}})
		}
	}
	return out
}

// appendTurn adds blocks as a turn of role, merging into the previous turn
// when it has the same role (the API requires alternating roles).
func appendTurn(msgs []message, role string, blocks []block) []message {
	if len(blocks) == 0 {
		return msgs
	}
	if n := len(msgs); n > 0 && msgs[n-1].Role == role {
		msgs[n-1].Content = append(msgs[n-1].Content, blocks...)
		return msgs
	}
	return append(msgs, message{Role: role, Content: blocks})
}

// messageResponse is a Messages API response.
type messageResponse struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Model   string `json:"model"`
	Content []struct {
		Type      string          `json:"type"`
		Text      string          `json:"text"`
		ID        string          `json:"id"`
		Name      string          `json:"name"`
		Input     json.RawMessage `json:"input"`
		Thinking  string          `json:"thinking"`
		Signature string          `json:"signature"`
		Data      string          `json:"data"`
	} `json:"content"`
	StopReason string `json:"stop_reason"`
	Usage      usage  `json:"usage"`
}

type usage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
}

// openAI converts usage to OpenAI's shape; cached input counts as prompt
// tokens, as OpenAI counts it.
func (u usage) openAI() oai.Usage {
	in := u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
	return oai.Usage{PromptTokens: in, CompletionTokens: u.OutputTokens, TotalTokens: in + u.OutputTokens}
}

// finishReason maps a stop_reason to an OpenAI finish_reason.
func finishReason(s string) string {
	switch s {
	case "max_tokens", "model_context_window_exceeded":
		return oai.FinishLength
	case "tool_use":
		return oai.FinishToolCalls
	case "refusal":
		return oai.FinishContentFilter
	default: // end_turn, stop_sequence, pause_turn
		return oai.FinishStop
	}
}

// completion converts a Messages response into a chat.completion.
func (m *messageResponse) completion(created int64) *oai.Completion {
	msg := oai.Message{Role: "assistant"}
	var text, reasoning strings.Builder
	hasText := false
	for _, b := range m.Content {
		switch b.Type {
		case "thinking":
			reasoning.WriteString(b.Thinking)
			msg.ThinkingBlocks = append(msg.ThinkingBlocks, oai.ThinkingBlock{Type: "thinking", Thinking: b.Thinking, Signature: b.Signature})
		case "redacted_thinking":
			msg.ThinkingBlocks = append(msg.ThinkingBlocks, oai.ThinkingBlock{Type: "redacted_thinking", Data: b.Data})
		case "text":
			text.WriteString(b.Text)
			hasText = true
		case "tool_use":
			args := "{}"
			var buf bytes.Buffer
			if len(b.Input) > 0 && string(b.Input) != "null" && json.Compact(&buf, b.Input) == nil {
				args = buf.String()
			}
			msg.ToolCalls = append(msg.ToolCalls, oai.ToolCall{ID: b.ID, Type: "function",
				Function: oai.FunctionCall{Name: b.Name, Arguments: args}})
		}
	}
	if hasText || len(msg.ToolCalls) == 0 {
		msg.Content = oai.Str(text.String())
	}
	if reasoning.Len() > 0 {
		msg.ReasoningContent = oai.Str(reasoning.String())
	}
	return &oai.Completion{
		ID: m.ID, Object: oai.ObjectCompletion, Created: created, Model: m.Model,
		Choices: []oai.Choice{{Index: 0, Message: msg, FinishReason: oai.Str(finishReason(m.StopReason))}},
		Usage:   m.Usage.openAI().Raw(),
	}
}
