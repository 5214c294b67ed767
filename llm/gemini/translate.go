package gemini

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/switchboard-llm/switchboard/llm/internal/oai"
	"github.com/switchboard-llm/switchboard/schemas"
)

// generateRequest is a generateContent request body.
type generateRequest struct {
	Contents          []content         `json:"contents"`
	SystemInstruction *content          `json:"systemInstruction,omitempty"`
	GenerationConfig  *generationConfig `json:"generationConfig,omitempty"`
	Tools             []toolDecl        `json:"tools,omitempty"`
	ToolConfig        *toolConfig       `json:"toolConfig,omitempty"`
}

type content struct {
	Role  string `json:"role,omitempty"`
	Parts []part `json:"parts"`
}

type part struct {
	Text             string            `json:"text,omitempty"`
	Thought          bool              `json:"thought,omitempty"`
	InlineData       *inlineData       `json:"inlineData,omitempty"`
	FunctionCall     *functionCall     `json:"functionCall,omitempty"`
	FunctionResponse *functionResponse `json:"functionResponse,omitempty"`
}

type inlineData struct {
	MimeType string `json:"mimeType"`
	Data     string `json:"data"`
}

type functionCall struct {
	Name string          `json:"name"`
	Args json.RawMessage `json:"args,omitempty"`
}

type functionResponse struct {
	Name     string          `json:"name"`
	Response json.RawMessage `json:"response"`
}

type generationConfig struct {
	Temperature      *float64 `json:"temperature,omitempty"`
	TopP             *float64 `json:"topP,omitempty"`
	MaxOutputTokens  int64    `json:"maxOutputTokens,omitempty"`
	StopSequences    []string `json:"stopSequences,omitempty"`
	CandidateCount   int      `json:"candidateCount"`
	Seed             *int64   `json:"seed,omitempty"`
	PresencePenalty  *float64 `json:"presencePenalty,omitempty"`
	FrequencyPenalty *float64 `json:"frequencyPenalty,omitempty"`
	ResponseMimeType string   `json:"responseMimeType,omitempty"`
	// ThinkingConfig carries an Anthropic-shaped request's thinking budget.
	ThinkingConfig *thinkingConfig `json:"thinkingConfig,omitempty"`
}

type thinkingConfig struct {
	ThinkingBudget int64 `json:"thinkingBudget"`
}

// nativeThinking reads the thinking budget of an Anthropic-shaped request
// ({"thinking":{"type":"enabled","budget_tokens":N}}), which the OpenAI
// translation cannot carry; nil when there is none.
func nativeThinking(n *schemas.NativeRequest) *thinkingConfig {
	if n == nil || n.Format != schemas.FormatAnthropic {
		return nil
	}
	var body struct {
		Thinking *struct {
			Type         string `json:"type"`
			BudgetTokens int64  `json:"budget_tokens"`
		} `json:"thinking"`
	}
	if json.Unmarshal(n.Body, &body) != nil || body.Thinking == nil || body.Thinking.Type != "enabled" || body.Thinking.BudgetTokens <= 0 {
		return nil
	}
	return &thinkingConfig{ThinkingBudget: body.Thinking.BudgetTokens}
}

type toolDecl struct {
	FunctionDeclarations []functionDecl `json:"functionDeclarations"`
}

type functionDecl struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

type toolConfig struct {
	FunctionCallingConfig functionCallingConfig `json:"functionCallingConfig"`
}

type functionCallingConfig struct {
	Mode                 string   `json:"mode"`
	AllowedFunctionNames []string `json:"allowedFunctionNames,omitempty"`
}

// translate turns an OpenAI chat-completions body into a generateContent
// request. The returned bool is stream_options.include_usage.
func translate(body []byte) (*generateRequest, bool, error) {
	r, err := oai.ParseRequest(body)
	if err != nil {
		return nil, false, err
	}
	out := &generateRequest{}
	gc := &generationConfig{Temperature: r.Temperature, TopP: r.TopP, MaxOutputTokens: r.MaxOutput(), CandidateCount: 1,
		Seed: r.Seed, PresencePenalty: r.PresencePenalty, FrequencyPenalty: r.FrequencyPenalty}
	if gc.StopSequences, err = r.StopList(); err != nil {
		return nil, false, err
	}
	if rf := r.ResponseFormat; rf != nil && (rf.Type == "json_object" || rf.Type == "json_schema") {
		gc.ResponseMimeType = "application/json"
	}
	out.GenerationConfig = gc

	callNames := map[string]string{} // tool call id -> function name
	var system []part
	for i, m := range r.Messages {
		field := fmt.Sprintf("messages[%d]", i)
		switch m.Role {
		case "system", "developer":
			parts, err := oai.ContentParts(m.Content, field+".content")
			if err != nil {
				return nil, false, err
			}
			if t := oai.TextOf(parts); t != "" {
				system = append(system, part{Text: t})
			}
		case "user", "assistant":
			parts, err := oai.ContentParts(m.Content, field+".content")
			if err != nil {
				return nil, false, err
			}
			ps := convertParts(parts)
			role := "user"
			if m.Role == "assistant" {
				role = "model"
			} else if len(m.ToolCalls) > 0 {
				return nil, false, fmt.Errorf("%s.tool_calls: only assistant messages may carry tool calls", field)
			}
			for j, tc := range m.ToolCalls {
				args, err := oai.Arguments(tc.Function.Arguments, fmt.Sprintf("%s.tool_calls[%d].function.arguments", field, j))
				if err != nil {
					return nil, false, err
				}
				if tc.Function.Name == "" {
					return nil, false, fmt.Errorf("%s.tool_calls[%d].function.name: is required", field, j)
				}
				callNames[tc.ID] = tc.Function.Name
				ps = append(ps, part{FunctionCall: &functionCall{Name: tc.Function.Name, Args: args}})
			}
			out.Contents = appendTurn(out.Contents, role, ps)
		case "tool":
			name, ok := callNames[m.ToolCallID]
			if !ok {
				return nil, false, fmt.Errorf("%s.tool_call_id: %q matches no earlier assistant tool call", field, m.ToolCallID)
			}
			parts, err := oai.ContentParts(m.Content, field+".content")
			if err != nil {
				return nil, false, err
			}
			out.Contents = appendTurn(out.Contents, "user", []part{{FunctionResponse: &functionResponse{Name: name, Response: toolResponse(oai.TextOf(parts))}}})
		default:
			return nil, false, fmt.Errorf("%s.role: %q must be system, developer, user, assistant or tool", field, m.Role)
		}
	}
	if len(out.Contents) == 0 {
		return nil, false, fmt.Errorf("messages: no user or assistant message to send")
	}
	if len(system) > 0 {
		out.SystemInstruction = &content{Parts: system}
	}
	if len(r.Tools) > 0 {
		decls := make([]functionDecl, 0, len(r.Tools))
		for _, t := range r.Tools {
			p := t.Function.Parameters
			if string(p) == "null" {
				p = nil
			}
			decls = append(decls, functionDecl{Name: t.Function.Name, Description: t.Function.Description, Parameters: p})
		}
		out.Tools = []toolDecl{{FunctionDeclarations: decls}}
	}
	mode, name, err := r.ToolChoiceMode()
	if err != nil {
		return nil, false, err
	}
	switch mode {
	case oai.ChoiceAuto:
		out.ToolConfig = &toolConfig{FunctionCallingConfig: functionCallingConfig{Mode: "AUTO"}}
	case oai.ChoiceNone:
		out.ToolConfig = &toolConfig{FunctionCallingConfig: functionCallingConfig{Mode: "NONE"}}
	case oai.ChoiceRequired:
		out.ToolConfig = &toolConfig{FunctionCallingConfig: functionCallingConfig{Mode: "ANY"}}
	case oai.ChoiceNamed:
		out.ToolConfig = &toolConfig{FunctionCallingConfig: functionCallingConfig{Mode: "ANY", AllowedFunctionNames: []string{name}}}
	}
	return out, r.IncludeUsage(), nil
}

// toolResponse wraps a tool result: a JSON object is passed as is, anything
// else becomes {"content": text} (Gemini wants an object).
func toolResponse(text string) json.RawMessage {
	var obj map[string]json.RawMessage
	if json.Unmarshal([]byte(text), &obj) == nil && obj != nil {
		return json.RawMessage(text)
	}
	b, _ := json.Marshal(map[string]string{"content": text})
	return b
}

func convertParts(parts []oai.Part) []part {
	var out []part
	for _, p := range parts {
		switch p.Type {
		case "text":
			if p.Text != "" {
				out = append(out, part{Text: p.Text})
			}
		case "image":
			out = append(out, part{InlineData: &inlineData{MimeType: p.MediaType, Data: p.Data}})
		}
	}
	return out
}

// appendTurn adds parts as a turn of role, merging adjacent same-role turns.
func appendTurn(cs []content, role string, parts []part) []content {
	if len(parts) == 0 {
		return cs
	}
	if n := len(cs); n > 0 && cs[n-1].Role == role {
		cs[n-1].Parts = append(cs[n-1].Parts, parts...)
		return cs
	}
	return append(cs, content{Role: role, Parts: parts})
}

// generateResponse is a GenerateContentResponse.
type generateResponse struct {
	Candidates []struct {
		Content      *content `json:"content"`
		FinishReason string   `json:"finishReason"`
	} `json:"candidates"`
	PromptFeedback *struct {
		BlockReason string `json:"blockReason"`
	} `json:"promptFeedback"`
	UsageMetadata *usageMetadata `json:"usageMetadata"`
	ModelVersion  string         `json:"modelVersion"`
	ResponseID    string         `json:"responseId"`
	Error         *apiError      `json:"error"`
}

type usageMetadata struct {
	PromptTokenCount     int64 `json:"promptTokenCount"`
	CandidatesTokenCount int64 `json:"candidatesTokenCount"`
	ThoughtsTokenCount   int64 `json:"thoughtsTokenCount"`
}

// openAI converts usage; thinking tokens are billed as output, so they
// count as completion tokens.
func (u *usageMetadata) openAI() oai.Usage {
	if u == nil {
		return oai.Usage{}
	}
	out := u.CandidatesTokenCount + u.ThoughtsTokenCount
	return oai.Usage{PromptTokens: u.PromptTokenCount, CompletionTokens: out, TotalTokens: u.PromptTokenCount + out}
}

// finishReason maps a Gemini finishReason to an OpenAI finish_reason.
func finishReason(s string, toolCalls bool) string {
	switch s {
	case "MAX_TOKENS":
		return oai.FinishLength
	case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY":
		return oai.FinishContentFilter
	}
	if toolCalls {
		return oai.FinishToolCalls
	}
	return oai.FinishStop
}

// newID returns prefix plus 24 random hex digits.
func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// argsString renders functionCall args as OpenAI's arguments string.
func argsString(args json.RawMessage) string {
	var buf bytes.Buffer
	if len(args) == 0 || string(args) == "null" || json.Compact(&buf, args) != nil {
		return "{}"
	}
	return buf.String()
}

// visibleParts drops thought summaries, which are not part of the answer.
func visibleParts(c *content) []part {
	if c == nil {
		return nil
	}
	out := c.Parts[:0:0]
	for _, p := range c.Parts {
		if !p.Thought {
			out = append(out, p)
		}
	}
	return out
}

// completion converts a response into a chat.completion.
func (g *generateResponse) completion(model string, created int64) *oai.Completion {
	msg := oai.Message{Role: "assistant"}
	var text strings.Builder
	hasText := false
	finish := ""
	if len(g.Candidates) > 0 {
		cand := g.Candidates[0]
		for _, p := range visibleParts(cand.Content) {
			switch {
			case p.FunctionCall != nil:
				msg.ToolCalls = append(msg.ToolCalls, oai.ToolCall{ID: newID("call_"), Type: "function",
					Function: oai.FunctionCall{Name: p.FunctionCall.Name, Arguments: argsString(p.FunctionCall.Args)}})
			case p.Text != "":
				text.WriteString(p.Text)
				hasText = true
			}
		}
		finish = cand.FinishReason
	}
	if hasText || len(msg.ToolCalls) == 0 {
		msg.Content = oai.Str(text.String())
	}
	id := g.ResponseID
	if id == "" {
		id = newID("chatcmpl-")
	}
	if g.ModelVersion != "" {
		model = g.ModelVersion
	}
	return &oai.Completion{
		ID: id, Object: oai.ObjectCompletion, Created: created, Model: model,
		Choices: []oai.Choice{{Index: 0, Message: msg, FinishReason: oai.Str(finishReason(finish, len(msg.ToolCalls) > 0))}},
		Usage:   g.UsageMetadata.openAI().Raw(),
	}
}
