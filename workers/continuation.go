package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/pricing"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/workers/prefill"
)

// Mid-stream failover by continuation. When a target's stream breaks after
// its first chunk reached the caller (cut, stall, error event), the job
// falls back carrying a schemas.Continuation: the text already sent. The
// next target is asked to continue it, the original messages plus that text
// as a final assistant message (a prefill), and only the continuation is
// streamed, so the caller receives one answer with one [DONE]. A target that
// cannot take a prefill (models[].prefill false, or learned from a 400
// refusing one) is asked again from the start instead; when its answer
// begins with exactly the text already sent, only the rest is streamed,
// otherwise the stream ends with a stream_broken error. Never a splice of two
// different answers.

// errContinuationMismatch: a restarted answer did not begin with the text
// already sent.
var errContinuationMismatch = errors.New("continuation not possible")

// sentText tracks what a stream has published to the caller: choice 0's
// content, and whether anything was sent that text cannot continue.
type sentText struct {
	text strings.Builder
	// content counts chunks carrying content (the output-token estimate of
	// a stream cut before its usage).
	content int64
	// other: tool calls or another choice were sent.
	other bool
}

// chunkView is the part of a chat.completion.chunk continuation reads.
type chunkView struct {
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Role      string          `json:"role"`
			Content   *string         `json:"content"`
			ToolCalls json.RawMessage `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage json.RawMessage `json:"usage"`
}

func (s *sentText) observe(chunk json.RawMessage) {
	var c chunkView
	if json.Unmarshal(chunk, &c) != nil {
		return
	}
	for _, ch := range c.Choices {
		if ch.Index != 0 || (len(ch.Delta.ToolCalls) > 0 && string(ch.Delta.ToolCalls) != "null") {
			s.other = true
			continue
		}
		if ch.Delta.Content != nil && *ch.Delta.Content != "" {
			s.text.WriteString(*ch.Delta.Content)
			s.content++
		}
	}
}

// continuable reports whether a stream broken with errType may be
// continued elsewhere: not after a content filter, a cancel, a missed
// deadline or a request the provider refused as such.
func continuable(errType string) bool {
	switch errType {
	case schemas.ErrContentFilter, schemas.ErrCanceled, schemas.ErrDeadlineExceeded, schemas.ErrInvalidRequest,
		schemas.ErrAuth, schemas.ErrNotFound, schemas.ErrContextLength:
		return false
	}
	return true
}

// continuation is the Continuation the next hop carries after this run's
// stream broke (what earlier hops sent plus what this call sent), and the
// broken call's estimated usage: it reported none, so a token per content
// chunk sent and the prompt's estimate.
func (p *Pool) continuation(job *schemas.Job, r *run) (*schemas.Continuation, schemas.Usage) {
	next := &schemas.Continuation{}
	if c := job.Continuation; c != nil {
		*next = *c
	}
	in, _ := pricing.EstimateTokens(job.Request, 0)
	est := schemas.Usage{InputTokens: int64(in), OutputTokens: r.sent.content}
	if next.FirstChunkAt.IsZero() {
		next.FirstChunkAt = r.firstTokenAt.UTC()
	}
	next.Text += r.sent.text.String()
	next.Chunks += r.chunks.Load()
	next.InputTokens += est.InputTokens
	next.OutputTokens += est.OutputTokens
	return next, est
}

// prefillAllowed reports whether a continuation on target may be sent as a
// prefill: the config's models[].prefill (or the provider kind's default),
// unless the model was seen refusing one.
func (p *Pool) prefillAllowed(t schemas.Target) bool {
	if p.cfg.Resilience.Prefill.Refuses(t.Provider, t.Model) {
		return false
	}
	ok, _ := p.liveConfig().Prefill(t.Provider, t.Model)
	return ok
}

// learnRefusal handles a 400 to a prefill: when its message says the model
// takes no prefill, every worker is told (shared KV).
func (p *Pool) learnRefusal(t schemas.Target, ce *callError) {
	if !prefill.IsRefusal(ce.Message) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.PublishTimeout)
	defer cancel()
	if err := p.cfg.Resilience.Prefill.Learn(ctx, t.Provider, t.Model, ce.Message); err != nil {
		p.log.Warn("remember prefill refusal", "target", t.String(), "err", err)
		return
	}
	p.log.Info("model refuses prefill; continuing streams there by restart", "target", t.String())
}

// prefillBody appends text as a final assistant message to a chat body.
// OpenAI-compatible servers that continue one (Mistral, DeepSeek) want
// "prefix": true on it; Anthropic refuses one ending in whitespace, so it
// is trimmed (trimmed reports that).
func prefillBody(body json.RawMessage, text, kind string) (out json.RawMessage, trimmed bool, err error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return nil, false, fmt.Errorf("request body: %w", err)
	}
	var msgs []json.RawMessage
	if err := json.Unmarshal(obj["messages"], &msgs); err != nil {
		return nil, false, fmt.Errorf("request messages: %w", err)
	}
	if kind == config.KindAnthropic {
		t := strings.TrimRightFunc(text, unicode.IsSpace)
		text, trimmed = t, t != text
	}
	m := map[string]any{"role": "assistant", "content": text}
	if kind == config.KindOpenAI || kind == config.KindMock {
		m["prefix"] = true
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, false, err
	}
	msgs = append(msgs, b)
	if obj["messages"], err = json.Marshal(msgs); err != nil {
		return nil, false, err
	}
	out, err = json.Marshal(obj)
	return out, trimmed, err
}

// contFilter shapes a continuing call's chunks before they reach the
// caller: the opening role chunk is dropped (the caller has one), usage
// chunks count the earlier calls' output tokens, and after a restart the
// answer is matched against the text already sent and only the rest passes.
type contFilter struct {
	// pending is the sent text a restarted answer has yet to repeat.
	pending string
	addOut  int64
	// trimSpace: the prefill lost its trailing whitespace (Anthropic), so
	// the continuation's leading whitespace is already with the caller.
	trimSpace bool
}

// apply returns the chunk to send (nil: drop it) or errContinuationMismatch.
func (f *contFilter) apply(chunk json.RawMessage) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if json.Unmarshal(chunk, &obj) != nil {
		return chunk, nil
	}
	var view chunkView
	if json.Unmarshal(chunk, &view) != nil {
		return chunk, nil
	}
	changed := false
	if u := obj["usage"]; len(u) > 0 && string(u) != "null" && f.addOut > 0 {
		var usage map[string]json.RawMessage
		if json.Unmarshal(u, &usage) == nil {
			add := func(k string) {
				var n int64
				if json.Unmarshal(usage[k], &n) == nil {
					usage[k], _ = json.Marshal(n + f.addOut)
				}
			}
			add("completion_tokens")
			add("total_tokens")
			obj["usage"], _ = json.Marshal(usage)
			changed = true
		}
	}
	var choices []map[string]json.RawMessage
	if len(view.Choices) > 0 && json.Unmarshal(obj["choices"], &choices) != nil {
		return chunk, nil
	}
	keep := len(view.Choices) == 0 // a usage chunk
	for i, ch := range view.Choices {
		content := ""
		if ch.Delta.Content != nil {
			content = *ch.Delta.Content
		}
		tools := len(ch.Delta.ToolCalls) > 0 && string(ch.Delta.ToolCalls) != "null"
		if f.trimSpace && content != "" {
			content, f.trimSpace = strings.TrimLeftFunc(content, unicode.IsSpace), false
			delta := map[string]any{}
			if content != "" {
				delta["content"] = content
			}
			choices[i]["delta"], _ = json.Marshal(delta)
			changed = true
		}
		if f.pending != "" {
			switch {
			case tools || ch.Index != 0:
				return nil, fmt.Errorf("%w: the new answer is not the same text", errContinuationMismatch)
			case len(content) <= len(f.pending):
				if !strings.HasPrefix(f.pending, content) {
					return nil, fmt.Errorf("%w: the new answer differs from the text already sent", errContinuationMismatch)
				}
				f.pending = f.pending[len(content):]
				if ch.FinishReason != nil && *ch.FinishReason != "" && f.pending != "" {
					return nil, fmt.Errorf("%w: the new answer is shorter than the text already sent", errContinuationMismatch)
				}
				content = ""
			default:
				if !strings.HasPrefix(content, f.pending) {
					return nil, fmt.Errorf("%w: the new answer differs from the text already sent", errContinuationMismatch)
				}
				content, f.pending = content[len(f.pending):], ""
			}
			delta := map[string]any{}
			if content != "" {
				delta["content"] = content
			}
			choices[i]["delta"], _ = json.Marshal(delta)
			changed = true
		}
		if content != "" || tools || (ch.FinishReason != nil && *ch.FinishReason != "") {
			keep = true
		}
	}
	if !keep {
		return nil, nil // a role opener or an empty delta
	}
	if changed {
		if len(choices) > 0 {
			obj["choices"], _ = json.Marshal(choices)
		}
		b, err := json.Marshal(obj)
		if err != nil {
			return chunk, nil
		}
		return b, nil
	}
	return chunk, nil
}

// wholeCompletion prepends the text sent by earlier hops to the content of
// a continuing call's assembled completion, so the stored Result holds the
// whole answer.
func wholeCompletion(body json.RawMessage, before string) json.RawMessage {
	var obj map[string]json.RawMessage
	if before == "" || json.Unmarshal(body, &obj) != nil {
		return body
	}
	var choices []map[string]json.RawMessage
	if json.Unmarshal(obj["choices"], &choices) != nil || len(choices) == 0 {
		return body
	}
	var msg map[string]json.RawMessage
	if json.Unmarshal(choices[0]["message"], &msg) != nil {
		return body
	}
	var content string
	_ = json.Unmarshal(msg["content"], &content)
	msg["content"], _ = json.Marshal(before + content)
	choices[0]["message"], _ = json.Marshal(msg)
	obj["choices"], _ = json.Marshal(choices)
	out, err := json.Marshal(obj)
	if err != nil {
		return body
	}
	return out
}
