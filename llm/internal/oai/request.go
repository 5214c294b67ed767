package oai

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Request is the part of an OpenAI chat-completions body that translating
// adapters (Anthropic, Gemini) understand.
type Request struct {
	Messages            []ReqMessage    `json:"messages"`
	MaxTokens           *int64          `json:"max_tokens"`
	MaxCompletionTokens *int64          `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	Stop                json.RawMessage `json:"stop"`
	Tools               []Tool          `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls"`
	User                string          `json:"user"`
	N                   *int            `json:"n"`
	Seed                *int64          `json:"seed"`
	PresencePenalty     *float64        `json:"presence_penalty"`
	FrequencyPenalty    *float64        `json:"frequency_penalty"`
	ResponseFormat      *struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Schema json.RawMessage `json:"schema"`
		} `json:"json_schema"`
	} `json:"response_format"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

// ReqMessage is one message of a request.
type ReqMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	Name       string          `json:"name"`
	ToolCalls  []ToolCall      `json:"tool_calls"`
	ToolCallID string          `json:"tool_call_id"`
}

// Tool is a tool declaration of a request.
type Tool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
	} `json:"function"`
}

// ParseRequest decodes body; the error names the offending field.
func ParseRequest(body []byte) (*Request, error) {
	var r Request
	if err := json.Unmarshal(body, &r); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, fmt.Errorf("%s: must be %s, got JSON %s", te.Field, te.Type, te.Value)
		}
		return nil, fmt.Errorf("request body: %v", err)
	}
	if len(r.Messages) == 0 {
		return nil, errors.New("messages: must hold at least one message")
	}
	if r.N != nil && *r.N > 1 {
		return nil, fmt.Errorf("n: %d choices requested, this provider returns only 1", *r.N)
	}
	for i, t := range r.Tools {
		if t.Type != "" && t.Type != "function" {
			return nil, fmt.Errorf("tools[%d].type: %q is not supported (only function)", i, t.Type)
		}
		if t.Function.Name == "" {
			return nil, fmt.Errorf("tools[%d].function.name: is required", i)
		}
	}
	return &r, nil
}

// MaxOutput returns max_completion_tokens, else max_tokens, else 0.
func (r *Request) MaxOutput() int64 {
	if r.MaxCompletionTokens != nil {
		return *r.MaxCompletionTokens
	}
	if r.MaxTokens != nil {
		return *r.MaxTokens
	}
	return 0
}

// IncludeUsage reports stream_options.include_usage.
func (r *Request) IncludeUsage() bool { return r.StreamOptions != nil && r.StreamOptions.IncludeUsage }

// StopList reads "stop" (a string or an array of strings).
func (r *Request) StopList() ([]string, error) {
	if len(r.Stop) == 0 || string(r.Stop) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(r.Stop, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(r.Stop, &many); err != nil {
		return nil, errors.New("stop: must be a string or an array of strings")
	}
	return many, nil
}

// Tool choice modes returned by ToolChoiceMode.
const (
	ChoiceDefault  = ""
	ChoiceAuto     = "auto"
	ChoiceNone     = "none"
	ChoiceRequired = "required"
	ChoiceNamed    = "named"
)

// ToolChoiceMode reads tool_choice: "auto" | "none" | "required" |
// {"type":"function","function":{"name":N}} (mode ChoiceNamed, name N).
func (r *Request) ToolChoiceMode() (mode, name string, err error) {
	if len(r.ToolChoice) == 0 || string(r.ToolChoice) == "null" {
		return ChoiceDefault, "", nil
	}
	var s string
	if json.Unmarshal(r.ToolChoice, &s) == nil {
		switch s {
		case ChoiceAuto, ChoiceNone, ChoiceRequired:
			return s, "", nil
		}
		return "", "", fmt.Errorf("tool_choice: %q must be auto, none, required or a named function", s)
	}
	var named struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(r.ToolChoice, &named); err != nil || named.Function.Name == "" {
		return "", "", errors.New(`tool_choice: must be a string or {"type":"function","function":{"name":...}}`)
	}
	return ChoiceNamed, named.Function.Name, nil
}

// Part is one content part of a message.
type Part struct {
	// Type is "text" or "image".
	Type string
	Text string
	// MediaType and Data are an image's MIME type and base64 data.
	MediaType, Data string
}

// ContentParts reads a message's content (a string, null or an array of
// text / image_url parts). Images must be base64 data URLs; field names the
// content for error messages (e.g. "messages[2].content").
func ContentParts(raw json.RawMessage, field string) ([]Part, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []Part{{Type: "text", Text: s}}, nil
	}
	var parts []struct {
		Type     string          `json:"type"`
		Text     string          `json:"text"`
		ImageURL json.RawMessage `json:"image_url"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, fmt.Errorf("%s: must be a string or an array of content parts", field)
	}
	out := make([]Part, 0, len(parts))
	for j, p := range parts {
		pf := fmt.Sprintf("%s[%d]", field, j)
		switch p.Type {
		case "text":
			out = append(out, Part{Type: "text", Text: p.Text})
		case "image_url":
			var u struct {
				URL string `json:"url"`
			}
			if json.Unmarshal(p.ImageURL, &u) != nil {
				_ = json.Unmarshal(p.ImageURL, &u.URL)
			}
			mt, data, ok := ParseDataURL(u.URL)
			if !ok {
				return nil, fmt.Errorf("%s.image_url.url: only base64 data: URLs are supported for this provider", pf)
			}
			out = append(out, Part{Type: "image", MediaType: mt, Data: data})
		default:
			return nil, fmt.Errorf("%s.type: %q is not supported for this provider", pf, p.Type)
		}
	}
	return out, nil
}

// TextOf joins the text parts of content with newlines, ignoring images.
func TextOf(parts []Part) string {
	var b []string
	for _, p := range parts {
		if p.Type == "text" && p.Text != "" {
			b = append(b, p.Text)
		}
	}
	return strings.Join(b, "\n")
}

// ParseDataURL splits "data:<mime>;base64,<data>".
func ParseDataURL(u string) (mediaType, data string, ok bool) {
	rest, found := strings.CutPrefix(u, "data:")
	if !found {
		return "", "", false
	}
	meta, data, found := strings.Cut(rest, ",")
	if !found {
		return "", "", false
	}
	mediaType, enc, found := strings.Cut(meta, ";")
	if !found || enc != "base64" || mediaType == "" || data == "" {
		return "", "", false
	}
	return mediaType, data, true
}

// Arguments parses a tool call's arguments string as a JSON object ("" is {}).
func Arguments(s, field string) (json.RawMessage, error) {
	if strings.TrimSpace(s) == "" {
		return json.RawMessage("{}"), nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &obj); err != nil {
		return nil, fmt.Errorf("%s: must be a JSON object string: %v", field, err)
	}
	return json.RawMessage(s), nil
}
