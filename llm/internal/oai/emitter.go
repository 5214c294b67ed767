package oai

import "encoding/json"

// Emitter builds chat.completion.chunk objects for a translated stream,
// hands each to emit and folds it into an Assembler.
type Emitter struct {
	ID      string
	Created int64
	Model   string
	Asm     Assembler
	emit    func(json.RawMessage) error
}

// NewEmitter returns an Emitter that sends chunks to emit.
func NewEmitter(emit func(json.RawMessage) error) *Emitter {
	return &Emitter{emit: emit}
}

func (e *Emitter) send(c *Chunk) error {
	c.ID, c.Object, c.Created, c.Model = e.ID, ObjectChunk, e.Created, e.Model
	if c.Choices == nil {
		c.Choices = []ChunkChoice{}
	}
	e.Asm.Add(c)
	return e.emit(Marshal(c))
}

func (e *Emitter) delta(d Delta, finish *string) error {
	return e.send(&Chunk{Choices: []ChunkChoice{{Index: 0, Delta: d, FinishReason: finish}}})
}

// Role sends the opening chunk: role assistant, empty content.
func (e *Emitter) Role() error { return e.delta(Delta{Role: "assistant", Content: Str("")}, nil) }

// Text sends a content delta.
func (e *Emitter) Text(s string) error { return e.delta(Delta{Content: Str(s)}, nil) }

// Thinking sends reasoning text (reasoning_content).
func (e *Emitter) Thinking(s string) error { return e.delta(Delta{ReasoningContent: Str(s)}, nil) }

// ThinkingBlock sends a thinking block's signature, or a redacted block.
func (e *Emitter) ThinkingBlock(b ThinkingBlock) error {
	return e.delta(Delta{ThinkingBlocks: []ThinkingBlock{b}}, nil)
}

// ToolCall sends a tool call delta; id and name are set on a call's first delta.
func (e *Emitter) ToolCall(index int, id, name, args string) error {
	tc := ToolCallDelta{Index: index, ID: id, Function: FunctionDelta{Name: name, Arguments: args}}
	if id != "" {
		tc.Type = "function"
	}
	return e.delta(Delta{ToolCalls: []ToolCallDelta{tc}}, nil)
}

// Finish sends the chunk carrying the finish reason.
func (e *Emitter) Finish(reason string) error { return e.delta(Delta{}, Str(reason)) }

// Usage sends the usage chunk (empty choices) when include is true, and
// records u as the assembled completion's usage either way.
func (e *Emitter) Usage(u Usage, include bool) error {
	if !include {
		e.Asm.usage = u.Raw()
		return nil
	}
	return e.send(&Chunk{Usage: u.Raw()})
}
