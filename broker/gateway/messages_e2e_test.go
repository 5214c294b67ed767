package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/llm/mock"
)

// kindsConfig has an OpenAI-compatible provider "oa" and a Gemini-kind one
// "gm" on oa (the mock speaks every shape), and an Anthropic-kind provider
// "an" on an; routes try one kind, then another.
func kindsConfig(t testing.TB, oa, an *mock.Server, extra string) *config.Config {
	t.Helper()
	return testenv.ParseConfig(t, fmt.Sprintf(`
providers:
  - {name: oa, kind: openai, base_url: "%s/v1", timeout: 20s}
  - {name: an, kind: anthropic, base_url: "%s", timeout: 20s}
  - {name: gm, kind: gemini, base_url: "%s/v1beta", timeout: 20s}
models:
  - {provider: an, name: claude-x, input_per_mtok: 1, output_per_mtok: 2}
routes:
  - name: oa-first
    targets: [{provider: oa, model: gpt-x}, {provider: an, model: claude-x}]
    retries: 0
  - name: an-first
    targets: [{provider: an, model: claude-x}, {provider: oa, model: gpt-x}]
    retries: 0
  - name: an-only
    targets: [{provider: an, model: claude-x}]
    retries: 0
  - name: gm-first
    targets: [{provider: gm, model: gem-x}, {provider: an, model: claude-x}]
    retries: 0
`, oa.URL(), an.URL(), oa.URL())+extra)
}

func (e *env) anthropic(opts ...aoption.RequestOption) anthropic.Client {
	return anthropic.NewClient(append([]aoption.RequestOption{aoption.WithBaseURL(e.http.URL), aoption.WithAPIKey("unused"), aoption.WithMaxRetries(0)}, opts...)...)
}

func hiParams(model string) anthropic.MessageNewParams {
	return anthropic.MessageNewParams{
		Model:     anthropic.Model(model),
		MaxTokens: 100,
		System:    []anthropic.TextBlockParam{{Text: "be brief"}},
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
		Metadata:  anthropic.MetadataParam{UserID: anthropic.String("user-7")},
	}
}

func bodyOf(t *testing.T, r mock.RecordedRequest) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("recorded body %s: %v", r.Body, err)
	}
	return m
}

// The official Anthropic SDK against /v1/messages: the first target fails,
// so the answer comes from a fallback of the other kind, both ways; the
// Anthropic-kind target gets the caller's body unchanged but for its model.
func TestAnthropicSDKCreateFailsOverAcrossKinds(t *testing.T) {
	oa := startMock(t, mock.Options{})
	an := startMock(t, mock.Options{})
	e := newEnv(t, kindsConfig(t, oa, an, ""), nil)
	e.startPools()
	client := e.anthropic(aoption.WithHeader("anthropic-beta", "some-beta-2099"), aoption.WithHeader("anthropic-version", "2099-01-01"))
	ctx := natstest.Context(t)

	// OpenAI-compatible first target fails: Anthropic-kind fallback answers.
	oa.SetFaults(alwaysFail(503))
	var resp *http.Response
	msg, err := client.Messages.New(ctx, hiParams("oa-first"), aoption.WithResponseInto(&resp))
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Content) != 1 || msg.Content[0].Text != "mock reply to: hi" || msg.StopReason != anthropic.StopReasonEndTurn || msg.Usage.OutputTokens == 0 || msg.Role != "assistant" {
		t.Errorf("message %+v", msg)
	}
	if h := resp.Header; h.Get("X-Switchboard-Provider") != "an" || h.Get("X-Switchboard-Attempts") != "2" || h.Get("X-Switchboard-Job-Id") == "" {
		t.Errorf("headers %v", h)
	}
	got := an.LastRequest()
	sent := bodyOf(t, got)
	if sent["model"] != "claude-x" || sent["metadata"].(map[string]any)["user_id"] != "user-7" {
		t.Errorf("anthropic target got %s", got.Body)
	}
	if sys, ok := sent["system"].([]any); !ok || len(sys) != 1 { // the blocks as sent, not a translation
		t.Errorf("system not passed through: %s", got.Body)
	}
	if got.Header.Get("anthropic-version") != "2099-01-01" || got.Header.Get("anthropic-beta") != "some-beta-2099" {
		t.Errorf("anthropic headers %v", got.Header)
	}

	// Anthropic-kind first target fails: the OpenAI-compatible one answers
	// the translated request.
	oa.SetFaults(mock.Faults{})
	an.SetFaults(alwaysFail(529))
	msg, err = client.Messages.New(ctx, hiParams("an-first"), aoption.WithResponseInto(&resp))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Content[0].Text != "mock reply to: hi" || resp.Header.Get("X-Switchboard-Provider") != "oa" {
		t.Errorf("message %+v headers %v", msg, resp.Header)
	}
	sent = bodyOf(t, oa.LastRequest())
	msgs, _ := sent["messages"].([]any)
	if sent["model"] != "gpt-x" || len(msgs) != 2 || sent["user"] != "user-7" || sent["max_tokens"] != 100.0 {
		t.Errorf("openai target got %s", oa.LastRequest().Body)
	}
	if first, _ := msgs[0].(map[string]any); first["role"] != "system" || first["content"] != "be brief" {
		t.Errorf("system message %v", msgs[0])
	}
}

// Streaming with the SDK's accumulator: failover before the first event is
// invisible, and the events are Anthropic's from either kind of target.
func TestAnthropicSDKStream(t *testing.T) {
	oa := startMock(t, mock.Options{})
	an := startMock(t, mock.Options{})
	e := newEnv(t, kindsConfig(t, oa, an, ""), nil)
	e.startPools()
	client := e.anthropic()
	ctx := natstest.Context(t)

	for _, tc := range []struct{ route, failing, provider string }{{"oa-first", "oa", "an"}, {"an-first", "an", "oa"}} {
		t.Run(tc.route, func(t *testing.T) {
			oa.SetFaults(mock.Faults{})
			an.SetFaults(mock.Faults{})
			map[string]*mock.Server{"oa": oa, "an": an}[tc.failing].SetFaults(alwaysFail(500))
			var resp *http.Response
			stream := client.Messages.NewStreaming(ctx, hiParams(tc.route), aoption.WithResponseInto(&resp))
			var acc anthropic.Message
			var types []string
			for stream.Next() {
				ev := stream.Current()
				types = append(types, ev.Type)
				if err := acc.Accumulate(ev); err != nil {
					t.Fatalf("accumulate: %v", err)
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatalf("stream: %v", err)
			}
			if len(acc.Content) != 1 || acc.Content[0].Text != "mock reply to: hi" || acc.StopReason != anthropic.StopReasonEndTurn || acc.Usage.OutputTokens == 0 {
				t.Errorf("accumulated %+v", acc)
			}
			if types[0] != "message_start" || types[len(types)-1] != "message_stop" || types[len(types)-2] != "message_delta" || !contains(types, "content_block_delta") {
				t.Errorf("event types %v", types)
			}
			if resp.Header.Get("X-Switchboard-Provider") != tc.provider || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Errorf("headers %v", resp.Header)
			}
		})
	}

	// On the wire: named events (the SDK hides ping), the message's id and
	// model first, usage and the stop reason in message_delta.
	an.SetFaults(mock.Faults{})
	a := e.must("POST", "/v1/messages", `{"model":"an-only","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, nil)
	lines := strings.Split(strings.TrimSpace(string(a.body)), "\n\n")
	if len(lines) < 6 || !strings.HasPrefix(lines[0], "event: message_start\ndata: {") || !strings.HasPrefix(lines[1], "event: ping\ndata: {\"type\":\"ping\"}") ||
		!strings.HasPrefix(lines[len(lines)-1], "event: message_stop\n") || lines[len(lines)-2] != ": x-switchboard-attempts: 1" ||
		!strings.Contains(lines[len(lines)-3], `"stop_reason":"end_turn"`) ||
		!strings.Contains(lines[len(lines)-3], `"output_tokens":4`) || !strings.Contains(lines[0], `"model":"claude-x"`) || !strings.Contains(lines[0], `"id":"msg_`) {
		t.Errorf("raw stream:\n%s", a.body)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A tool round trip and an image block through both kinds of target.
func TestAnthropicSDKToolsAndImages(t *testing.T) {
	oa := startMock(t, mock.Options{ToolArguments: json.RawMessage(`{"city":"Paris"}`)})
	an := startMock(t, mock.Options{ToolArguments: json.RawMessage(`{"city":"Paris"}`)})
	e := newEnv(t, kindsConfig(t, oa, an, ""), nil)
	e.startPools()
	client := e.anthropic()
	ctx := natstest.Context(t)
	tool := anthropic.ToolUnionParam{OfTool: &anthropic.ToolParam{Name: "get_weather", Description: anthropic.String("weather"),
		InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}}}}

	for _, tc := range []struct{ route, target string }{{"oa-first", "oa"}, {"an-first", "an"}, {"gm-first", "gm"}} {
		t.Run(tc.target, func(t *testing.T) {
			srv := map[string]*mock.Server{"oa": oa, "an": an, "gm": oa}[tc.target]
			p := hiParams(tc.route)
			p.Tools = []anthropic.ToolUnionParam{tool}
			p.ToolChoice = anthropic.ToolChoiceUnionParam{OfAny: &anthropic.ToolChoiceAnyParam{}}
			msg, err := client.Messages.New(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if msg.StopReason != anthropic.StopReasonToolUse || len(msg.Content) != 1 || msg.Content[0].Type != "tool_use" ||
				msg.Content[0].Name != "get_weather" || string(msg.Content[0].Input) != `{"city":"Paris"}` || msg.Content[0].ID == "" {
				t.Fatalf("tool call %+v", msg.Content)
			}
			// Send the result back, with an image, and no more tools.
			p.Messages = append(p.Messages, msg.ToParam(), anthropic.NewUserMessage(
				anthropic.NewToolResultBlock(msg.Content[0].ID, "18C and sunny", false),
				anthropic.NewImageBlockBase64("image/png", "iVBORw0KGgo="),
				anthropic.NewTextBlock("and this picture?")))
			p.ToolChoice = anthropic.ToolChoiceUnionParam{OfNone: &anthropic.ToolChoiceNoneParam{}}
			msg2, err := client.Messages.New(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if msg2.StopReason != anthropic.StopReasonEndTurn || msg2.Content[0].Text == "" {
				t.Errorf("answer %+v", msg2)
			}
			body := string(srv.LastRequest().Body)
			var want []string
			switch tc.target {
			case "gm":
				want = []string{`"systemInstruction"`, `"functionCall":{"name":"get_weather","args":{"city":"Paris"}}`,
					`"functionResponse":{"name":"get_weather"`, `"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}`, `"mode":"NONE"`}
				if got := srv.LastRequest(); got.Shape != mock.ShapeGemini || got.Model != "gem-x" {
					t.Errorf("gemini target got %s %s", got.Shape, got.Model)
				}
			case "oa":
				want = []string{`"role":"tool"`, `"tool_call_id":"` + msg.Content[0].ID + `"`, `"content":"18C and sunny"`,
					`"url":"data:image/png;base64,iVBORw0KGgo="`, `"arguments":"{\"city\":\"Paris\"}"`, `"tool_choice":"none"`}
			default:
				want = []string{`"type":"tool_result"`, `"tool_use_id":"` + msg.Content[0].ID + `"`, `"media_type":"image/png"`, `"type":"tool_use"`}
			}
			for _, w := range want {
				if !strings.Contains(body, w) {
					t.Errorf("%s target's request lacks %s: %s", tc.target, w, body)
				}
			}
		})
	}
}

// Errors come in Anthropic's shape with Anthropic's statuses; a request a
// non-Anthropic target cannot take is refused with a 400 naming the part,
// and goes through when every target is Anthropic-kind.
func TestAnthropicErrors(t *testing.T) {
	oa := startMock(t, mock.Options{})
	an := startMock(t, mock.Options{})
	e := newEnv(t, kindsConfig(t, oa, an, ""), nil)
	e.startPools()
	client := e.anthropic()
	ctx := natstest.Context(t)

	apiErr := func(err error) *anthropic.Error {
		t.Helper()
		var ae *anthropic.Error
		if !errors.As(err, &ae) {
			t.Fatalf("error %v is not an API error", err)
		}
		return ae
	}
	_, err := client.Messages.New(ctx, hiParams("nope"))
	if ae := apiErr(err); ae.StatusCode != 404 || !strings.Contains(ae.RawJSON(), `"type":"not_found_error"`) || !strings.Contains(ae.RawJSON(), `"type":"error"`) {
		t.Errorf("unknown model: %d %s", ae.StatusCode, ae.RawJSON())
	}

	p := hiParams("oa-first")
	topK := aoption.WithJSONSet("top_k", 5)
	_, err = client.Messages.New(ctx, p, topK)
	if ae := apiErr(err); ae.StatusCode != 400 || !strings.Contains(ae.RawJSON(), "invalid_request_error") || !strings.Contains(ae.RawJSON(), "top_k") || !strings.Contains(ae.RawJSON(), "oa/gpt-x") {
		t.Errorf("top_k to an OpenAI target: %d %s", ae.StatusCode, ae.RawJSON())
	}
	if oa.Stats().Requests != 0 || an.Stats().Requests != 0 {
		t.Errorf("a refused request reached a provider")
	}
	p.Model = "an-only"
	if _, err := client.Messages.New(ctx, p, topK); err != nil {
		t.Fatalf("top_k to an Anthropic-only route: %v", err)
	}
	if !strings.Contains(string(an.LastRequest().Body), `"top_k":5`) {
		t.Errorf("top_k not passed through: %s", an.LastRequest().Body)
	}

	an.SetFaults(alwaysFail(500))
	oa.SetFaults(alwaysFail(500))
	_, err = client.Messages.New(ctx, hiParams("an-first"))
	if ae := apiErr(err); ae.StatusCode != 500 || !strings.Contains(ae.RawJSON(), `"api_error"`) || !strings.Contains(ae.RawJSON(), "after 2 attempts") {
		t.Errorf("all targets failed: %d %s", ae.StatusCode, ae.RawJSON())
	}
	// Failing mid-way through a stream that has not started: the same.
	stream := client.Messages.NewStreaming(ctx, hiParams("an-first"))
	for stream.Next() {
	}
	if ae := apiErr(stream.Err()); ae.StatusCode != 500 {
		t.Errorf("failed stream: %d %s", ae.StatusCode, ae.RawJSON())
	}

	// A malformed body: 400 naming the field.
	a := e.must("POST", "/v1/messages", `{"model":"oa-first","messages":[{"role":"user","content":"x"}]}`, nil)
	if a.status != 400 || !strings.Contains(string(a.body), `"max_tokens: is required"`) || !strings.Contains(string(a.body), `"invalid_request_error"`) {
		t.Errorf("missing max_tokens: %d %s", a.status, a.body)
	}
	// count_tokens has no real count: 404, so callers use their own estimate.
	_, err = client.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{Model: "an-only",
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}})
	if ae := apiErr(err); ae.StatusCode != 404 || !strings.Contains(ae.RawJSON(), "not_found_error") {
		t.Errorf("count_tokens: %d %s", ae.StatusCode, ae.RawJSON())
	}
}

// The gateway key comes as x-api-key (the Anthropic SDKs) or Bearer; a
// wrong one is a 401 in Anthropic's shape.
func TestAnthropicAPIKey(t *testing.T) {
	oa := startMock(t, mock.Options{})
	an := startMock(t, mock.Options{})
	cfg := kindsConfig(t, oa, an, `
gateway:
  api_keys:
    - {key_env: SB_KEY_A, tenant: team-a}
`)
	e := newEnv(t, cfg, func(string) string { return "sk-gw-a" })
	e.startPools()
	ctx := natstest.Context(t)
	withKey := e.anthropic(aoption.WithAPIKey("sk-gw-a"))
	if _, err := withKey.Messages.New(ctx, hiParams("an-only")); err != nil {
		t.Fatalf("x-api-key: %v", err)
	}
	bearer := e.must("POST", "/v1/messages", `{"model":"an-only","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`,
		map[string]string{"Authorization": "Bearer sk-gw-a"})
	if bearer.status != 200 {
		t.Fatalf("bearer: %d %s", bearer.status, bearer.body)
	}
	wrong := e.anthropic(aoption.WithAPIKey("wrong"))
	_, err := wrong.Messages.New(ctx, hiParams("an-only"))
	var ae *anthropic.Error
	if !errors.As(err, &ae) || ae.StatusCode != 401 || !strings.Contains(ae.RawJSON(), "authentication_error") {
		t.Fatalf("wrong key: %v", err)
	}
	if strings.Contains(string(an.LastRequest().Body), "sk-gw") || an.LastRequest().Header.Get("x-api-key") == "sk-gw-a" {
		t.Errorf("the gateway key reached the provider")
	}
}

// GET /v1/models/{id} answers every route and provider/model in OpenAI's
// shape (openai-go's Models.Get), 404 otherwise.
func TestModelByID(t *testing.T) {
	primary := startMock(t, mock.Options{})
	e := newEnv(t, stackConfig(t, primary, primary, ""), nil)
	client := e.openai()
	ctx := natstest.Context(t)
	for id, owner := range map[string]string{"chat": "switchboard", "primary/m1": "primary", "backup/m2": "backup"} {
		m, err := client.Models.Get(ctx, id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if m.ID != id || m.OwnedBy != owner || m.Object != "model" {
			t.Errorf("%s: %+v", id, m)
		}
	}
	a := e.must("GET", "/v1/models/primary/nope", "", nil)
	if msg, typ, _ := a.errorBody(t); a.status != 404 || typ != "invalid_request_error" || !strings.Contains(msg, "primary/nope") {
		t.Errorf("unknown model: %d %s", a.status, a.body)
	}
}

// nodeSDK finds node and the node_modules holding @anthropic-ai/sdk
// ($SWITCHBOARD_NODE_MODULES, default .ci/node/node_modules, which .ci/run
// installs). It fails the test under CI=true when either is missing, else
// skips it.
func nodeSDK(t *testing.T) (node, modules string) {
	t.Helper()
	modules = os.Getenv("SWITCHBOARD_NODE_MODULES")
	if modules == "" {
		modules, _ = filepath.Abs("../../.ci/node/node_modules")
	}
	node, err := exec.LookPath("node")
	_, serr := os.Stat(filepath.Join(modules, "@anthropic-ai", "sdk", "package.json"))
	if err == nil && serr == nil {
		return node, modules
	}
	why := "node not installed (apt-get install -y nodejs npm)"
	if err == nil {
		why = "@anthropic-ai/sdk not installed (npm install --prefix .ci/node)"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(why + "; CI=true requires it")
	}
	t.Skip(why)
	return "", ""
}

// toolTrip is what anthropic_sdk.js reports of a tool round trip.
type toolTrip struct {
	Stop, Tool, Answer string
	AnswerStop         string `json:"answer_stop"`
	Input              map[string]string
}

// The official Anthropic TypeScript SDK: create, stream, a tool round trip
// with an image block and an error, each with the first target failing so
// the answer comes from a fallback of the other kind.
func TestAnthropicTypeScriptSDK(t *testing.T) {
	node, modules := nodeSDK(t)
	oa := startMock(t, mock.Options{ModelFaults: map[string]mock.Faults{"gpt-bad": alwaysFail(503)}, ToolArguments: json.RawMessage(`{"city":"Paris"}`)})
	an := startMock(t, mock.Options{ModelFaults: map[string]mock.Faults{"claude-bad": alwaysFail(529)}, ToolArguments: json.RawMessage(`{"city":"Paris"}`)})
	e := newEnv(t, kindsConfig(t, oa, an, `
  - name: to-an
    targets: [{provider: oa, model: gpt-bad}, {provider: an, model: claude-x}]
    retries: 0
  - name: to-oa
    targets: [{provider: an, model: claude-bad}, {provider: oa, model: gpt-x}]
    retries: 0
`), nil)
	e.startPools()
	ctx, cancel := context.WithTimeout(natstest.Context(t), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "testdata/anthropic_sdk.js")
	cmd.Env = append(os.Environ(), "BASE_URL="+e.http.URL, "NODE_PATH="+modules)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var out struct {
		Create struct {
			Text, Stop, Provider, Attempts string
			OutputTokens                   int `json:"output_tokens"`
		}
		Stream struct {
			Text, Stop, First, Last string
			OutputTokens            int `json:"output_tokens"`
		}
		ToolsAn toolTrip `json:"tools_an"`
		ToolsOa toolTrip `json:"tools_oa"`
		Error   struct {
			Status        int
			Type, Message string
		}
	}
	if err := json.Unmarshal(outb, &out); err != nil {
		t.Fatalf("output %s: %v", outb, err)
	}
	if c := out.Create; c.Text != "mock reply to: hi" || c.Stop != "end_turn" || c.OutputTokens == 0 || c.Provider != "an" || c.Attempts != "2" {
		t.Errorf("create %+v", c)
	}
	if s := out.Stream; s.Text != "mock reply to: hi" || s.Stop != "end_turn" || s.OutputTokens == 0 || s.First != "message_start" || s.Last != "message_stop" {
		t.Errorf("stream %+v", s)
	}
	for name, tr := range map[string]toolTrip{"to-an": out.ToolsAn, "to-oa": out.ToolsOa} {
		if tr.Stop != "tool_use" || tr.Tool != "get_weather" || tr.Input["city"] != "Paris" || tr.Answer == "" || tr.AnswerStop != "end_turn" {
			t.Errorf("%s tools %+v", name, tr)
		}
	}
	if !strings.Contains(string(an.LastRequest().Body), `"media_type":"image/png"`) {
		t.Errorf("anthropic target's last request %s", an.LastRequest().Body)
	}
	if !strings.Contains(string(oa.LastRequest().Body), `"url":"data:image/png;base64,iVBORw0KGgo="`) {
		t.Errorf("openai target's last request %s", oa.LastRequest().Body)
	}
	if er := out.Error; er.Status != 404 || er.Type != "not_found_error" || !strings.Contains(er.Message, "no-such-route") {
		t.Errorf("error %+v", er)
	}
}

// A stream carries the job id, provider and model as headers before the
// first byte, and the attempts count in an SSE comment before its end
// ([DONE]); SDKs ignore the comment.
func TestStreamAttemptsComment(t *testing.T) {
	primary := startMock(t, mock.Options{Faults: alwaysFail(500)})
	backup := startMock(t, mock.Options{})
	e := newEnv(t, stackConfig(t, primary, backup, ""), nil)
	e.startPools()
	a := e.must("POST", "/v1/chat/completions", `{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}`, nil)
	if a.status != 200 || !strings.HasSuffix(string(a.body), ": x-switchboard-attempts: 2\n\ndata: [DONE]\n\n") {
		t.Fatalf("stream %d:\n%s", a.status, a.body)
	}
	if a.header.Get("X-Switchboard-Provider") != "backup" || a.header.Get("X-Switchboard-Model") != "m2" || a.header.Get("X-Switchboard-Job-Id") == "" {
		t.Errorf("headers %v", a.header)
	}
}
