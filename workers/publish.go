package workers

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publishAll publishes msgs to JetStream concurrently and waits until every
// one is confirmed, returning the confirmations in msgs' order. Each carries
// a Nats-Msg-Id, so the one synchronous retry of a publish that was not
// confirmed cannot duplicate it (its confirmation then says Duplicate).
func (p *Pool) publishAll(msgs []*nats.Msg) ([]*jetstream.PubAck, error) {
	return p.await(msgs, p.publishAsync(msgs))
}

// publishAsync starts async publishes of copies of msgs (nil futures for
// those that could not start).
func (p *Pool) publishAsync(msgs []*nats.Msg) []jetstream.PubAckFuture {
	futs := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		f, err := p.cfg.JS.PublishMsgAsync(cloneMsg(m))
		if err == nil {
			futs[i] = f
		}
	}
	return futs
}

// await waits for the futures of msgs and returns their confirmations; a
// publish that failed or was not confirmed within PublishTimeout is retried
// once synchronously.
func (p *Pool) await(msgs []*nats.Msg, futs []jetstream.PubAckFuture) ([]*jetstream.PubAck, error) {
	deadline := time.NewTimer(p.cfg.PublishTimeout)
	defer deadline.Stop()
	timedOut := false
	acks := make([]*jetstream.PubAck, len(msgs))
	for i, f := range futs {
		if f != nil {
			if timedOut {
				select {
				case acks[i] = <-f.Ok():
					continue
				default:
				}
			} else {
				select {
				case acks[i] = <-f.Ok():
					continue
				case <-f.Err():
				case <-deadline.C:
					timedOut = true
				}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.PublishTimeout)
		ack, err := p.cfg.JS.PublishMsg(ctx, cloneMsg(msgs[i]))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("publish to %s: %w", msgs[i].Subject, err)
		}
		acks[i] = ack
	}
	return acks, nil
}

func cloneMsg(m *nats.Msg) *nats.Msg {
	c := &nats.Msg{Subject: m.Subject, Data: m.Data}
	if m.Header != nil {
		c.Header = make(nats.Header, len(m.Header))
		for k, v := range m.Header {
			c.Header[k] = append([]string(nil), v...)
		}
	}
	return c
}
