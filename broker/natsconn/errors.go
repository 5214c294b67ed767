package natsconn

import "errors"

// Sentinel errors of this package.
var (
	// ErrConflictingAuth: more than one way to authenticate was given.
	ErrConflictingAuth = errors.New("more than one NATS credential given")
	// ErrIncompleteAuth: a user without a password (or the reverse), or a
	// TLS certificate without its key (or the reverse).
	ErrIncompleteAuth = errors.New("incomplete NATS credentials")
	// ErrConnectionLost: the connection was closed for good by something
	// other than this process (the server refused or dropped it and
	// reconnecting gave up).
	ErrConnectionLost = errors.New("the NATS connection was closed for good")
	// ErrBadTokenFile: the token file of a local server is unusable.
	ErrBadTokenFile = errors.New("bad NATS token file")
)
