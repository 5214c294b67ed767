// Package topology names Switchboard's NATS subjects and provisions its
// JetStream streams, consumers and KV buckets idempotently.
package topology

import (
	"strconv"
	"strings"
	"time"
)

// Stream names.
const (
	StreamJobs      = "JOBS"
	StreamResults   = "RESULTS"
	StreamTelemetry = "TELEMETRY"
	StreamDLQ       = "DLQ"
	// StreamSlots holds each provider's concurrency tokens (workers/lanes).
	StreamSlots = "SLOTS"
)

// Subjects.
const (
	// SubjectSubmit receives raw jobs from any producer; the dispatcher
	// routes them to llm.jobs.<provider>.
	SubjectSubmit = "llm.submit"
	// SubjectComplete is the request-reply endpoint of the switchboard service.
	SubjectComplete = "llm.complete"
	// NoBatch is the batch token of jobs that belong to no batch.
	NoBatch = "none"
	// DispatcherConsumer is the durable consumer of llm.submit.
	DispatcherConsumer = "dispatcher"
	// HeaderError carries the reason a message was dead-lettered.
	HeaderError = "Switchboard-Error"
	// HeaderSource carries the subject a dead-lettered message came from.
	HeaderSource = "Switchboard-Source"
)

// Jobs is the subject of jobs assigned to a provider.
func Jobs(provider string) string { return "llm.jobs." + provider }

// JobsLane is the subject of a provider's jobs of one priority: high and low
// jobs have lanes of their own, llm.jobs.<provider>.high and .low; normal
// (or no) priority stays on llm.jobs.<provider>. See workers/lanes.
func JobsLane(provider, priority string) string {
	switch priority {
	case "high", "low":
		return Jobs(provider) + "." + priority
	}
	return Jobs(provider)
}

// Slot is the subject of concurrency token i of a provider (one message
// per subject, see workers/lanes).
func Slot(provider string, i int) string { return "llm.slots." + provider + "." + strconv.Itoa(i) }

// Slots is the subject filter of a provider's concurrency tokens.
func Slots(provider string) string { return "llm.slots." + provider + ".>" }

// SlotsConsumer is the durable consumer handing out a provider's tokens.
func SlotsConsumer(provider string) string { return "slots-" + provider }

// WorkerConsumer is the durable consumer name of a provider's worker pool.
func WorkerConsumer(provider string) string { return "workers-" + provider }

// Result is the subject of a job's result.
func Result(batch, jobID string) string {
	if batch == "" {
		batch = NoBatch
	}
	return "llm.results." + batch + "." + jobID
}

// BatchResults matches every result of one batch.
func BatchResults(batch string) string { return Result(batch, "*") }

// ResultByID matches the result of a job in any batch.
func ResultByID(jobID string) string { return "llm.results.*." + jobID }

// Chunks is the core subject carrying a streaming job's chunks.
func Chunks(jobID string) string { return "llm.stream." + jobID }

// Cancel is the core subject on which a gateway asks the worker running a
// job to cancel its upstream call (the client went away).
func Cancel(jobID string) string { return cancelPrefix + jobID }

const cancelPrefix = "llm.cancel."

// CancelAll matches every cancel request.
const CancelAll = cancelPrefix + "*"

// JobOfCancel is the job id a cancel subject names.
func JobOfCancel(subject string) string { return strings.TrimPrefix(subject, cancelPrefix) }

// ResultsAll matches every stored Result.
const ResultsAll = "llm.results.>"

// JobsAll matches every provider's jobs, all lanes.
const JobsAll = "llm.jobs.>"

// Chunk message headers on llm.stream.<id>.
const (
	// HeaderChunkKind is "data" (payload: an OpenAI chat.completion.chunk)
	// or "error" (payload: a schemas.ErrorInfo; the stream is over).
	HeaderChunkKind = "Switchboard-Chunk"
	// HeaderProvider and HeaderModel name the target serving the stream.
	HeaderProvider = "Switchboard-Provider"
	HeaderModel    = "Switchboard-Model"
)

// TelemetryPrefix starts every subject of the TELEMETRY stream.
const TelemetryPrefix = "llm.telemetry."

// TelemetryAll matches every telemetry subject (the TELEMETRY stream's).
const TelemetryAll = TelemetryPrefix + ">"

// Telemetry is the subject of single telemetry events of one kind
// (schemas.EventAttempt or schemas.EventCompletion).
func Telemetry(kind string) string { return TelemetryPrefix + kind }

// TelemetryBatch carries a JSON array of telemetry events of any kinds. The
// workers publish one per hop (its attempts, and the job's outcome on the
// last hop), so the ingester handles far fewer messages than rows.
const TelemetryBatch = "llm.telemetry.batch"

// TelemetryMsgID is the Nats-Msg-Id of the telemetry batch of a job's hop
// whose first event has ts first.
func TelemetryMsgID(jobID string, hop int, first time.Time) string {
	return jobID + ".telemetry." + strconv.Itoa(hop) + "." + strconv.FormatInt(first.UnixNano(), 10)
}

// DLQ is the dead-letter subject for one reason class, e.g. "exhausted",
// "poison" or "telemetry".
func DLQ(reason string) string { return "llm.dlq." + reason }

// Dead-letter reason classes.
const (
	DLQExhausted = "exhausted"
	DLQPoison    = "poison"
	DLQTelemetry = "telemetry"
)

// HopMsgID is the Nats-Msg-Id of a job's hop-th publish to a provider subject.
func HopMsgID(jobID string, hop int) string { return jobID + "." + strconv.Itoa(hop) }

// ResultMsgID is the Nats-Msg-Id of a job's result at a hop: a redelivered
// hop deduplicates, while a job replayed from the DLQ (a later hop) can
// publish its new result.
func ResultMsgID(jobID string, hop int) string { return jobID + ".result." + strconv.Itoa(hop) }

// DLQMsgID is the Nats-Msg-Id of a job's dead letter at a hop.
func DLQMsgID(jobID string, hop int) string { return jobID + ".dlq." + strconv.Itoa(hop) }

// ProviderFromSubject returns the provider token of llm.jobs.<provider>
// (or of one of its priority lanes, llm.jobs.<provider>.high|.low).
func ProviderFromSubject(subject string) string {
	p := strings.TrimPrefix(subject, "llm.jobs.")
	if i := strings.IndexByte(p, '.'); i >= 0 {
		p = p[:i]
	}
	return p
}
