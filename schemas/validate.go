package schemas

import (
	"bytes"
	"encoding/json"
	"encoding/json/jsontext"
	jsonv2 "encoding/json/v2"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// DefaultMaxJobBytes bounds an encoded job (the request body dominates).
const DefaultMaxJobBytes = 1 << 20

// NewJobID returns a fresh UUIDv7 job id.
func NewJobID() string { return uuid.Must(uuid.NewV7()).String() }

// DecodeJob parses a Job strictly enough to name what is wrong: broken JSON,
// an unsupported version, or a field of the wrong type.
func DecodeJob(data []byte, maxBytes int) (*Job, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxJobBytes
	}
	if len(data) > maxBytes {
		return nil, &FieldError{Field: "job", Msg: fmt.Sprintf("payload is %d bytes, over the limit of %d", len(data), maxBytes)}
	}
	var j Job
	if err := json.Unmarshal(data, &j); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, &FieldError{Field: te.Field, Msg: "must be " + te.Type.String() + ", got JSON " + te.Value}
		}
		var pe *time.ParseError
		if errors.As(err, &pe) {
			return nil, &FieldError{Field: "deadline", Msg: "must be an RFC 3339 time: " + pe.Error()}
		}
		return nil, &FieldError{Field: "job", Msg: "invalid JSON: " + err.Error()}
	}
	if j.V == 0 {
		j.V = Version
	}
	return &j, nil
}

// Prepare fills the defaults of a freshly submitted job (version, id,
// created_at, priority) and validates it.
func (j *Job) Prepare(now time.Time) error {
	if j.V == 0 {
		j.V = Version
	}
	if j.ID == "" {
		j.ID = NewJobID()
	}
	// The broker owns the admission time (queue time, and the completion
	// row's ts, derive from it): a job that has not run yet gets now, a
	// producer's value is replaced; a job already under way keeps its own.
	if j.CreatedAt.IsZero() || (j.Hop == 0 && len(j.Attempts) == 0) {
		j.CreatedAt = now.UTC()
	}
	if j.CreatedAt.Year() < 2000 || j.CreatedAt.After(now.Add(time.Hour)) {
		return &FieldError{Field: "created_at", Msg: "is not a plausible admission time: " + j.CreatedAt.Format(time.RFC3339)}
	}
	if j.Priority == "" {
		j.Priority = PriorityNormal
	}
	return j.Validate()
}

// Validate checks a job and returns a *FieldError naming the first bad field.
func (j *Job) Validate() error {
	if j.V != Version {
		return &FieldError{Field: "v", Msg: fmt.Sprintf("unsupported version %d (want %d)", j.V, Version)}
	}
	if j.ID == "" {
		return &FieldError{Field: "id", Msg: "is required"}
	}
	if err := j.CheckIdentifiers(); err != nil {
		return err
	}
	if j.Model != "" && !strings.Contains(j.Model, "/") {
		return &FieldError{Field: "model", Msg: fmt.Sprintf("%s must be provider/model; a route is named with \"route\" (a model without '/' alone is read as a route name)", Quote(j.Model))}
	}
	switch j.Priority {
	case "", PriorityHigh, PriorityNormal, PriorityLow:
	default:
		return &FieldError{Field: "priority", Msg: fmt.Sprintf("%s must be high, normal or low", Quote(j.Priority))}
	}
	if len(j.Request) == 0 || bytes.Equal(bytes.TrimSpace(j.Request), []byte("null")) {
		return &FieldError{Field: "request", Msg: "is required (an OpenAI chat-completions body)"}
	}
	if j.Kind == "" && wellFormedChat(j.Request) {
		return j.Native.validate()
	}
	return j.validateRequest()
}

// chatShape is what Validate checks of a chat body: each message's role.
type chatShape struct {
	Messages []struct {
		Role string `json:"role"`
	} `json:"messages"`
}

// chatShapeOptions are encoding/json's leniencies that wellFormedChat keeps.
var chatShapeOptions = jsonv2.JoinOptions(jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))

// wellFormedChat reports, in one pass over body, that it is a JSON object
// whose "messages" is a non-empty array of objects with a non-empty string
// "role": what validateRequest accepts of a chat body. json/v2 matches the
// names exactly, as validateRequest's lookups do, and, like encoding/json,
// takes the last of duplicate names and allows invalid UTF-8. False leaves
// the verdict, and the message naming the problem, to validateRequest.
func wellFormedChat(body []byte) bool {
	var shape chatShape
	if jsonv2.Unmarshal(body, &shape, chatShapeOptions) != nil || len(shape.Messages) == 0 {
		return false
	}
	for _, m := range shape.Messages {
		if m.Role == "" {
			return false
		}
	}
	return true
}

// validateRequest checks the request body member by member and names
// the first problem.
func (j *Job) validateRequest() error {
	var body map[string]json.RawMessage
	if err := json.Unmarshal(j.Request, &body); err != nil || body == nil {
		return &FieldError{Field: "request", Msg: "must be a JSON object (an OpenAI chat-completions body)"}
	}
	switch j.Kind {
	case "":
	case KindEmbeddings:
		if j.Native != nil {
			return &FieldError{Field: "native", Msg: "is for chat requests only"}
		}
		return validateEmbeddings(body)
	default:
		return &FieldError{Field: "kind", Msg: fmt.Sprintf("%s must be empty (a chat completion) or %q", Quote(j.Kind), KindEmbeddings)}
	}
	raw, ok := body["messages"]
	if !ok || isJSONNull(raw) {
		return &FieldError{Field: "request.messages", Msg: "must hold at least one message"}
	}
	var messages []json.RawMessage
	if err := json.Unmarshal(raw, &messages); err != nil {
		return &FieldError{Field: "request.messages", Msg: "must be an array of messages, like [{\"role\":\"user\",\"content\":\"hi\"}]"}
	}
	if len(messages) == 0 {
		return &FieldError{Field: "request.messages", Msg: "must hold at least one message"}
	}
	for i, m := range messages {
		var msg struct {
			Role string `json:"role"`
		}
		if err := json.Unmarshal(m, &msg); err != nil || msg.Role == "" {
			return &FieldError{Field: fmt.Sprintf("request.messages[%d].role", i), Msg: "is required"}
		}
	}
	return j.Native.validate()
}

// validateEmbeddings checks an embeddings body: input is a non-empty string
// or a non-empty array of non-empty strings.
func validateEmbeddings(body map[string]json.RawMessage) error {
	raw, ok := body["input"]
	if !ok || isJSONNull(raw) {
		return &FieldError{Field: "request.input", Msg: "is required (a string or an array of strings)"}
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		if one == "" {
			return &FieldError{Field: "request.input", Msg: "must not be empty"}
		}
		return nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return &FieldError{Field: "request.input", Msg: "must be a string or an array of strings (token arrays are not supported)"}
	}
	if len(many) == 0 {
		return &FieldError{Field: "request.input", Msg: "must hold at least one string"}
	}
	for i, s := range many {
		if s == "" {
			return &FieldError{Field: fmt.Sprintf("request.input[%d]", i), Msg: "must not be empty"}
		}
	}
	return nil
}

// EmbeddingInputs returns an embeddings body's input as a list of strings
// (a valid body, see Validate).
func EmbeddingInputs(body json.RawMessage) ([]string, error) {
	var b struct {
		Input json.RawMessage `json:"input"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, &FieldError{Field: "request", Msg: "must be a JSON object"}
	}
	var one string
	if json.Unmarshal(b.Input, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(b.Input, &many); err != nil {
		return nil, &FieldError{Field: "request.input", Msg: "must be a string or an array of strings"}
	}
	return many, nil
}

// validate checks a native request: a known format, a JSON object body and
// only the vendor headers that may be forwarded.
func (n *NativeRequest) validate() error {
	if n == nil {
		return nil
	}
	if n.Format != FormatAnthropic {
		return &FieldError{Field: "native.format", Msg: fmt.Sprintf("%s must be %q", Quote(n.Format), FormatAnthropic)}
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(n.Body, &body); err != nil || body == nil {
		return &FieldError{Field: "native.body", Msg: "must be a JSON object (an Anthropic Messages body)"}
	}
	for k, v := range n.Headers {
		if k != HeaderAnthropicVersion && k != HeaderAnthropicBeta {
			return &FieldError{Field: "native.headers", Msg: fmt.Sprintf("%s is not forwarded (only %s and %s)", Quote(k), HeaderAnthropicVersion, HeaderAnthropicBeta)}
		}
		if len(v) > 1024 || strings.ContainsAny(v, "\r\n\x00") {
			return &FieldError{Field: "native.headers." + k, Msg: "must be one line of at most 1024 bytes"}
		}
	}
	return nil
}

// Expired reports whether the job's deadline has passed at now.
func (j *Job) Expired(now time.Time) bool {
	return j.Deadline != nil && !now.Before(*j.Deadline)
}

func isJSONNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// ClearBrokerOwned resets the fields only the broker sets on a job a
// producer sent: reply (a producer can't direct the Result elsewhere), plan
// (routing and budgets can't be skipped), hop and attempts (a job is new),
// stream (chunks are only for the HTTP front door), created_at (the
// broker stamps admission) and continuation (a producer can't prefill an
// answer as if a stream had broken). Every entrance calls it on a new job: HTTP,
// llm.submit and llm.complete (broker.Client.Admit).
func (j *Job) ClearBrokerOwned() {
	j.Reply, j.Plan, j.Hop, j.Attempts, j.Stream, j.CreatedAt = "", nil, 0, nil, false, time.Time{}
	j.Continuation = nil
}
