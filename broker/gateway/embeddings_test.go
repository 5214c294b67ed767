package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/llm/mock"
)

// POST /v1/embeddings with the openai-go client: the OpenAI-compatible
// first target fails, the Gemini-kind fallback (same dimensions) answers,
// with one vector per input and usage.
func TestEmbeddingsFailOverToGemini(t *testing.T) {
	oa := startMock(t, mock.Options{})
	gm := startMock(t, mock.Options{})
	cfg := testenv.ParseConfig(t, fmt.Sprintf(`
providers:
  - {name: oa, kind: openai, base_url: "%s/v1", timeout: 20s}
  - {name: gm, kind: gemini, base_url: "%s", timeout: 20s}
models:
  - {provider: oa, name: emb-a, dimensions: 4, input_per_mtok: 0.02}
  - {provider: gm, name: emb-g, dimensions: 4, input_per_mtok: 0.01}
routes:
  - name: embed
    targets: [{provider: oa, model: emb-a}, {provider: gm, model: emb-g}]
    retries: 0
`, oa.URL(), gm.URL()))
	e := newEnv(t, cfg, nil)
	e.startPools()
	client := e.openai()
	ctx := natstest.Context(t)
	inputs := []string{"hello world", "second input"}
	params := openai.EmbeddingNewParams{Model: "embed", Dimensions: openai.Int(4),
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: inputs}}

	// Healthy: the first target answers.
	var resp *http.Response
	r, err := client.Embeddings.New(ctx, params, option.WithResponseInto(&resp))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Data) != 2 || resp.Header.Get("X-Switchboard-Provider") != "oa" || r.Usage.PromptTokens != 4 {
		t.Fatalf("embeddings %+v headers %v", r, resp.Header)
	}
	for i, d := range r.Data {
		if want := mock.Vector(inputs[i], 4); fmt.Sprint(d.Embedding) != fmt.Sprint(want) || d.Index != int64(i) {
			t.Errorf("data[%d] = %v, want %v", i, d.Embedding, want)
		}
	}

	// The first target fails: Gemini's batchEmbedContents answers.
	oa.SetFaults(alwaysFail(503))
	r, err = client.Embeddings.New(ctx, params, option.WithResponseInto(&resp))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("X-Switchboard-Provider") != "gm" || resp.Header.Get("X-Switchboard-Attempts") != "2" || len(r.Data) != 2 || r.Object != "list" {
		t.Fatalf("fallback %+v headers %v", r, resp.Header)
	}
	if fmt.Sprint(r.Data[1].Embedding) != fmt.Sprint(mock.Vector(inputs[1], 4)) || r.Usage.PromptTokens == 0 {
		t.Errorf("gemini vectors %+v", r)
	}
	got := gm.LastRequest()
	if !strings.HasSuffix(got.Path, "/models/emb-g:batchEmbedContents") || !strings.Contains(string(got.Body), `"outputDimensionality":4`) {
		t.Errorf("gemini request %s %s", got.Path, got.Body)
	}

	// Bad input: 400 naming the field; a stream: refused.
	a := e.must("POST", "/v1/embeddings", `{"model":"embed","input":[]}`, nil)
	if msg, _, _ := a.errorBody(t); a.status != 400 || !strings.Contains(msg, "input") {
		t.Errorf("empty input: %d %s", a.status, a.body)
	}
	a = e.must("POST", "/v1/embeddings", `{"model":"embed","input":"x","stream":true}`, nil)
	if a.status != 400 {
		t.Errorf("stream: %d %s", a.status, a.body)
	}
}

// A route mixing embedding dimensions is a config error naming the target.
func TestEmbeddingDimensionsMustAgree(t *testing.T) {
	_, err := config.Parse([]byte(`
providers:
  - {name: a, kind: mock, base_url: "http://127.0.0.1:1"}
  - {name: b, kind: mock, base_url: "http://127.0.0.1:1"}
models:
  - {provider: a, name: e1, dimensions: 768}
  - {provider: b, name: e2, dimensions: 1536}
routes:
  - name: embed
    targets: [{provider: a, model: e1}, {provider: b, model: e2}]
`))
	if err == nil || !strings.Contains(err.Error(), "routes[0].targets[1]") || !strings.Contains(err.Error(), "1536") {
		t.Fatalf("err = %v", err)
	}
}
