package messages

import (
	"encoding/json"
	"fmt"
)

// Event is one server-sent event of a Messages stream.
type Event struct {
	// Name is the event type (message_start, content_block_delta, ...).
	Name string
	// Data is the event's JSON object, whose "type" is Name.
	Data []byte
}

// Stream turns the OpenAI chat.completion.chunk objects of one answer into
// Messages stream events: message_start and a ping before the first
// content, content_block_start / _delta / _stop around each text, thinking
// and tool_use block, and, from Finish, message_delta (stop_reason, usage)
// and message_stop. It is not safe for concurrent use.
type Stream struct {
	started bool
	id      string
	model   string
	// open is the index of the open content block (-1: none), kind its
	// type; next is the index of the next block.
	open, next int
	kind       string
	// tools maps an OpenAI tool call index to its block index.
	tools  map[int]int
	finish string
	usage  *chatUsage
}

// NewStream starts a conversion; model is reported until a chunk names one.
func NewStream(model string) *Stream {
	return &Stream{model: model, open: -1, tools: map[int]int{}}
}

func event(name string, v map[string]any) Event {
	v["type"] = name
	b, _ := json.Marshal(v)
	return Event{Name: name, Data: b}
}

// Started reports whether message_start was sent.
func (s *Stream) Started() bool { return s.started }

func (s *Stream) start(out []Event) []Event {
	if s.started {
		return out
	}
	s.started = true
	msg := Message{ID: messageID(s.id), Type: "message", Role: "assistant", Model: s.model, Content: []Block{}}
	return append(out, event("message_start", map[string]any{"message": msg}), event("ping", map[string]any{}))
}

// closeBlock ends the open block, if any.
func (s *Stream) closeBlock(out []Event) []Event {
	if s.open < 0 {
		return out
	}
	out = append(out, event("content_block_stop", map[string]any{"index": s.open}))
	s.open, s.kind = -1, ""
	return out
}

// openBlock starts a new block of kind unless one of that kind is open
// (tool_use blocks always start anew).
func (s *Stream) openBlock(out []Event, kind string, block map[string]any) []Event {
	if s.open >= 0 && s.kind == kind && kind != "tool_use" {
		return out
	}
	out = s.closeBlock(out)
	s.open, s.kind = s.next, kind
	s.next++
	block["type"] = kind
	return append(out, event("content_block_start", map[string]any{"index": s.open, "content_block": block}))
}

func (s *Stream) delta(out []Event, index int, d map[string]any) []Event {
	return append(out, event("content_block_delta", map[string]any{"index": index, "delta": d}))
}

// Chunk converts one chat.completion.chunk into events (maybe none).
func (s *Stream) Chunk(chunk []byte) ([]Event, error) {
	var c completion
	if err := json.Unmarshal(chunk, &c); err != nil {
		return nil, fmt.Errorf("unreadable chunk: %w", err)
	}
	if s.id == "" {
		s.id = c.ID
	}
	if c.Model != "" && !s.started {
		s.model = c.Model
	}
	if c.Usage != nil {
		s.usage = c.Usage
	}
	var out []Event
	for _, ch := range c.Choices {
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			s.finish = *ch.FinishReason
		}
		d := ch.Delta
		if d == nil {
			d = ch.Message // a whole completion sent as one chunk
		}
		if d == nil {
			continue
		}
		out = s.start(out)
		out = s.content(out, d)
	}
	return out, nil
}

// content converts one delta's reasoning, text and tool calls.
func (s *Stream) content(out []Event, d *chatOut) []Event {
	for _, tb := range d.ThinkingBlocks {
		if tb.Type == "redacted_thinking" {
			out = s.closeBlock(out)
			out = s.openBlock(out, "redacted_thinking", map[string]any{"data": tb.Data})
			out = s.closeBlock(out)
			continue
		}
		out = s.openBlock(out, "thinking", map[string]any{"thinking": "", "signature": ""})
		if tb.Thinking != "" {
			out = s.delta(out, s.open, map[string]any{"type": "thinking_delta", "thinking": tb.Thinking})
		}
		if tb.Signature != "" {
			out = s.delta(out, s.open, map[string]any{"type": "signature_delta", "signature": tb.Signature})
			out = s.closeBlock(out) // a signature ends its block
		}
	}
	if len(d.ThinkingBlocks) == 0 && d.ReasoningContent != nil && *d.ReasoningContent != "" {
		out = s.openBlock(out, "thinking", map[string]any{"thinking": "", "signature": ""})
		out = s.delta(out, s.open, map[string]any{"type": "thinking_delta", "thinking": *d.ReasoningContent})
	}
	for _, text := range []*string{d.Content, d.Refusal} {
		if text != nil && *text != "" {
			out = s.openBlock(out, "text", map[string]any{"text": ""})
			out = s.delta(out, s.open, map[string]any{"type": "text_delta", "text": *text})
		}
	}
	if d.Refusal != nil && *d.Refusal != "" {
		s.finish = "content_filter"
	}
	for _, tc := range d.ToolCalls {
		idx, ok := s.tools[tc.Index]
		if !ok || tc.ID != "" && s.open != idx {
			out = s.openBlock(out, "tool_use", map[string]any{"id": tc.ID, "name": tc.Function.Name, "input": map[string]any{}})
			idx = s.open
			s.tools[tc.Index] = idx
		}
		if tc.Function.Arguments != "" {
			out = s.delta(out, idx, map[string]any{"type": "input_json_delta", "partial_json": tc.Function.Arguments})
		}
	}
	return out
}

// Finish ends the message: the open block's content_block_stop,
// message_delta with the stop reason and usage, message_stop.
func (s *Stream) Finish() []Event {
	out := s.start(nil)
	out = s.closeBlock(out)
	u := s.usage.messages()
	out = append(out, event("message_delta", map[string]any{
		"delta": map[string]any{"stop_reason": StopReason(s.finish), "stop_sequence": nil},
		"usage": u,
	}))
	return append(out, event("message_stop", map[string]any{}))
}

// ErrorEvent is the error event of a stream that failed after it started.
func ErrorEvent(errType, message string) Event {
	return Event{Name: "error", Data: ErrorBody(errType, message)}
}
