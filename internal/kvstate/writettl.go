package kvstate

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// WriteTTL replaces key's value if its revision is still rev (else an error
// wrapping jetstream.ErrKeyRevisionMismatch), with a fresh per-key TTL.
func WriteTTL(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, key string, value []byte, ttl time.Duration, rev uint64) (uint64, error) {
	return write(ctx, js, kv, key, value, ttl, jetstream.WithExpectLastSequencePerSubject(rev))
}
