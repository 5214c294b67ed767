package gemini

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/llm/internal/oai"
	"github.com/switchboard-llm/switchboard/schemas"
)

var _ llm.Embedder = (*Client)(nil)

// embedRequest is one request of batchEmbedContents.
type embedRequest struct {
	Model                string  `json:"model"`
	Content              content `json:"content"`
	OutputDimensionality int     `json:"outputDimensionality,omitempty"`
}

// Embed makes one batchEmbedContents call for an OpenAI embeddings body
// (input, dimensions as outputDimensionality) and answers OpenAI's
// embeddings list. Gemini reports no token count for embeddings: the input
// tokens are estimated as the inputs' bytes / 4 (as for a cut stream).
func (c *Client) Embed(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	var in struct {
		Dimensions int `json:"dimensions"`
	}
	if err := json.Unmarshal(req.Body, &in); err != nil {
		return nil, oai.InvalidRequest(c.name, "request: %v", err)
	}
	inputs, err := schemas.EmbeddingInputs(req.Body)
	if err != nil {
		return nil, oai.InvalidRequest(c.name, "%v", err)
	}
	model := "models/" + strings.TrimPrefix(req.Model, "models/")
	var body struct {
		Requests []embedRequest `json:"requests"`
	}
	var tokens int64
	for _, text := range inputs {
		body.Requests = append(body.Requests, embedRequest{Model: model, Content: content{Parts: []part{{Text: text}}}, OutputDimensionality: in.Dimensions})
		tokens += int64(len(text)+3) / 4
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, oai.InvalidRequest(c.name, "encoding request: %v", err)
	}
	resp, err := c.post(ctx, c.url(req.Model, "batchEmbedContents"), b)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := oai.ReadBody(ctx, c.name, resp, oai.MaxBody)
	if err != nil {
		return nil, err
	}
	var out struct {
		Embeddings []struct {
			Values []float64 `json:"values"`
		} `json:"embeddings"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, oai.BadResponse(c.name, resp.StatusCode, "unparseable embeddings body: %s", oai.Snippet(raw, c.key))
	}
	if len(out.Embeddings) != len(inputs) {
		return nil, oai.BadResponse(c.name, resp.StatusCode, "%d embeddings for %d inputs", len(out.Embeddings), len(inputs))
	}
	type item struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float64 `json:"embedding"`
	}
	list := struct {
		Object string `json:"object"`
		Data   []item `json:"data"`
		Model  string `json:"model"`
		Usage  struct {
			PromptTokens int64 `json:"prompt_tokens"`
			TotalTokens  int64 `json:"total_tokens"`
		} `json:"usage"`
	}{Object: "list", Model: strings.TrimPrefix(req.Model, "models/")}
	for i, e := range out.Embeddings {
		list.Data = append(list.Data, item{Object: "embedding", Index: i, Embedding: e.Values})
	}
	list.Usage.PromptTokens, list.Usage.TotalTokens = tokens, tokens
	return &llm.Response{Body: oai.Marshal(list), Usage: schemas.Usage{InputTokens: tokens}, StatusCode: resp.StatusCode}, nil
}
