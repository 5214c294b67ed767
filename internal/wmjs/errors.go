// Package wmjs connects watermill (github.com/ThreeDotsLabs/watermill) to
// NATS JetStream for a message.Router: a Subscriber of a durable pull
// consumer that keeps the watermill contract (each in-flight slot hands out
// its next message only after the previous one was acked or nacked), and a
// Publisher that waits for the stream's PubAck and deduplicates by the
// message's UUID.
//
// Neither watermill-nats' JetStream package (beta: its Subscriber drains
// the caller's shared connection on Close, handles one message at a time per
// subscription, and does not re-create a consumer deleted under it) nor its
// core-NATS package (push subscriptions) fits a durable pull consumer that
// must survive outages, hence this small package.
package wmjs

import "errors"

// ErrClosed is returned by Subscribe and Publish after Close.
var ErrClosed = errors.New("wmjs: closed")

// ErrInvalidConfig is wrapped by the constructors' errors.
var ErrInvalidConfig = errors.New("wmjs: invalid config")
