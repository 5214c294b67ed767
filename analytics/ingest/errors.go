package ingest

import "errors"

// Sentinel errors of the ingester.
var (
	// ErrInvalidConfig wraps a bad ingester or subscriber configuration.
	ErrInvalidConfig = errors.New("invalid ingest config")
	// ErrBadEvent wraps a telemetry message that cannot be ingested; it goes
	// to the DLQ (llm.dlq.telemetry) with the reason in Switchboard-Error.
	ErrBadEvent = errors.New("bad telemetry event")
	// ErrClosed is returned by a closed subscriber.
	ErrClosed = errors.New("subscriber closed")
)
