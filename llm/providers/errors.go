package providers

import "errors"

// Errors returned by New.
var (
	// ErrUnknownKind is returned for a provider kind with no adapter.
	ErrUnknownKind = errors.New("unknown provider kind")
	// ErrBaseURLRequired is returned when a kind needs base_url and has none.
	ErrBaseURLRequired = errors.New("base_url is required")
)
