package schemas

import "encoding/json"

// Result statuses.
const (
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// Result is the outcome of a job, published on llm.results.<batch>.<id>.
type Result struct {
	V        int             `json:"v"`
	ID       string          `json:"id"`
	Status   string          `json:"status"`
	Response json.RawMessage `json:"response,omitempty"`
	Error    *ErrorInfo      `json:"error,omitempty"`
	Route    string          `json:"route,omitempty"`
	Provider string          `json:"provider,omitempty"`
	Model    string          `json:"model,omitempty"`
	Attempts []Attempt       `json:"attempts"`
	Usage    Usage           `json:"usage"`
	// CostUSD is nil when a price for the serving model is unknown.
	CostUSD  *float64 `json:"cost_usd"`
	Timings  Timings  `json:"timings"`
	Metadata Metadata `json:"metadata,omitempty"`
}

// ErrorInfo describes why a job failed.
type ErrorInfo struct {
	Type       string `json:"type"`
	Message    string `json:"message"`
	StatusCode int    `json:"status_code,omitempty"`
	// Code is the upstream provider's own error code (e.g. OpenAI's
	// "context_length_exceeded"), when it gave one.
	Code string `json:"code,omitempty"`
}

// Usage is token usage normalised across providers.
type Usage struct {
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
}

// Timings are the job's latencies in milliseconds.
type Timings struct {
	QueuedMS   int64 `json:"queued_ms"`
	TTFTMS     int64 `json:"ttft_ms"`
	ProviderMS int64 `json:"provider_ms"`
	TotalMS    int64 `json:"total_ms"`
}

// Fallback reports whether the job was served by (or failed on) a target
// other than its first.
func (r *Result) Fallback() bool {
	for _, a := range r.Attempts {
		if a.Outcome == OutcomeFallback {
			return true
		}
	}
	return false
}

// Decode parses a Result and checks its version.
func DecodeResult(data []byte) (*Result, error) {
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, &FieldError{Field: "result", Msg: "invalid JSON: " + err.Error()}
	}
	if r.V != Version {
		return nil, &FieldError{Field: "v", Msg: "unsupported result version"}
	}
	return &r, nil
}
