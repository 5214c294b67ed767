package embedded

import "errors"

// Sentinel errors of Options.Validate.
var (
	// ErrNoStoreDir: no JetStream store dir was given.
	ErrNoStoreDir = errors.New("embedded nats: a store dir is required")
	// ErrNoToken: neither a token nor NoAuth was given.
	ErrNoToken = errors.New("a token is required (or run without auth on a loopback address)")
	// ErrTokenAndNoAuth: both a token and NoAuth were given.
	ErrTokenAndNoAuth = errors.New("a token and no auth are both given")
	// ErrNoAuthNotLoopback: no auth was asked for on an address other
	// machines can reach.
	ErrNoAuthNotLoopback = errors.New("running without auth is only allowed on a loopback address (127.0.0.1, ::1, localhost): anyone who can reach the server could read results and run jobs")
)
