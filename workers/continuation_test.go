package workers

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func chunkOf(content string, finish string) json.RawMessage {
	d := map[string]any{}
	if content != "" {
		d["content"] = content
	}
	var fr any
	if finish != "" {
		fr = finish
	}
	b, _ := json.Marshal(map[string]any{"id": "c", "object": "chat.completion.chunk",
		"choices": []any{map[string]any{"index": 0, "delta": d, "finish_reason": fr}}})
	return b
}

// run feeds chunks through f and returns the text passed on, or the error.
func (f *contFilter) run(chunks ...json.RawMessage) (string, error) {
	var out strings.Builder
	for _, c := range chunks {
		got, err := f.apply(c)
		if err != nil {
			return out.String(), err
		}
		if got == nil {
			continue
		}
		var s sentText
		s.observe(got)
		out.WriteString(s.text.String())
	}
	return out.String(), nil
}

func TestContFilterRestartMatch(t *testing.T) {
	role := json.RawMessage(`{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`)
	for _, tc := range []struct {
		name, pending string
		chunks        []json.RawMessage
		want          string
		mismatch      bool
	}{
		{"rest after the sent text", "Hello wor", []json.RawMessage{role, chunkOf("Hello ", ""), chunkOf("world", ""), chunkOf("!", ""), chunkOf("", "stop")}, "ld!", false},
		{"boundary on a chunk", "Hello ", []json.RawMessage{chunkOf("Hello ", ""), chunkOf("world", "")}, "world", false},
		{"different answer", "Hello", []json.RawMessage{chunkOf("Howdy", "")}, "", true},
		{"differs inside a chunk", "Hello world", []json.RawMessage{chunkOf("Hello ", ""), chunkOf("there", "")}, "", true},
		{"shorter answer", "Hello world", []json.RawMessage{chunkOf("Hello", ""), chunkOf("", "stop")}, "", true},
		{"prefill: opener dropped, rest passes", "", []json.RawMessage{role, chunkOf(" again", ""), chunkOf("", "stop")}, " again", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := (&contFilter{pending: tc.pending}).run(tc.chunks...)
			if tc.mismatch {
				if !errors.Is(err, errContinuationMismatch) {
					t.Fatalf("err %v, want a mismatch", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("passed %q (%v), want %q", got, err, tc.want)
			}
		})
	}
}

func TestContFilterUsageAndTrim(t *testing.T) {
	f := &contFilter{addOut: 10, trimSpace: true}
	got, err := f.run(chunkOf(" three", ""), chunkOf(" four", ""))
	if err != nil || got != "three four" {
		t.Fatalf("passed %q (%v), want the leading space dropped once", got, err)
	}
	out, err := f.apply(json.RawMessage(`{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}`))
	if err != nil {
		t.Fatal(err)
	}
	var u struct {
		Usage struct {
			PromptTokens     int64 `json:"prompt_tokens"`
			CompletionTokens int64 `json:"completion_tokens"`
			TotalTokens      int64 `json:"total_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(out, &u); err != nil {
		t.Fatal(err)
	}
	if u.Usage.PromptTokens != 5 || u.Usage.CompletionTokens != 13 || u.Usage.TotalTokens != 18 {
		t.Fatalf("usage %+v, want the earlier calls' 10 output tokens added", u.Usage)
	}
}

func TestPrefillBody(t *testing.T) {
	body := json.RawMessage(`{"model":"x","messages":[{"role":"user","content":"hi"}],"temperature":0}`)
	out, trimmed, err := prefillBody(body, "Hello ", "anthropic")
	if err != nil || !trimmed || !strings.Contains(string(out), `{"content":"Hello","role":"assistant"}`) || !strings.Contains(string(out), `"temperature":0`) {
		t.Fatalf("anthropic: %s trimmed=%v err=%v", out, trimmed, err)
	}
	out, trimmed, err = prefillBody(body, "Hello ", "openai")
	if err != nil || trimmed || !strings.Contains(string(out), `{"content":"Hello ","prefix":true,"role":"assistant"}`) {
		t.Fatalf("openai: %s trimmed=%v err=%v", out, trimmed, err)
	}
}
