package messages

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// compact re-encodes JSON with sorted keys so goldens compare as values.
func compact(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad JSON %s: %v", s, err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// Every request field, Messages -> OpenAI chat completions.
func TestToChatTable(t *testing.T) {
	const head = `"model":"chat","max_tokens":64,`
	tests := []struct {
		name, in, want string
	}{
		{"minimal string content", `{` + head + `"messages":[{"role":"user","content":"hi"}]}`,
			`{"model":"chat","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`},
		{"system string", `{` + head + `"system":"be brief","messages":[{"role":"user","content":"hi"}]}`,
			`{"model":"chat","max_tokens":64,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}`},
		{"system blocks, cache_control ignored", `{` + head + `"system":[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}},{"type":"text","text":"b"}],"messages":[{"role":"user","content":"hi"}]}`,
			`{"model":"chat","max_tokens":64,"messages":[{"role":"system","content":"a\n\nb"},{"role":"user","content":"hi"}]}`},
		{"sampling, stop, metadata, stream", `{` + head + `"temperature":0.5,"top_p":0.9,"stop_sequences":["X","Y"],"metadata":{"user_id":"u1"},"stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			`{"model":"chat","max_tokens":64,"temperature":0.5,"top_p":0.9,"stop":["X","Y"],"user":"u1","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`},
		{"thinking is for Anthropic-kind targets only", `{` + head + `"thinking":{"type":"enabled","budget_tokens":2048},"messages":[{"role":"user","content":"hi"}]}`,
			`{"model":"chat","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`},
		{"images base64 and url, text blocks", `{` + head + `"messages":[{"role":"user","content":[{"type":"text","text":"what is"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBO"}},{"type":"image","source":{"type":"url","url":"https://x/y.png"}}]}]}`,
			`{"model":"chat","max_tokens":64,"messages":[{"role":"user","content":[{"type":"text","text":"what is"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBO"}},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}`},
		{"documents: pdf as a file, plain text as text", `{` + head + `"messages":[{"role":"user","content":[{"type":"document","title":"r.pdf","source":{"type":"base64","media_type":"application/pdf","data":"JVBE"}},{"type":"document","source":{"type":"text","media_type":"text/plain","data":"plain"}}]}]}`,
			`{"model":"chat","max_tokens":64,"messages":[{"role":"user","content":[{"type":"file","file":{"filename":"r.pdf","file_data":"data:application/pdf;base64,JVBE"}},{"type":"text","text":"plain"}]}]}`},
		{"tools, tool_choice any, no parallel", `{` + head + `"tools":[{"name":"get","description":"d","input_schema":{"type":"object"}},{"type":"custom","name":"put","input_schema":{"type":"object"},"cache_control":{"type":"ephemeral"}}],"tool_choice":{"type":"any","disable_parallel_tool_use":true},"messages":[{"role":"user","content":"hi"}]}`,
			`{"model":"chat","max_tokens":64,"tools":[{"type":"function","function":{"name":"get","description":"d","parameters":{"type":"object"}}},{"type":"function","function":{"name":"put","parameters":{"type":"object"}}}],"tool_choice":"required","parallel_tool_calls":false,"messages":[{"role":"user","content":"hi"}]}`},
		{"tool_choice tool", `{` + head + `"tools":[{"name":"get","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"get"},"messages":[{"role":"user","content":"hi"}]}`,
			`{"model":"chat","max_tokens":64,"tools":[{"type":"function","function":{"name":"get","parameters":{"type":"object"}}}],"tool_choice":{"type":"function","function":{"name":"get"}},"messages":[{"role":"user","content":"hi"}]}`},
		{"tool_choice auto and none", `{` + head + `"tool_choice":{"type":"none"},"messages":[{"role":"user","content":"hi"}]}`,
			`{"model":"chat","max_tokens":64,"tool_choice":"none","messages":[{"role":"user","content":"hi"}]}`},
		{"tool round trip, thinking of earlier turns dropped", `{` + head + `"messages":[{"role":"user","content":"weather?"},` +
			`{"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"sig"},{"type":"text","text":"checking"},{"type":"tool_use","id":"tu1","name":"get","input":{"city":"Paris"}}]},` +
			`{"role":"user","content":[{"type":"tool_result","tool_use_id":"tu1","content":"18C"},{"type":"tool_result","tool_use_id":"tu2","content":[{"type":"text","text":"no"}],"is_error":true},{"type":"text","text":"thanks"}]}]}`,
			`{"model":"chat","max_tokens":64,"messages":[{"role":"user","content":"weather?"},` +
				`{"role":"assistant","content":"checking","tool_calls":[{"id":"tu1","type":"function","function":{"name":"get","arguments":"{\"city\":\"Paris\"}"}}]},` +
				`{"role":"tool","tool_call_id":"tu1","content":"18C"},{"role":"tool","tool_call_id":"tu2","content":"Error: no"},{"role":"user","content":"thanks"}]}`},
		{"assistant with only a tool call has null content", `{` + head + `"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]}]}`,
			`{"model":"chat","max_tokens":64,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":null,"tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, problems, err := ToChat([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if len(problems) > 0 {
				t.Fatalf("problems %v", problems)
			}
			if g, w := compact(t, string(got)), compact(t, tt.want); g != w {
				t.Fatalf("got  %s\nwant %s", g, w)
			}
		})
	}
}

// What only Anthropic can take is listed, field by field (the gateway turns
// these into a 400 when a non-Anthropic target could get the request).
func TestToChatProblems(t *testing.T) {
	const head = `"model":"chat","max_tokens":64,`
	tests := []struct{ name, in, field string }{
		{"unknown top-level field", `{` + head + `"service_tier":"auto","messages":[{"role":"user","content":"hi"}]}`, "service_tier"},
		{"top_k", `{` + head + `"top_k":5,"messages":[{"role":"user","content":"hi"}]}`, "top_k"},
		{"server tool", `{` + head + `"tools":[{"type":"web_search_20250305","name":"web_search"}],"messages":[{"role":"user","content":"hi"}]}`, "tools[0]"},
		{"server tool result block", `{` + head + `"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"server_tool_use","id":"s","name":"web_search","input":{}}]}]}`, "messages[1].content[0]"},
		{"image in a tool result", `{` + head + `"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"x"}}]}]}]}`, "messages[0].content[0].content[0]"},
		{"document by url", `{` + head + `"messages":[{"role":"user","content":[{"type":"document","source":{"type":"url","url":"https://x/a.pdf"}}]}]}`, "messages[0].content[0].source.type"},
		{"image by file id", `{` + head + `"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}`, "messages[0].content[0].source.type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, problems, err := ToChat([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if len(problems) != 1 || problems[0].Field != tt.field || problems[0].Msg == "" {
				t.Fatalf("problems %v, want one on %s", problems, tt.field)
			}
		})
	}
}

// Malformed requests are errors naming the field, whatever the target.
func TestToChatErrors(t *testing.T) {
	tests := []struct{ in, field string }{
		{`[]`, ""},
		{`{"max_tokens":5,"messages":[{"role":"user","content":"x"}]}`, "model"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}]}`, "max_tokens"},
		{`{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}`, "max_tokens"},
		{`{"model":"m","max_tokens":5,"messages":[]}`, "messages"},
		{`{"model":"m","max_tokens":"5","messages":[]}`, "max_tokens"},
		{`{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]}`, "messages[0].role"},
		{`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":7}]}`, "messages[0].content"},
		{`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_use","id":"a","name":"b","input":{}}]}]}`, "messages[0].content[0].type"},
		{`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result"}]}]}`, "messages[0].content[0].tool_use_id"},
		{`{"model":"m","max_tokens":5,"tools":[{"name":"f"}],"messages":[{"role":"user","content":"x"}]}`, "tools[0].input_schema"},
		{`{"model":"m","max_tokens":5,"tool_choice":{"type":"sometimes"},"messages":[{"role":"user","content":"x"}]}`, "tool_choice.type"},
		{`{"model":"m","max_tokens":5,"system":[{"type":"image"}],"messages":[{"role":"user","content":"x"}]}`, "system[0].type"},
	}
	for _, tt := range tests {
		_, _, _, err := ToChat([]byte(tt.in))
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrInvalid) {
			t.Fatalf("%s: error %v, want an *Error", tt.in, err)
		}
		if e.Field != tt.field {
			t.Errorf("%s: field %q, want %q (%v)", tt.in, e.Field, tt.field, err)
		}
	}
}

// OpenAI completion -> Messages response, every finish reason and content kind.
func TestFromCompletionTable(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"text, end_turn, cached usage",
			`{"id":"chatcmpl-1","model":"gpt","choices":[{"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4}}}`,
			`{"id":"msg_chatcmpl-1","type":"message","role":"assistant","model":"gpt","content":[{"type":"text","text":"hello"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":6,"cache_creation_input_tokens":0,"cache_read_input_tokens":4,"output_tokens":3}}`},
		{"tool calls",
			`{"id":"msg_1","model":"claude","choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"get","arguments":"{\"a\": 1}"}},{"id":"c2","type":"function","function":{"name":"put","arguments":""}}]},"finish_reason":"tool_calls"}]}`,
			`{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{"type":"tool_use","id":"c1","name":"get","input":{"a":1}},{"type":"tool_use","id":"c2","name":"put","input":{}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}`},
		{"length and reasoning",
			`{"id":"x","model":"m","choices":[{"message":{"content":"par","reasoning_content":"think"},"finish_reason":"length"}]}`,
			`{"id":"msg_x","type":"message","role":"assistant","model":"m","content":[{"type":"thinking","thinking":"think","signature":""},{"type":"text","text":"par"}],"stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}`},
		{"thinking blocks with signatures",
			`{"id":"x","model":"m","choices":[{"message":{"content":"a","thinking_blocks":[{"type":"thinking","thinking":"t","signature":"s"},{"type":"redacted_thinking","data":"r"}]},"finish_reason":"stop"}]}`,
			`{"id":"msg_x","type":"message","role":"assistant","model":"m","content":[{"type":"thinking","thinking":"t","signature":"s"},{"type":"redacted_thinking","data":"r"},{"type":"text","text":"a"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}`},
		{"content filter",
			`{"id":"x","model":"m","choices":[{"message":{"content":""},"finish_reason":"content_filter"}]}`,
			`{"id":"msg_x","type":"message","role":"assistant","model":"m","content":[],"stop_reason":"refusal","stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}`},
		{"refusal",
			`{"id":"x","model":"m","choices":[{"message":{"content":null,"refusal":"no"},"finish_reason":"stop"}]}`,
			`{"id":"msg_x","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"no"}],"stop_reason":"refusal","stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := FromCompletion([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(m)
			if g, w := compact(t, string(b)), compact(t, tt.want); g != w {
				t.Fatalf("got  %s\nwant %s", g, w)
			}
		})
	}
	if _, err := FromCompletion([]byte(`{"choices":[]}`)); err == nil {
		t.Fatal("a completion without choices was accepted")
	}
}

func render(evs []Event) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString(e.Name + " " + string(e.Data) + "\n")
	}
	return b.String()
}

// OpenAI chunks -> Messages events: thinking, text, two tool calls, usage.
func TestStreamEvents(t *testing.T) {
	s := NewStream("chat")
	chunks := []string{
		`{"id":"c1","model":"gpt","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`,
		`{"id":"c1","model":"gpt","choices":[{"index":0,"delta":{"reasoning_content":"hm"}}]}`,
		`{"id":"c1","model":"gpt","choices":[{"index":0,"delta":{"content":"Hel"}}]}`,
		`{"id":"c1","model":"gpt","choices":[{"index":0,"delta":{"content":"lo"}}]}`,
		`{"id":"c1","model":"gpt","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t1","type":"function","function":{"name":"get","arguments":""}}]}}]}`,
		`{"id":"c1","model":"gpt","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}}]}}]}`,
		`{"id":"c1","model":"gpt","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}}]}`,
		`{"id":"c1","model":"gpt","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"t2","type":"function","function":{"name":"put","arguments":"{}"}}]}}]}`,
		`{"id":"c1","model":"gpt","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`,
		`{"id":"c1","model":"gpt","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":5}}`,
	}
	var evs []Event
	for _, c := range chunks {
		e, err := s.Chunk([]byte(c))
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e...)
	}
	evs = append(evs, s.Finish()...)
	want := `message_start {"message":{"id":"msg_c1","type":"message","role":"assistant","model":"gpt","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}},"type":"message_start"}
ping {"type":"ping"}
content_block_start {"content_block":{"signature":"","thinking":"","type":"thinking"},"index":0,"type":"content_block_start"}
content_block_delta {"delta":{"thinking":"hm","type":"thinking_delta"},"index":0,"type":"content_block_delta"}
content_block_stop {"index":0,"type":"content_block_stop"}
content_block_start {"content_block":{"text":"","type":"text"},"index":1,"type":"content_block_start"}
content_block_delta {"delta":{"text":"Hel","type":"text_delta"},"index":1,"type":"content_block_delta"}
content_block_delta {"delta":{"text":"lo","type":"text_delta"},"index":1,"type":"content_block_delta"}
content_block_stop {"index":1,"type":"content_block_stop"}
content_block_start {"content_block":{"id":"t1","input":{},"name":"get","type":"tool_use"},"index":2,"type":"content_block_start"}
content_block_delta {"delta":{"partial_json":"{\"a\":","type":"input_json_delta"},"index":2,"type":"content_block_delta"}
content_block_delta {"delta":{"partial_json":"1}","type":"input_json_delta"},"index":2,"type":"content_block_delta"}
content_block_stop {"index":2,"type":"content_block_stop"}
content_block_start {"content_block":{"id":"t2","input":{},"name":"put","type":"tool_use"},"index":3,"type":"content_block_start"}
content_block_delta {"delta":{"partial_json":"{}","type":"input_json_delta"},"index":3,"type":"content_block_delta"}
content_block_stop {"index":3,"type":"content_block_stop"}
message_delta {"delta":{"stop_reason":"tool_use","stop_sequence":null},"type":"message_delta","usage":{"input_tokens":9,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":5}}
message_stop {"type":"message_stop"}
`
	if got := render(evs); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

// A whole completion (a worker that could not stream) becomes a complete
// event sequence; an empty answer still opens and closes the message.
func TestStreamWholeAndEmpty(t *testing.T) {
	s := NewStream("chat")
	evs, err := s.Chunk([]byte(`{"id":"msg_9","model":"claude","choices":[{"message":{"content":"all"},"finish_reason":"length"}],"usage":{"prompt_tokens":2,"completion_tokens":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	evs = append(evs, s.Finish()...)
	got := render(evs)
	for _, w := range []string{`"text":"all"`, `"stop_reason":"max_tokens"`, `"output_tokens":1`, "message_stop"} {
		if !strings.Contains(got, w) {
			t.Errorf("missing %s in\n%s", w, got)
		}
	}
	empty := render(NewStream("chat").Finish())
	if !strings.HasPrefix(empty, "message_start") || !strings.Contains(empty, "message_stop") || strings.Contains(empty, "content_block") {
		t.Errorf("empty stream:\n%s", empty)
	}
}

func TestErrorStatus(t *testing.T) {
	tests := []struct {
		in, status int
		typ        string
	}{
		{400, 400, ErrInvalidRequest}, {401, 401, ErrAuthentication}, {403, 403, ErrPermission}, {404, 404, ErrNotFound},
		{413, 413, ErrTooLarge}, {429, 429, ErrRateLimit}, {408, 408, ErrTimeout}, {504, 504, ErrTimeout},
		{502, 500, ErrAPI}, {500, 500, ErrAPI}, {503, 529, ErrOverloaded},
	}
	for _, tt := range tests {
		if s, typ := ErrorStatus(tt.in); s != tt.status || typ != tt.typ {
			t.Errorf("%d: got %d %s, want %d %s", tt.in, s, typ, tt.status, tt.typ)
		}
	}
	if got := string(ErrorBody(ErrNotFound, "a <b>")); got != `{"error":{"message":"a <b>","type":"not_found_error"},"type":"error"}` {
		t.Errorf("body %s", got)
	}
}

// The Anthropic adapter's reasoning chunks become a thinking block with its
// signature (and redacted blocks stay opaque).
func TestStreamThinkingSignature(t *testing.T) {
	s := NewStream("chat")
	var evs []Event
	for _, c := range []string{
		`{"id":"msg_1","model":"claude","choices":[{"index":0,"delta":{"reasoning_content":"hm"}}]}`,
		`{"id":"msg_1","model":"claude","choices":[{"index":0,"delta":{"thinking_blocks":[{"type":"thinking","signature":"sig"}]}}]}`,
		`{"id":"msg_1","model":"claude","choices":[{"index":0,"delta":{"thinking_blocks":[{"type":"redacted_thinking","data":"opaque"}]}}]}`,
		`{"id":"msg_1","model":"claude","choices":[{"index":0,"delta":{"content":"yes"},"finish_reason":"stop"}]}`,
	} {
		e, err := s.Chunk([]byte(c))
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e...)
	}
	got := render(append(evs, s.Finish()...))
	want := `message_start {"message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}},"type":"message_start"}
ping {"type":"ping"}
content_block_start {"content_block":{"signature":"","thinking":"","type":"thinking"},"index":0,"type":"content_block_start"}
content_block_delta {"delta":{"thinking":"hm","type":"thinking_delta"},"index":0,"type":"content_block_delta"}
content_block_delta {"delta":{"signature":"sig","type":"signature_delta"},"index":0,"type":"content_block_delta"}
content_block_stop {"index":0,"type":"content_block_stop"}
content_block_start {"content_block":{"data":"opaque","type":"redacted_thinking"},"index":1,"type":"content_block_start"}
content_block_stop {"index":1,"type":"content_block_stop"}
content_block_start {"content_block":{"text":"","type":"text"},"index":2,"type":"content_block_start"}
content_block_delta {"delta":{"text":"yes","type":"text_delta"},"index":2,"type":"content_block_delta"}
content_block_stop {"index":2,"type":"content_block_stop"}
message_delta {"delta":{"stop_reason":"end_turn","stop_sequence":null},"type":"message_delta","usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}
message_stop {"type":"message_stop"}
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

// FuzzToChat: any body either translates to a JSON object with messages,
// or fails with an *Error; nothing panics. Seeds cover every block type.
func FuzzToChat(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","max_tokens":5,"system":[{"type":"text","text":"s"}],"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"x"}},{"type":"document","source":{"type":"url","url":"u"}}]},{"role":"assistant","content":[{"type":"thinking","thinking":"t"},{"type":"tool_use","id":"a","name":"b","input":{"x":1}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"a","content":[{"type":"text","text":"r"}],"is_error":true}]}],"tools":[{"name":"b","input_schema":{}}],"tool_choice":{"type":"tool","name":"b"},"top_k":3,"stream":true}`,
		`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_use"}]}]}`,
		`{"model":null}`, `[]`, `{}`, `"x"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		chat, req, problems, err := ToChat(body)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || chat != nil || req != nil || problems != nil {
				t.Fatalf("error %v (%T) with results", err, err)
			}
			return
		}
		var out struct {
			Model    string            `json:"model"`
			Messages []json.RawMessage `json:"messages"`
		}
		if jerr := json.Unmarshal(chat, &out); jerr != nil || out.Model != req.Model || out.Model == "" {
			t.Fatalf("translation %s: %v", chat, jerr)
		}
		for _, p := range problems {
			if p.Field == "" || p.Msg == "" {
				t.Fatalf("problem without field or message: %+v", p)
			}
		}
	})
}
