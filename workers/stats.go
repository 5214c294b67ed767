package workers

import "sync/atomic"

// PoolStats are a pool's counters since it was created.
type PoolStats struct {
	// InFlight is the number of jobs being processed now.
	InFlight int64 `json:"in_flight"`
	// Calls counts provider calls.
	Calls int64 `json:"calls"`
	// Succeeded, Failed and FellBack count deliveries by outcome.
	Succeeded int64 `json:"succeeded"`
	Failed    int64 `json:"failed"`
	FellBack  int64 `json:"fell_back"`
	// DeadLettered counts jobs sent to llm.dlq.exhausted; Poison counts
	// messages sent to llm.dlq.poison.
	DeadLettered int64 `json:"dead_lettered"`
	Poison       int64 `json:"poison"`
	// Abandoned counts jobs handed back (Nak) on shutdown.
	Abandoned int64 `json:"abandoned"`
	// Redelivered counts redelivered jobs already finished by another
	// worker (acknowledged without a new call).
	Redelivered int64 `json:"redelivered"`
	// PublishFailures counts deliveries Nak'd because a publish failed.
	PublishFailures int64 `json:"publish_failures"`
}

type poolCounters struct {
	inFlight, calls, succeeded, failed, fellBack, deadLettered, poison, abandoned, redelivered, publishFailures atomic.Int64
}

// Stats returns a snapshot of the pool's counters.
func (p *Pool) Stats() PoolStats {
	c := &p.stats
	return PoolStats{
		InFlight: c.inFlight.Load(), Calls: c.calls.Load(), Succeeded: c.succeeded.Load(), Failed: c.failed.Load(),
		FellBack: c.fellBack.Load(), DeadLettered: c.deadLettered.Load(), Poison: c.poison.Load(),
		Abandoned: c.abandoned.Load(), Redelivered: c.redelivered.Load(), PublishFailures: c.publishFailures.Load(),
	}
}
