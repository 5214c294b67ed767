package lanes

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// jsMsg is a message of a lane's consumer pulled over the lane's own inbox
// (lanePull), with jetstream.Msg's acknowledgements: nats.go builds its
// jetstream.Msg only inside its own Fetch and Next, which subscribe a new
// inbox per call. The acknowledgement bodies are JetStream's.
type jsMsg struct {
	nc    *nats.Conn
	msg   *nats.Msg
	acked atomic.Bool // a terminal acknowledgement (Ack, Nak, Term) was sent
	meta  atomic.Pointer[jetstream.MsgMetadata]
}

var _ jetstream.Msg = (*jsMsg)(nil)

// Metadata parses the delivery's ack subject, once: later calls (the
// dispatcher and the pool both read it) return the same value, which
// callers must not modify.
func (m *jsMsg) Metadata() (*jetstream.MsgMetadata, error) {
	if md := m.meta.Load(); md != nil {
		return md, nil
	}
	md, err := m.msg.Metadata()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", jetstream.ErrNotJSMessage, err)
	}
	parsed := &jetstream.MsgMetadata{
		Sequence:     jetstream.SequencePair{Consumer: md.Sequence.Consumer, Stream: md.Sequence.Stream},
		NumDelivered: md.NumDelivered,
		NumPending:   md.NumPending,
		Timestamp:    md.Timestamp,
		Stream:       md.Stream,
		Consumer:     md.Consumer,
		Domain:       md.Domain,
	}
	m.meta.Store(parsed)
	return parsed, nil
}

// Data is the message body.
func (m *jsMsg) Data() []byte { return m.msg.Data }

// Headers are the message's headers.
func (m *jsMsg) Headers() nats.Header { return m.msg.Header }

// Subject is the subject the message was stored under.
func (m *jsMsg) Subject() string { return m.msg.Subject }

// Reply is the delivery's ack subject.
func (m *jsMsg) Reply() string { return m.msg.Reply }

// Ack acknowledges the message.
func (m *jsMsg) Ack() error { return m.send(ackAck, true) }

// DoubleAck acknowledges the message and waits for the server to confirm
// it (up to ctx's deadline, or doubleAckWait without one).
func (m *jsMsg) DoubleAck(ctx context.Context) error {
	if m.acked.Load() {
		return jetstream.ErrMsgAlreadyAckd
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, doubleAckWait)
		defer cancel()
	}
	if _, err := m.nc.RequestWithContext(ctx, m.msg.Reply, ackAck); err != nil {
		return err
	}
	m.acked.Store(true)
	return nil
}

// Nak asks for a redelivery now.
func (m *jsMsg) Nak() error { return m.send(ackNak, true) }

// NakWithDelay asks for a redelivery after delay.
func (m *jsMsg) NakWithDelay(delay time.Duration) error {
	if delay <= 0 {
		return m.Nak()
	}
	return m.send(fmt.Appendf(nil, `%s {"delay": %d}`, ackNak, delay.Nanoseconds()), true)
}

// InProgress resets the message's redelivery timer.
func (m *jsMsg) InProgress() error { return m.send(ackProgress, false) }

// Term tells the server never to redeliver the message.
func (m *jsMsg) Term() error { return m.send(ackTerm, true) }

// TermWithReason is Term with a reason for the server's advisory.
func (m *jsMsg) TermWithReason(reason string) error {
	return m.send(fmt.Appendf(nil, "%s %s", ackTerm, reason), true)
}

// send publishes an acknowledgement; a terminal one is sent at most once.
func (m *jsMsg) send(body []byte, terminal bool) error {
	if m.msg.Reply == "" {
		return jetstream.ErrMsgNoReply
	}
	if m.acked.Load() {
		return jetstream.ErrMsgAlreadyAckd
	}
	if err := m.nc.Publish(m.msg.Reply, body); err != nil {
		return err
	}
	if terminal {
		m.acked.Store(true)
	}
	return nil
}

// doubleAckWait bounds DoubleAck's wait for a context without a deadline
// (nats.go's default JetStream API timeout).
const doubleAckWait = 5 * time.Second

// Acknowledgement bodies (JetStream's ack protocol).
var (
	ackAck      = []byte("+ACK")
	ackNak      = []byte("-NAK")
	ackProgress = []byte("+WPI")
	ackTerm     = []byte("+TERM")
)
