package topology

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/config"
)

// Specs returns the configurations of the five streams for the given limits.
func Specs(l config.Limits) []jetstream.StreamConfig {
	dedup := l.DedupWindow
	if dedup < 2*time.Minute {
		dedup = 2 * time.Minute
	}
	return []jetstream.StreamConfig{
		{
			Name:        StreamJobs,
			Description: "pending completion jobs (work queue)",
			Subjects:    []string{JobsAll, SubjectSubmit},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Discard:     jetstream.DiscardNew,
			MaxMsgs:     orDefault(l.JobsMaxMsgs, config.DefaultJobsMaxMsgs),
			MaxBytes:    orDefault(l.JobsMaxBytes, config.DefaultJobsMaxBytes),
			MaxMsgSize:  int32(orDefault(int64(l.MaxJobBytes), config.DefaultMaxJobBytes)) * 2,
			Duplicates:  dedup,
		},
		{
			Name:        StreamResults,
			Description: "job results for async and batch callers",
			Subjects:    []string{ResultsAll},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Discard:     jetstream.DiscardOld, // beyond a size limit, the oldest Results go
			MaxAge:      orDefaultDur(l.ResultsMaxAge, config.DefaultResultsMaxAge),
			MaxMsgs:     orDefault(l.ResultsMaxMsgs, config.DefaultResultsMaxMsgs),
			MaxBytes:    orDefault(l.ResultsMaxBytes, config.DefaultResultsMaxBytes),
			Duplicates:  dedup,
		},
		{
			Name:        StreamTelemetry,
			Description: "attempt and completion events, buffered for ClickHouse",
			Subjects:    []string{TelemetryAll},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			MaxAge:      orDefaultDur(l.TelemetryMaxAge, config.DefaultTelemetryMaxAge),
			Duplicates:  dedup,
		},
		{
			Name:        StreamDLQ,
			Description: "jobs that exhausted every target, and poison messages",
			Subjects:    []string{"llm.dlq.>"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Discard:     jetstream.DiscardOld,
			MaxAge:      orDefaultDur(l.DLQMaxAge, config.DefaultDLQMaxAge),
			MaxBytes:    orDefault(l.DLQMaxBytes, config.DefaultDLQMaxBytes),
			Duplicates:  dedup,
		},
		{
			Name:              StreamSlots,
			Description:       "per-provider concurrency tokens: one message per slot, held (unacked) while a call runs",
			Subjects:          []string{"llm.slots.>"},
			Retention:         jetstream.LimitsPolicy,
			Storage:           jetstream.FileStorage,
			MaxMsgsPerSubject: 1,
		},
	}
}

func orDefault(v, d int64) int64 {
	if v <= 0 {
		return d
	}
	return v
}

func orDefaultDur(v, d time.Duration) time.Duration {
	if v <= 0 {
		return d
	}
	return v
}

// Ensure creates the streams, or updates them to the given limits; re-running
// it against a provisioned server changes nothing and loses nothing.
func Ensure(ctx context.Context, js jetstream.JetStream, l config.Limits) error {
	_, err := Provision(ctx, js, l)
	return err
}

// Change is a replica change provisioning made to a stream (a KV bucket's
// stream is KV_<bucket>); From is 0 for a stream it created.
type Change struct {
	Stream   string
	From, To int
}

func (c Change) String() string {
	if c.From == 0 {
		return fmt.Sprintf("created stream %s with %d replicas", c.Stream, c.To)
	}
	return fmt.Sprintf("raised stream %s from %d to %d replicas", c.Stream, c.From, c.To)
}

// Provision is Ensure, also raising every existing sb_* KV bucket to js's
// replica count (see Replicated; a plain js provisions with 1 and keeps
// what each stream has). Replicas change in place: JetStream copies the
// stored messages to the new peers, nothing is deleted. It returns what it
// changed.
func Provision(ctx context.Context, js jetstream.JetStream, l config.Limits) ([]Change, error) {
	n := ReplicasOf(js)
	rjs := Replicated(js, n)
	var changes []Change
	for _, spec := range Specs(l) {
		from := 0
		if s, err := js.Stream(ctx, spec.Name); err == nil {
			from = s.CachedInfo().Config.Replicas
		}
		s, err := rjs.CreateOrUpdateStream(ctx, spec)
		if err != nil {
			return changes, fmt.Errorf("provision stream %s: %w", spec.Name, err)
		}
		if to := s.CachedInfo().Config.Replicas; to != from {
			changes = append(changes, Change{Stream: spec.Name, From: from, To: to})
		}
	}
	names := js.StreamNames(ctx)
	var buckets []string
	for name := range names.Name() {
		if strings.HasPrefix(name, "KV_sb_") {
			buckets = append(buckets, name)
		}
	}
	if err := names.Err(); err != nil {
		return changes, fmt.Errorf("list kv buckets: %w", err)
	}
	for _, name := range buckets {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return changes, fmt.Errorf("provision stream %s: %w", name, err)
		}
		cfg := s.CachedInfo().Config
		if cfg.Replicas >= n {
			continue
		}
		from := cfg.Replicas
		cfg.Replicas = n
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			return changes, fmt.Errorf("provision stream %s: %w", name, replicaErr(err, name, n))
		}
		changes = append(changes, Change{Stream: name, From: from, To: n})
	}
	return changes, nil
}

// AckWait is the ack deadline of a provider's consumer: longer than one call
// (workers send InProgress every AckWait/3 while a job runs), and short enough
// that a crashed worker's job is redelivered soon.
func AckWait(timeout time.Duration) time.Duration {
	return timeout + 5*time.Second
}

// WorkerConsumerConfig is the durable pull consumer of a provider's pool.
// MaxAckPending bounds the jobs delivered and not yet acked; the calls in
// flight are capped over lanes and processes by workers/lanes.Slots.
func WorkerConsumerConfig(p config.Provider) jetstream.ConsumerConfig {
	concurrency := p.Concurrency
	if concurrency <= 0 {
		concurrency = config.DefaultConcurrency
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = config.DefaultTimeout
	}
	return jetstream.ConsumerConfig{
		Durable:       WorkerConsumer(p.Name),
		Description:   "worker pool of provider " + p.Name,
		FilterSubject: Jobs(p.Name),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       AckWait(timeout),
		MaxAckPending: concurrency,
		MaxDeliver:    -1,
		MaxWaiting:    512,
	}
}

// DispatcherAckWait is the ack deadline of the dispatcher's consumer. The
// dispatcher keeps a raw job it holds alive with InProgress every third of
// it (however long its publish retries take), so it bounds only how soon a
// raw job comes back whose delivery was lost (with a consumer leader that
// went away) or whose dispatcher died.
const DispatcherAckWait = 5 * time.Second

// EnsureDispatcherConsumer creates the durable consumer of llm.submit.
func EnsureDispatcherConsumer(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
	c, err := js.CreateOrUpdateConsumer(ctx, StreamJobs, jetstream.ConsumerConfig{
		Durable:       DispatcherConsumer,
		Description:   "routes raw jobs from llm.submit to provider subjects",
		FilterSubject: SubjectSubmit,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       DispatcherAckWait,
		MaxAckPending: 1024,
		MaxDeliver:    -1,
	})
	if err != nil {
		return nil, fmt.Errorf("provision consumer %s: %w", DispatcherConsumer, err)
	}
	return c, nil
}

// EnsureAll provisions the streams and one worker consumer per provider.
func EnsureAll(ctx context.Context, js jetstream.JetStream, cfg *config.Config) error {
	_, err := ProvisionAll(ctx, js, cfg)
	return err
}

// ProvisionAll is EnsureAll returning Provision's changes; js should be
// Replicated with the config's nats.replicas.
func ProvisionAll(ctx context.Context, js jetstream.JetStream, cfg *config.Config) ([]Change, error) {
	changes, err := Provision(ctx, js, cfg.Limits)
	if err != nil {
		return changes, err
	}
	for _, p := range cfg.Providers {
		if _, err := EnsureLaneConsumers(ctx, js, p); err != nil {
			return changes, err
		}
	}
	_, err = EnsureDispatcherConsumer(ctx, js)
	return changes, err
}

// IsFull reports whether a publish failed because JOBS is at its limits
// (discard-new refuses the message).
func IsFull(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == 10077 { // JSStreamStoreFailedF
		return strings.Contains(apiErr.Description, "maximum messages exceeded") ||
			strings.Contains(apiErr.Description, "maximum bytes exceeded")
	}
	return err != nil && (strings.Contains(err.Error(), "maximum messages exceeded") ||
		strings.Contains(err.Error(), "maximum bytes exceeded"))
}
