// Package messages translates between Anthropic's Messages API and OpenAI's
// chat completions, for the gateway's POST /v1/messages: a Messages request
// becomes the job's OpenAI body (what targets of every kind but Anthropic's
// are sent; Anthropic-kind targets get the original, see schemas.Job.Native),
// and the OpenAI completion or chunks a job answers with become a Messages
// response or event stream.
//
// What a translation cannot carry is never dropped silently: ToChat lists it
// as a Problem, and the gateway refuses (400) a request with problems when a
// target that is not Anthropic-kind could get it. The few things dropped on
// purpose are documented on ToChat.
package messages

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Request is what the gateway reads of a Messages request besides its
// translation.
type Request struct {
	// Model is the body's model: a route name or provider/model.
	Model string
	// Stream is the body's stream flag.
	Stream bool
}

// Problem is a part of a request that only an Anthropic-kind target can
// take.
type Problem struct {
	// Field is the JSON path of the part, like "messages[2].content[0]".
	Field string
	// Msg says what cannot be carried.
	Msg string
}

// String renders the problem as "field: msg".
func (p Problem) String() string { return p.Field + ": " + p.Msg }

// Error is a malformed Messages request (whatever the target); Field names
// the offending part.
type Error struct {
	Field string
	Msg   string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// ErrInvalid is wrapped by every *Error (errors.Is).
var ErrInvalid = errors.New("invalid Messages request")

// Is makes errors.Is(err, ErrInvalid) hold for every *Error.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

func bad(field, format string, args ...any) *Error {
	return &Error{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// request is a Messages request body.
type request struct {
	Model         *string         `json:"model"`
	MaxTokens     *int64          `json:"max_tokens"`
	System        json.RawMessage `json:"system"`
	Messages      []inMessage     `json:"messages"`
	Tools         []inTool        `json:"tools"`
	ToolChoice    *inToolChoice   `json:"tool_choice"`
	Thinking      json.RawMessage `json:"thinking"`
	StopSequences []string        `json:"stop_sequences"`
	Temperature   *float64        `json:"temperature"`
	TopP          *float64        `json:"top_p"`
	TopK          *int64          `json:"top_k"`
	Metadata      *struct {
		UserID string `json:"user_id"`
	} `json:"metadata"`
	Stream *bool `json:"stream"`
}

// known are the top-level fields ToChat understands; any other is a Problem.
var known = map[string]bool{"model": true, "max_tokens": true, "system": true, "messages": true, "tools": true,
	"tool_choice": true, "thinking": true, "stop_sequences": true, "temperature": true, "top_p": true, "top_k": true,
	"metadata": true, "stream": true}

type inMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// inBlock is a content block; only its type's fields are set.
type inBlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text"`
	Source    *inSource       `json:"source"`
	Title     string          `json:"title"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
	ToolUseID string          `json:"tool_use_id"`
	Content   json.RawMessage `json:"content"`
	IsError   bool            `json:"is_error"`
}

type inSource struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type"`
	Data      string `json:"data"`
	URL       string `json:"url"`
}

type inTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	InputSchema json.RawMessage `json:"input_schema"`
}

type inToolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use"`
}

// chatRequest is the OpenAI chat-completions body ToChat produces.
type chatRequest struct {
	Model             string         `json:"model"`
	Messages          []chatMessage  `json:"messages"`
	MaxTokens         int64          `json:"max_tokens"`
	Temperature       *float64       `json:"temperature,omitempty"`
	TopP              *float64       `json:"top_p,omitempty"`
	Stop              []string       `json:"stop,omitempty"`
	Tools             []chatTool     `json:"tools,omitempty"`
	ToolChoice        any            `json:"tool_choice,omitempty"`
	ParallelToolCalls *bool          `json:"parallel_tool_calls,omitempty"`
	User              string         `json:"user,omitempty"`
	Stream            bool           `json:"stream,omitempty"`
	StreamOptions     *streamOptions `json:"stream_options,omitempty"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatMessage struct {
	Role       string         `json:"role"`
	Content    any            `json:"content"`
	ToolCalls  []chatToolCall `json:"tool_calls,omitempty"`
	ToolCallID string         `json:"tool_call_id,omitempty"`
}

type chatPart struct {
	Type     string    `json:"type"`
	Text     string    `json:"text,omitempty"`
	ImageURL *imageURL `json:"image_url,omitempty"`
	File     *chatFile `json:"file,omitempty"`
}

type imageURL struct {
	URL string `json:"url"`
}

type chatFile struct {
	Filename string `json:"filename,omitempty"`
	FileData string `json:"file_data"`
}

type chatToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function chatFunction `json:"function"`
}

type chatFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type chatTool struct {
	Type     string       `json:"type"`
	Function chatToolFunc `json:"function"`
}

type chatToolFunc struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters"`
}

// ToChat translates a Messages request body into an OpenAI chat-completions
// body. A malformed request is an *Error. What only Anthropic can take comes
// back as problems (the body then leaves it out): other top-level fields,
// top_k, server tools (web search, code execution, ...), blocks other than
// text, image, document, tool_use, tool_result and thinking, images inside
// tool results, documents given by URL or as content blocks.
//
// Dropped on purpose, for every target but Anthropic's: cache_control and
// citations (hints, not content); thinking (a request for extended thinking:
// the Gemini adapter reads its budget from the native request, other
// targets answer without it) and the thinking blocks of earlier
// assistant turns (reasoning, not conversation). A tool_result with
// is_error: true reaches the model as its text prefixed with "Error: ".
func ToChat(body []byte) ([]byte, *Request, []Problem, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, nil, nil, bad("", "request body is not a valid JSON object")
	}
	var r request
	if err := json.Unmarshal(body, &r); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, nil, nil, bad(te.Field, "must be %s, got JSON %s", jsonType(te.Type.Kind().String()), te.Value)
		}
		return nil, nil, nil, bad("", "request body: %v", err)
	}
	var problems []Problem
	var extra []string
	for k := range fields {
		if !known[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		field := k
		if field == "" {
			field = `""`
		}
		problems = append(problems, Problem{Field: field, Msg: "is an Anthropic-only field"})
	}
	switch {
	case r.Model == nil || *r.Model == "":
		return nil, nil, nil, bad("model", "is required (a route name or provider/model; GET /v1/models lists them)")
	case r.MaxTokens == nil:
		return nil, nil, nil, bad("max_tokens", "is required")
	case *r.MaxTokens < 1:
		return nil, nil, nil, bad("max_tokens", "must be at least 1")
	case len(r.Messages) == 0:
		return nil, nil, nil, bad("messages", "must hold at least one message")
	}
	out := &chatRequest{Model: *r.Model, MaxTokens: *r.MaxTokens, Temperature: r.Temperature, TopP: r.TopP, Stop: r.StopSequences}
	meta := &Request{Model: *r.Model}
	if r.Stream != nil && *r.Stream {
		meta.Stream = true
		out.Stream = true
		out.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	if r.TopK != nil {
		problems = append(problems, Problem{Field: "top_k", Msg: "has no OpenAI counterpart"})
	}
	if r.Metadata != nil {
		out.User = r.Metadata.UserID
	}
	if sys, err := systemText(r.System); err != nil {
		return nil, nil, nil, err
	} else if sys != "" {
		out.Messages = append(out.Messages, chatMessage{Role: "system", Content: sys})
	}
	for i, m := range r.Messages {
		msgs, probs, err := translateMessage(i, m)
		if err != nil {
			return nil, nil, nil, err
		}
		out.Messages = append(out.Messages, msgs...)
		problems = append(problems, probs...)
	}
	for i, t := range r.Tools {
		field := fmt.Sprintf("tools[%d]", i)
		if t.Type != "" && t.Type != "custom" {
			problems = append(problems, Problem{Field: field, Msg: fmt.Sprintf("the server tool %q runs only on Anthropic", t.Type)})
			continue
		}
		if t.Name == "" {
			return nil, nil, nil, bad(field+".name", "is required")
		}
		schema := t.InputSchema
		if len(schema) == 0 || isNull(schema) {
			return nil, nil, nil, bad(field+".input_schema", "is required")
		}
		out.Tools = append(out.Tools, chatTool{Type: "function", Function: chatToolFunc{Name: t.Name, Description: t.Description, Parameters: schema}})
	}
	if tc := r.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto":
			out.ToolChoice = "auto"
		case "any":
			out.ToolChoice = "required"
		case "none":
			out.ToolChoice = "none"
		case "tool":
			if tc.Name == "" {
				return nil, nil, nil, bad("tool_choice.name", "is required when type is tool")
			}
			out.ToolChoice = map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}}
		default:
			return nil, nil, nil, bad("tool_choice.type", "%q must be auto, any, tool or none", tc.Type)
		}
		if tc.DisableParallelToolUse && len(out.Tools) > 0 {
			f := false
			out.ParallelToolCalls = &f
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, nil, nil, bad("", "could not encode the translation: %v", err)
	}
	return b, meta, problems, nil
}

// systemText reads system: a string or an array of text blocks.
func systemText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || isNull(raw) {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var blocks []inBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return "", bad("system", "must be a string or an array of text blocks")
	}
	var parts []string
	for i, b := range blocks {
		if b.Type != "text" {
			return "", bad(fmt.Sprintf("system[%d].type", i), "%q: system blocks must be text", b.Type)
		}
		parts = append(parts, b.Text)
	}
	return strings.Join(parts, "\n\n"), nil
}

// blocksOf reads content: a string (one text block) or an array of blocks.
func blocksOf(raw json.RawMessage, field string) ([]inBlock, error) {
	if len(raw) == 0 || isNull(raw) {
		return nil, bad(field, "is required")
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []inBlock{{Type: "text", Text: s}}, nil
	}
	var blocks []inBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, bad(field, "must be a string or an array of content blocks")
	}
	return blocks, nil
}

// translateMessage turns one Messages turn into OpenAI messages: an
// assistant turn into one message (text and tool_calls), a user turn into a
// tool message per tool_result followed by a user message with the rest.
func translateMessage(i int, m inMessage) ([]chatMessage, []Problem, error) {
	field := fmt.Sprintf("messages[%d]", i)
	if m.Role != "user" && m.Role != "assistant" {
		return nil, nil, bad(field+".role", "%q must be user or assistant", m.Role)
	}
	blocks, err := blocksOf(m.Content, field+".content")
	if err != nil {
		return nil, nil, err
	}
	var (
		problems []Problem
		parts    []chatPart
		calls    []chatToolCall
		tools    []chatMessage
	)
	for j, b := range blocks {
		bf := fmt.Sprintf("%s.content[%d]", field, j)
		switch b.Type {
		case "text":
			parts = append(parts, chatPart{Type: "text", Text: b.Text})
		case "image", "document":
			p, prob, err := mediaPart(b, bf)
			if err != nil {
				return nil, nil, err
			}
			if prob != nil {
				problems = append(problems, *prob)
				continue
			}
			if m.Role == "assistant" {
				problems = append(problems, Problem{Field: bf, Msg: "an assistant turn with an " + b.Type + " has no OpenAI counterpart"})
				continue
			}
			parts = append(parts, p)
		case "tool_use":
			if m.Role != "assistant" {
				return nil, nil, bad(bf+".type", "tool_use blocks belong in assistant turns")
			}
			if b.ID == "" || b.Name == "" {
				return nil, nil, bad(bf, "tool_use needs id and name")
			}
			args := "{}"
			if len(b.Input) > 0 && !isNull(b.Input) {
				var buf bytes.Buffer
				if err := json.Compact(&buf, b.Input); err != nil {
					return nil, nil, bad(bf+".input", "must be a JSON object")
				}
				args = buf.String()
			}
			calls = append(calls, chatToolCall{ID: b.ID, Type: "function", Function: chatFunction{Name: b.Name, Arguments: args}})
		case "tool_result":
			if m.Role != "user" {
				return nil, nil, bad(bf+".type", "tool_result blocks belong in user turns")
			}
			if b.ToolUseID == "" {
				return nil, nil, bad(bf+".tool_use_id", "is required")
			}
			text, prob, err := toolResultText(b, bf)
			if err != nil {
				return nil, nil, err
			}
			if prob != nil {
				problems = append(problems, *prob)
			}
			tools = append(tools, chatMessage{Role: "tool", ToolCallID: b.ToolUseID, Content: text})
		case "thinking", "redacted_thinking":
			if m.Role != "assistant" {
				return nil, nil, bad(bf+".type", "%s blocks belong in assistant turns", b.Type)
			}
			// Earlier turns' reasoning: not part of the conversation for
			// other vendors (see ToChat).
		default:
			problems = append(problems, Problem{Field: bf, Msg: fmt.Sprintf("a %q block can be sent only to Anthropic", b.Type)})
		}
	}
	if m.Role == "assistant" {
		msg := chatMessage{Role: "assistant", ToolCalls: calls}
		if t := joinText(parts); t != "" || len(calls) == 0 {
			msg.Content = t
		}
		return []chatMessage{msg}, problems, nil
	}
	out := tools
	if len(parts) > 0 {
		if len(parts) == 1 && parts[0].Type == "text" {
			out = append(out, chatMessage{Role: "user", Content: parts[0].Text})
		} else {
			out = append(out, chatMessage{Role: "user", Content: parts})
		}
	}
	return out, problems, nil
}

func joinText(parts []chatPart) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String()
}

// mediaPart translates an image or document block.
func mediaPart(b inBlock, field string) (chatPart, *Problem, error) {
	s := b.Source
	if s == nil {
		return chatPart{}, nil, bad(field+".source", "is required")
	}
	switch {
	case b.Type == "image" && s.Type == "base64":
		if s.MediaType == "" || s.Data == "" {
			return chatPart{}, nil, bad(field+".source", "base64 images need media_type and data")
		}
		return chatPart{Type: "image_url", ImageURL: &imageURL{URL: "data:" + s.MediaType + ";base64," + s.Data}}, nil, nil
	case b.Type == "image" && s.Type == "url":
		if s.URL == "" {
			return chatPart{}, nil, bad(field+".source.url", "is required")
		}
		return chatPart{Type: "image_url", ImageURL: &imageURL{URL: s.URL}}, nil, nil
	case b.Type == "document" && s.Type == "base64":
		if s.MediaType == "" || s.Data == "" {
			return chatPart{}, nil, bad(field+".source", "base64 documents need media_type and data")
		}
		name := b.Title
		if name == "" {
			name = "document.pdf"
		}
		return chatPart{Type: "file", File: &chatFile{Filename: name, FileData: "data:" + s.MediaType + ";base64," + s.Data}}, nil, nil
	case b.Type == "document" && s.Type == "text":
		return chatPart{Type: "text", Text: s.Data}, nil, nil
	}
	return chatPart{}, &Problem{Field: field + ".source.type", Msg: fmt.Sprintf("a %s given as %q can be sent only to Anthropic", b.Type, s.Type)}, nil
}

// toolResultText reads a tool_result's content (a string or text blocks);
// images in it are a problem (OpenAI tool messages hold text only).
func toolResultText(b inBlock, field string) (string, *Problem, error) {
	var text string
	var prob *Problem
	if len(b.Content) > 0 && !isNull(b.Content) {
		blocks, err := blocksOf(b.Content, field+".content")
		if err != nil {
			return "", nil, err
		}
		var parts []string
		for k, c := range blocks {
			switch c.Type {
			case "text":
				parts = append(parts, c.Text)
			default:
				prob = &Problem{Field: fmt.Sprintf("%s.content[%d]", field, k), Msg: fmt.Sprintf("a tool result holding %s can be sent only to Anthropic (OpenAI tool messages hold text)", c.Type)}
			}
		}
		text = strings.Join(parts, "\n")
	}
	if b.IsError {
		text = "Error: " + text
	}
	return text, prob, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// jsonType names a Go kind as the JSON type a caller must send.
func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	}
	return "a number"
}
