package mock

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"strings"
)

// DefaultDimensions is the vector length of the mock's embeddings when the
// request names none.
const DefaultDimensions = 8

// Embeddings shapes: OpenAI's POST /v1/embeddings and Gemini's
// :embedContent / :batchEmbedContents (Anthropic has no embeddings API).
// They share serveCall's pipeline (recording, keys, faults); the vectors are
// deterministic: the same text and dimensions give the same vector.
type (
	openAIEmbed struct{ openAI }
	geminiEmbed struct{ gemini }
)

// Vector is the mock's embedding of text in dims dimensions: values in
// [-1, 1] derived from an FNV hash of the text and the dimension index.
func Vector(text string, dims int) []float64 {
	out := make([]float64, dims)
	for i := range out {
		h := fnv.New64a()
		fmt.Fprintf(h, "%d\x00%s", i, text)
		out[i] = float64(h.Sum64()%20001)/10000 - 1
	}
	return out
}

func embedCall(model string, inputs []string, dims int) *call {
	if dims <= 0 {
		dims = DefaultDimensions
	}
	c := &call{model: model, texts: inputs, embed: inputs, dims: dims}
	if len(inputs) > 0 {
		c.prompt = inputs[len(inputs)-1]
	}
	return c
}

func (openAIEmbed) parse(_ *http.Request, body []byte) (*call, error) {
	var req struct {
		Model      string          `json:"model"`
		Input      json.RawMessage `json:"input"`
		Dimensions int             `json:"dimensions"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("invalid JSON body: %v", err)
	}
	var inputs []string
	var one string
	if json.Unmarshal(req.Input, &one) == nil {
		inputs = []string{one}
	} else if err := json.Unmarshal(req.Input, &inputs); err != nil {
		return embedCall(req.Model, nil, 0), errors.New("input: must be a string or an array of strings")
	}
	c := embedCall(req.Model, inputs, req.Dimensions)
	switch {
	case req.Model == "":
		return c, errors.New("model: is required")
	case len(inputs) == 0:
		return c, errors.New("input: must not be empty")
	case req.Dimensions < 0:
		return c, errors.New("dimensions: must be positive")
	}
	return c, nil
}

func (openAIEmbed) writeReply(w http.ResponseWriter, out *output) {
	data := make([]any, len(out.embed))
	for i, text := range out.embed {
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": Vector(text, out.dims)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data, "model": out.model,
		"usage": map[string]any{"prompt_tokens": out.inTokens, "total_tokens": out.inTokens}})
}

func (geminiEmbed) parse(r *http.Request, body []byte) (*call, error) {
	model, method := geminiPath(r.URL.Path)
	type one struct {
		Model   string        `json:"model"`
		Content geminiContent `json:"content"`
		Dims    int           `json:"outputDimensionality"`
	}
	var reqs []one
	switch method {
	case "embedContent":
		var req one
		if err := json.Unmarshal(body, &req); err != nil {
			return embedCall(model, nil, 0), fmt.Errorf("invalid JSON payload received: %v", err)
		}
		reqs = []one{req}
	case "batchEmbedContents":
		var req struct {
			Requests []one `json:"requests"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			return embedCall(model, nil, 0), fmt.Errorf("invalid JSON payload received: %v", err)
		}
		reqs = req.Requests
	}
	var inputs []string
	dims := 0
	for i, rq := range reqs {
		if rq.Model != "" && strings.TrimPrefix(rq.Model, "models/") != model {
			return embedCall(model, nil, 0), fmt.Errorf("requests[%d].model: %q does not match the path's model %q", i, rq.Model, model)
		}
		inputs = append(inputs, rq.Content.text())
		dims = rq.Dims
	}
	c := embedCall(model, inputs, dims)
	if len(inputs) == 0 {
		return c, errors.New("requests: at least one request is required")
	}
	c.batch = method == "batchEmbedContents"
	return c, nil
}

func (geminiEmbed) writeReply(w http.ResponseWriter, out *output) {
	vals := make([]any, len(out.embed))
	for i, text := range out.embed {
		vals[i] = map[string]any{"values": Vector(text, out.dims)}
	}
	if out.batch {
		writeJSON(w, http.StatusOK, map[string]any{"embeddings": vals})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"embedding": vals[0]})
}

// isGeminiEmbed reports whether p is a Gemini embeddings method.
func isGeminiEmbed(p string) bool {
	return strings.HasSuffix(p, ":embedContent") || strings.HasSuffix(p, ":batchEmbedContents")
}
