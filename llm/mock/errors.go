package mock

import "errors"

// ErrInvalidFaults marks a Faults or Options value that is out of range.
var ErrInvalidFaults = errors.New("invalid mock faults")

// ErrClosed is returned by Close when the server was already closed.
var ErrClosed = errors.New("mock server closed")
