package pricing

import "encoding/json"

// CharsPerToken is the rough size of a token used to estimate input tokens
// from a request's size.
const CharsPerToken = 4

// EstimateTokens estimates a request's input tokens from the size of its
// messages and its output tokens from max_completion_tokens / max_tokens,
// or defaultOut when neither is set.
func EstimateTokens(request json.RawMessage, defaultOut int) (in, out int) {
	var body struct {
		Messages            json.RawMessage `json:"messages"`
		MaxTokens           *int            `json:"max_tokens"`
		MaxCompletionTokens *int            `json:"max_completion_tokens"`
	}
	_ = json.Unmarshal(request, &body)
	size := len(body.Messages)
	if size == 0 {
		size = len(request)
	}
	in = (size + CharsPerToken - 1) / CharsPerToken
	switch {
	case body.MaxCompletionTokens != nil && *body.MaxCompletionTokens > 0:
		out = *body.MaxCompletionTokens
	case body.MaxTokens != nil && *body.MaxTokens > 0:
		out = *body.MaxTokens
	default:
		out = defaultOut
	}
	return in, out
}
