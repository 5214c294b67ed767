package wmjs

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultPublishTimeout bounds the wait for a stream's PubAck when the
// message's context has no deadline of its own.
const DefaultPublishTimeout = 10 * time.Second

// HeaderUUID carries a message's UUID (the header watermill-nats uses),
// unless the message's Nats-Msg-Id is its UUID.
const HeaderUUID = "_watermill_message_uuid"

// Publisher is a watermill message.Publisher onto JetStream. Each message
// is published to the topic as subject, with its metadata as headers and its
// UUID in HeaderUUID, and Publish returns only after the stream confirmed
// storing it (the PubAck). A message whose metadata has a Nats-Msg-Id
// (jetstream.MsgIDHeader) is deduplicated by it: a re-publish within the
// stream's dedup window is stored once; when that id is the message's UUID,
// HeaderUUID is left out. The connection belongs to the caller: Close does
// not close it.
type Publisher struct {
	js      jetstream.JetStream
	timeout time.Duration
	closed  atomic.Bool
}

// NewPublisher returns a publisher on js. timeout bounds the wait for each
// PubAck (DefaultPublishTimeout if zero) of a message whose context
// (message.Message.Context) has no deadline; one with a deadline waits until
// that deadline.
func NewPublisher(js jetstream.JetStream, timeout time.Duration) (*Publisher, error) {
	if js == nil {
		return nil, fmt.Errorf("%w: publisher needs a JetStream context", ErrInvalidConfig)
	}
	if timeout <= 0 {
		timeout = DefaultPublishTimeout
	}
	return &Publisher{js: js, timeout: timeout}, nil
}

// Publish stores msgs on the stream of subject topic, one after the other,
// and returns the first error (the messages before it are stored).
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if p.closed.Load() {
		return ErrClosed
	}
	for _, m := range msgs {
		nm := &nats.Msg{Subject: topic, Data: m.Payload, Header: make(nats.Header, len(m.Metadata)+1)}
		for k, v := range m.Metadata {
			nm.Header.Set(k, v)
		}
		if m.UUID != "" && m.Metadata.Get(jetstream.MsgIDHeader) != m.UUID {
			nm.Header.Set(HeaderUUID, m.UUID)
		}
		ctx := m.Context()
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, p.timeout)
			defer cancel()
		}
		_, err := p.js.PublishMsg(ctx, nm)
		if err != nil {
			return fmt.Errorf("publish %s to %s: %w", m.UUID, topic, err)
		}
	}
	return nil
}

// Close makes later Publish calls fail with ErrClosed.
func (p *Publisher) Close() error {
	p.closed.Store(true)
	return nil
}
