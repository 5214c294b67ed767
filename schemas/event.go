package schemas

import (
	"crypto/sha1"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Telemetry event kinds; the kind is also the last token of the subject
// llm.telemetry.<kind> of a single event (the workers send the events of a
// job hop together, as an array on llm.telemetry.batch).
const (
	EventAttempt    = "attempt"
	EventCompletion = "completion"
)

// eventNamespace seeds deterministic event ids, so a redelivered or re-sent
// event carries the same id and deduplicates in JetStream and ClickHouse.
var eventNamespace = uuid.MustParse("6f1c7a36-2a51-4c5e-9d0b-5b7f0f3f9a11")

// AttemptEventID is the deterministic id of the attempt-th call (1-based,
// counted across all hops) made for a job, which started at startedAt (the
// event's ts). A re-sent event keeps its id and ts; a call made again (a hop
// re-run after a worker died) is a second call with its own id.
func AttemptEventID(jobID string, attempt int, startedAt time.Time) uuid.UUID {
	return eventID(jobID, "/attempt/", attempt, startedAt)
}

// CompletionEventID is the deterministic id of a job's outcome reached at
// hop (the job's Hop when it finished) by the run admitted at createdAt (the
// event's ts): a redelivered or re-sent outcome, or one reached again by a
// re-run hop, keeps its id, while a job replayed from the DLQ (a new run on
// later hops) records its new outcome beside the one it replaces.
func CompletionEventID(jobID string, hop int, createdAt time.Time) uuid.UUID {
	return eventID(jobID, "/completion/", hop, createdAt)
}

// eventID is uuid.NewSHA1(eventNamespace, jobID+kind+n+"/"+ts in ns), with
// the name built on the stack and hashed without uuid's allocations.
func eventID(jobID, kind string, n int, ts time.Time) uuid.UUID {
	var buf [192]byte
	name := append(buf[:0], eventNamespace[:]...)
	name = append(name, jobID...)
	name = append(name, kind...)
	name = strconv.AppendInt(name, int64(n), 10)
	name = append(name, '/')
	name = strconv.AppendInt(name, ts.UnixNano(), 10)
	sum := sha1.Sum(name)
	var id uuid.UUID
	copy(id[:], sum[:])
	id[6] = id[6]&0x0f | 0x50 // version 5
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	return id
}

// Event is one telemetry record: a provider attempt or a job outcome.
type Event struct {
	V       int       `json:"v"`
	Kind    string    `json:"kind"`
	EventID uuid.UUID `json:"event_id"`
	JobID   string    `json:"job_id"`
	TS      time.Time `json:"ts"`
	// Attempt is the 1-based attempt number across the job (attempt events),
	// or the total number of attempts (completion events).
	Attempt      int    `json:"attempt"`
	Route        string `json:"route,omitempty"`
	Provider     string `json:"provider,omitempty"`
	Model        string `json:"model,omitempty"`
	Tenant       string `json:"tenant,omitempty"`
	Tier         string `json:"tier,omitempty"`
	Task         string `json:"task,omitempty"`
	Status       string `json:"status,omitempty"` // completion: succeeded|failed
	StatusCode   int    `json:"status_code,omitempty"`
	ErrorType    string `json:"error_type,omitempty"`
	Outcome      string `json:"outcome,omitempty"` // attempt: ok|retry|fallback|fatal
	Fallback     bool   `json:"fallback"`
	InputTokens  int64  `json:"input_tokens"`
	OutputTokens int64  `json:"output_tokens"`
	// CostUSD is nil when the price is unknown (never a silent zero).
	CostUSD    *float64 `json:"cost_usd"`
	QueuedMS   int64    `json:"queued_ms"`
	TTFTMS     int64    `json:"ttft_ms"`
	ProviderMS int64    `json:"provider_ms"`
	TotalMS    int64    `json:"total_ms"`
	DurationMS int64    `json:"duration_ms"`
	// RequestBody and ResponseBody are set on completion events only with
	// analytics.log_bodies: the job's request and its response (or its
	// error), known keys redacted, each cut to analytics.log_body_bytes.
	RequestBody  string `json:"request_body,omitempty"`
	ResponseBody string `json:"response_body,omitempty"`
}
