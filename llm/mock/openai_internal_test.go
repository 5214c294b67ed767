package mock

import (
	"encoding/json"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"
)

// TestOpenAIReplyBytes pins the chat.completion body to the bytes the mock
// wrote when it encoded a map (keys sorted): consumers that cut or compare
// bodies (the request log keeps 200 bytes) see the same prefix.
func TestOpenAIReplyBytes(t *testing.T) {
	created := regexp.MustCompile(`"created":\d+`)
	for name, out := range map[string]*output{
		"text": {seq: 7, model: "m1", text: "mock <reply> \"to\" hi", finish: finishLength, inTokens: 3, outTokens: 5},
		"tool": {seq: 8, model: "m2", tool: &toolCall{name: "get", args: `{"a":1}`}, finish: finishTool, inTokens: 4, outTokens: 2},
	} {
		t.Run(name, func(t *testing.T) {
			msg := map[string]any{"role": "assistant", "content": out.text, "refusal": nil}
			if out.tool != nil {
				msg["content"] = nil
				msg["tool_calls"] = []any{map[string]any{
					"id": openAI{}.callID(out), "type": "function",
					"function": map[string]any{"name": out.tool.name, "arguments": out.tool.args},
				}}
			}
			want, err := json.Marshal(map[string]any{
				"id": openAI{}.id(out), "object": "chat.completion", "created": 1, "model": out.model,
				"system_fingerprint": "fp_mock",
				"choices": []any{map[string]any{
					"index": 0, "message": msg, "logprobs": nil, "finish_reason": openAIFinish(out.finish),
				}},
				"usage": map[string]any{"prompt_tokens": out.inTokens, "completion_tokens": out.outTokens, "total_tokens": out.inTokens + out.outTokens},
			})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			openAI{}.writeReply(rec, out)
			got := created.ReplaceAllString(rec.Body.String(), `"created":1`)
			if got != string(want)+"\n" {
				t.Errorf("body\n got %s\nwant %s", got, want)
			}
			if ct, cl := rec.Header().Get("Content-Type"), rec.Header().Get("Content-Length"); ct != "application/json" || cl != strconv.Itoa(rec.Body.Len()) {
				t.Errorf("Content-Type %q, Content-Length %q for %d bytes", ct, cl, rec.Body.Len())
			}
		})
	}
}
