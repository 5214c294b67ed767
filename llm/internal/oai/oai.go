// Package oai holds the OpenAI chat-completions wire types every adapter
// produces, and the Assembler that folds a stream of chunks into the final
// chat.completion object.
package oai

import (
	"encoding/json"
	"sort"
	"strings"

	"github.com/switchboard-llm/switchboard/schemas"
)

// Object names.
const (
	ObjectCompletion = "chat.completion"
	ObjectChunk      = "chat.completion.chunk"
)

// Finish reasons.
const (
	FinishStop          = "stop"
	FinishLength        = "length"
	FinishToolCalls     = "tool_calls"
	FinishContentFilter = "content_filter"
)

// Completion is a chat.completion object.
type Completion struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	SystemFingerprint string          `json:"system_fingerprint,omitempty"`
	Choices           []Choice        `json:"choices"`
	Usage             json.RawMessage `json:"usage,omitempty"`
}

// Choice is one choice of a completion.
type Choice struct {
	Index        int             `json:"index"`
	Message      Message         `json:"message"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

// Message is an assistant message of a completion.
type Message struct {
	Role      string     `json:"role"`
	Content   *string    `json:"content"`
	Refusal   *string    `json:"refusal,omitempty"`
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
	// ReasoningContent and ThinkingBlocks carry a model's reasoning (the
	// de-facto extension LiteLLM and others use): the text, and the blocks
	// with the signatures Anthropic needs back on a later turn.
	ReasoningContent *string         `json:"reasoning_content,omitempty"`
	ThinkingBlocks   []ThinkingBlock `json:"thinking_blocks,omitempty"`
}

// ThinkingBlock is a reasoning block: type "thinking" (text and
// signature) or "redacted_thinking" (opaque data).
type ThinkingBlock struct {
	Type      string `json:"type"`
	Thinking  string `json:"thinking,omitempty"`
	Signature string `json:"signature,omitempty"`
	Data      string `json:"data,omitempty"`
}

// ToolCall is one function call of an assistant message.
type ToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function FunctionCall `json:"function"`
}

// FunctionCall names a function and carries its arguments as a JSON string.
type FunctionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// Usage is OpenAI's token usage object.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

// Raw renders u as JSON.
func (u Usage) Raw() json.RawMessage {
	b, _ := json.Marshal(u)
	return b
}

// Chunk is a chat.completion.chunk object.
type Chunk struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	SystemFingerprint string          `json:"system_fingerprint,omitempty"`
	Choices           []ChunkChoice   `json:"choices"`
	Usage             json.RawMessage `json:"usage,omitempty"`
}

// ChunkChoice is one choice's delta in a chunk.
type ChunkChoice struct {
	Index        int             `json:"index"`
	Delta        Delta           `json:"delta"`
	Logprobs     json.RawMessage `json:"logprobs,omitempty"`
	FinishReason *string         `json:"finish_reason"`
}

// Delta is the increment of a message carried by one chunk.
type Delta struct {
	Role      string          `json:"role,omitempty"`
	Content   *string         `json:"content,omitempty"`
	Refusal   *string         `json:"refusal,omitempty"`
	ToolCalls []ToolCallDelta `json:"tool_calls,omitempty"`
	// ReasoningContent is reasoning text; ThinkingBlocks carry a thinking
	// block's signature (ending it) or a redacted_thinking block.
	ReasoningContent *string         `json:"reasoning_content,omitempty"`
	ThinkingBlocks   []ThinkingBlock `json:"thinking_blocks,omitempty"`
}

// ToolCallDelta is the increment of one tool call; Index identifies the call.
type ToolCallDelta struct {
	Index    int           `json:"index"`
	ID       string        `json:"id,omitempty"`
	Type     string        `json:"type,omitempty"`
	Function FunctionDelta `json:"function"`
}

// FunctionDelta is the increment of a function call.
type FunctionDelta struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// Str returns a pointer to s, for the optional string fields.
func Str(s string) *string { return &s }

// Marshal renders v, which must be one of this package's types.
func Marshal(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic("oai: marshal: " + err.Error()) // only plain structs are marshalled
	}
	return b
}

// ParseUsage reads prompt_tokens and completion_tokens from a usage object.
func ParseUsage(raw json.RawMessage) schemas.Usage {
	var u Usage
	u.Read(raw)
	return u.Tokens()
}

// Read decodes a usage object into u; an absent or malformed one (not an
// object of integers) leaves u zero: no usage, not a failed answer.
func (u *Usage) Read(raw []byte) {
	if len(raw) == 0 || json.Unmarshal(raw, u) != nil {
		*u = Usage{}
	}
}

// Tokens is u's input and output tokens.
func (u Usage) Tokens() schemas.Usage {
	return schemas.Usage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens}
}

// Assembler folds chunks into the chat.completion they stand for.
type Assembler struct {
	head    Chunk
	choices map[int]*choiceAcc
	usage   json.RawMessage
	// Chunks counts the chunks added.
	Chunks int
}

type choiceAcc struct {
	role       string
	content    strings.Builder
	hasContent bool
	refusal    strings.Builder
	hasRefusal bool
	reasoning  strings.Builder
	thinking   []ThinkingBlock
	calls      map[int]*ToolCall
	finish     *string
}

// Add folds one chunk in.
func (a *Assembler) Add(c *Chunk) {
	a.Chunks++
	if a.choices == nil {
		a.choices = map[int]*choiceAcc{}
	}
	if a.head.ID == "" {
		a.head.ID = c.ID
	}
	if a.head.Created == 0 {
		a.head.Created = c.Created
	}
	if a.head.Model == "" {
		a.head.Model = c.Model
	}
	if c.SystemFingerprint != "" {
		a.head.SystemFingerprint = c.SystemFingerprint
	}
	if len(c.Usage) > 0 && string(c.Usage) != "null" {
		a.usage = c.Usage
	}
	for _, ch := range c.Choices {
		acc := a.choices[ch.Index]
		if acc == nil {
			acc = &choiceAcc{calls: map[int]*ToolCall{}}
			a.choices[ch.Index] = acc
		}
		d := ch.Delta
		if d.Role != "" {
			acc.role = d.Role
		}
		if d.Content != nil {
			acc.content.WriteString(*d.Content)
			acc.hasContent = true
		}
		if d.Refusal != nil {
			acc.refusal.WriteString(*d.Refusal)
			acc.hasRefusal = true
		}
		acc.addThinking(d)
		for _, tc := range d.ToolCalls {
			call := acc.calls[tc.Index]
			if call == nil {
				call = &ToolCall{Type: "function"}
				acc.calls[tc.Index] = call
			}
			if tc.ID != "" {
				call.ID = tc.ID
			}
			if tc.Type != "" {
				call.Type = tc.Type
			}
			if tc.Function.Name != "" {
				call.Function.Name += tc.Function.Name
			}
			call.Function.Arguments += tc.Function.Arguments
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			acc.finish = ch.FinishReason
		}
	}
}

// addThinking folds a delta's reasoning in: text extends the open thinking
// block (one without a signature yet), a signature ends it.
func (acc *choiceAcc) addThinking(d Delta) {
	open := func() *ThinkingBlock {
		if n := len(acc.thinking); n > 0 && acc.thinking[n-1].Type == "thinking" && acc.thinking[n-1].Signature == "" {
			return &acc.thinking[n-1]
		}
		acc.thinking = append(acc.thinking, ThinkingBlock{Type: "thinking"})
		return &acc.thinking[len(acc.thinking)-1]
	}
	if d.ReasoningContent != nil && *d.ReasoningContent != "" {
		acc.reasoning.WriteString(*d.ReasoningContent)
		b := open()
		b.Thinking += *d.ReasoningContent
	}
	for _, tb := range d.ThinkingBlocks {
		if tb.Type == "redacted_thinking" {
			acc.thinking = append(acc.thinking, tb)
			continue
		}
		b := open()
		b.Thinking += tb.Thinking
		b.Signature = tb.Signature
	}
}

// Usage returns the last usage object seen, if any.
func (a *Assembler) Usage() json.RawMessage { return a.usage }

// Finished reports whether any choice has a finish reason.
func (a *Assembler) Finished() bool {
	for _, c := range a.choices {
		if c.finish != nil {
			return true
		}
	}
	return false
}

// Completion returns the assembled chat.completion.
func (a *Assembler) Completion() *Completion {
	out := &Completion{
		ID: a.head.ID, Object: ObjectCompletion, Created: a.head.Created, Model: a.head.Model,
		SystemFingerprint: a.head.SystemFingerprint, Choices: []Choice{}, Usage: a.usage,
	}
	idx := make([]int, 0, len(a.choices))
	for i := range a.choices {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for _, i := range idx {
		acc := a.choices[i]
		role := acc.role
		if role == "" {
			role = "assistant"
		}
		msg := Message{Role: role}
		if acc.hasContent || len(acc.calls) == 0 {
			msg.Content = Str(acc.content.String())
		}
		if acc.hasRefusal {
			msg.Refusal = Str(acc.refusal.String())
		}
		if acc.reasoning.Len() > 0 {
			msg.ReasoningContent = Str(acc.reasoning.String())
		}
		msg.ThinkingBlocks = acc.thinking
		ci := make([]int, 0, len(acc.calls))
		for k := range acc.calls {
			ci = append(ci, k)
		}
		sort.Ints(ci)
		for _, k := range ci {
			msg.ToolCalls = append(msg.ToolCalls, *acc.calls[k])
		}
		out.Choices = append(out.Choices, Choice{Index: i, Message: msg, FinishReason: acc.finish})
	}
	return out
}
