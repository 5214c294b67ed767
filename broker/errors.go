// Package broker is the NATS side of Switchboard: the Go client that submits
// jobs and waits for their results, the dispatcher of raw jobs and the
// request-reply service.
package broker

import "errors"

// Sentinel errors of the client.
var (
	// ErrDeadlineExceeded means the job's deadline passed before a result.
	ErrDeadlineExceeded = errors.New("deadline exceeded")
	// ErrResultNotFound means no result is stored for the job (yet).
	ErrResultNotFound = errors.New("result not found")
	// ErrStopping means the llm.complete service is shutting down and took
	// no new job; another instance answers a retry.
	ErrStopping = errors.New("service shutting down; retry")
)
