package mock_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/llm/mock"
)

// OpenAI's embeddings shape, checked with the official openai-go client:
// one deterministic vector per input, usage, the requested dimensions.
func TestEmbeddingsOpenAIShape(t *testing.T) {
	srv := testenv.StartMock(t, mock.Options{APIKey: "k"})
	ctx := natstest.Context(t)
	client := openai.NewClient(option.WithBaseURL(srv.URL()+"/v1"), option.WithAPIKey("k"), option.WithMaxRetries(0))
	r, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "emb", Dimensions: openai.Int(5),
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a b", "c"}}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Object != "list" || r.Model != "emb" || len(r.Data) != 2 || r.Usage.PromptTokens != 3 || r.Usage.TotalTokens != 3 {
		t.Fatalf("answer %+v", r)
	}
	if fmt.Sprint(r.Data[0].Embedding) != fmt.Sprint(mock.Vector("a b", 5)) || len(r.Data[1].Embedding) != 5 || r.Data[1].Index != 1 {
		t.Errorf("vectors %+v", r.Data)
	}
	r2, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "emb", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("a b")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r2.Data) != 1 || len(r2.Data[0].Embedding) != mock.DefaultDimensions {
		t.Errorf("default dimensions %+v", r2.Data)
	}
	// Faults and validation use the vendor's error shape.
	srv.SetFaults(mock.Faults{FailFirst: 1, ErrorStatus: 429})
	status, _, body := post(t, ctx, srv.URL()+"/v1/embeddings", map[string]string{"Authorization": "Bearer k"}, `{"model":"emb","input":"x"}`)
	if status != 429 || !strings.Contains(string(body), `"error"`) {
		t.Errorf("fault: %d %s", status, body)
	}
	status, _, body = post(t, ctx, srv.URL()+"/v1/embeddings", map[string]string{"Authorization": "Bearer k"}, `{"model":"emb","input":[]}`)
	if status != 400 || !strings.Contains(string(body), "input") {
		t.Errorf("empty input: %d %s", status, body)
	}
	if st := srv.Stats(); st.OpenAI != 4 || st.Succeeded != 2 || st.Errors != 1 || st.BadRequests != 1 {
		t.Errorf("stats %+v", st)
	}
}

// Gemini's embedContent and batchEmbedContents shapes.
func TestEmbeddingsGeminiShape(t *testing.T) {
	srv := testenv.StartMock(t, mock.Options{APIKey: "g"})
	ctx := natstest.Context(t)
	hdr := map[string]string{"x-goog-api-key": "g"}
	status, _, body := post(t, ctx, srv.URL()+"/v1beta/models/text-embedding-004:embedContent", hdr,
		`{"content":{"parts":[{"text":"hello"}]},"outputDimensionality":3}`)
	var one struct {
		Embedding struct{ Values []float64 }
	}
	if err := json.Unmarshal(body, &one); status != 200 || err != nil || fmt.Sprint(one.Embedding.Values) != fmt.Sprint(mock.Vector("hello", 3)) {
		t.Fatalf("embedContent: %d %s", status, body)
	}
	status, _, body = post(t, ctx, srv.URL()+"/v1beta/models/text-embedding-004:batchEmbedContents", hdr,
		`{"requests":[{"model":"models/text-embedding-004","content":{"parts":[{"text":"a"}]}},{"model":"models/text-embedding-004","content":{"parts":[{"text":"b"}]}}]}`)
	var batch struct {
		Embeddings []struct{ Values []float64 }
	}
	if err := json.Unmarshal(body, &batch); status != 200 || err != nil || len(batch.Embeddings) != 2 || fmt.Sprint(batch.Embeddings[1].Values) != fmt.Sprint(mock.Vector("b", mock.DefaultDimensions)) {
		t.Fatalf("batchEmbedContents: %d %s", status, body)
	}
	status, _, body = post(t, ctx, srv.URL()+"/v1beta/models/text-embedding-004:batchEmbedContents", hdr,
		`{"requests":[{"model":"models/other","content":{"parts":[{"text":"a"}]}}]}`)
	if status != 400 || !strings.Contains(string(body), "requests[0].model") {
		t.Errorf("mismatched model: %d %s", status, body)
	}
	status, _, body = post(t, ctx, srv.URL()+"/v1beta/models/text-embedding-004:embedContent", map[string]string{"x-goog-api-key": "wrong"}, `{"content":{"parts":[{"text":"a"}]}}`)
	if status != 401 || !strings.Contains(string(body), `"status"`) {
		t.Errorf("wrong key: %d %s", status, body)
	}
	if rec := srv.LastRequest(); rec.Shape != mock.ShapeGemini || rec.Model != "text-embedding-004" {
		t.Errorf("recorded %+v", rec)
	}
}
