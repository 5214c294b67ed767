package workers

import (
	"errors"
)

// Sentinel errors of the worker pool.
var (
	// ErrInvalidPoolConfig is wrapped by every PoolConfig validation error.
	ErrInvalidPoolConfig = errors.New("invalid worker pool config")
	// ErrPoolRunning means Run was called on a pool that already ran.
	ErrPoolRunning = errors.New("worker pool already running")
)

// Causes that end a job's context; the pool maps each to an outcome.
var (
	// errCancelRequested: a message on llm.cancel.<id> asked to cancel the job.
	errCancelRequested = errors.New("job canceled by the caller")
	// errJobDeadline: the job's own deadline passed.
	errJobDeadline = errors.New("job deadline passed")
	// errShutdown: the pool is shutting down and the drain timeout passed;
	// the job is handed back to JetStream for another worker.
	errShutdown = errors.New("worker pool shutting down")
	// errCallTimeout: the provider did not answer within its timeout.
	errCallTimeout = errors.New("provider call timed out")
	// errStreamIdle: a stream went silent for longer than its idle timeout.
	errStreamIdle = errors.New("stream idle")
)
