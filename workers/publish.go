package workers

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/topology"
)

// publishAll publishes msgs to JetStream concurrently and waits until every
// one is confirmed, returning the confirmations in msgs' order. Each carries
// a Nats-Msg-Id, so sending again one that was not confirmed cannot
// duplicate it (its confirmation then says Duplicate).
func (p *Pool) publishAll(msgs []*nats.Msg) ([]*jetstream.PubAck, error) {
	return p.await(msgs, p.publishAsync(msgs))
}

// publishAsync starts async publishes of copies of msgs (nil futures for
// those that could not start).
func (p *Pool) publishAsync(msgs []*nats.Msg) []jetstream.PubAckFuture {
	futs := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		f, err := p.cfg.JS.PublishMsgAsync(topology.CloneMsg(m))
		if err == nil {
			futs[i] = f
		}
	}
	return futs
}

// await waits for the futures of msgs and returns their confirmations. A
// publish that failed, or was not confirmed within topology.ConfirmWait
// (its confirmation may be lost with a stream leader), is sent again
// synchronously until it is confirmed or PublishTimeout has passed.
func (p *Pool) await(msgs []*nats.Msg, futs []jetstream.PubAckFuture) ([]*jetstream.PubAck, error) {
	return awaitConfirmed(p.cfg.JS, msgs, futs, p.cfg.PublishTimeout)
}

// awaitConfirmed waits for the futures of msgs, all sent at about the same
// time, for up to topology.ConfirmWait together; each one that failed or is
// not confirmed by then is published again synchronously, until timeout has
// passed since the call (js is topology.Replicated, whose PublishMsg sends
// it again after each unanswered topology.ConfirmWait).
func awaitConfirmed(js jetstream.JetStream, msgs []*nats.Msg, futs []jetstream.PubAckFuture, timeout time.Duration) ([]*jetstream.PubAck, error) {
	start := time.Now()
	var wait *time.Timer // made only when a confirmation has not come yet
	defer func() {
		if wait != nil {
			wait.Stop()
		}
	}()
	waited := false
	acks := make([]*jetstream.PubAck, len(msgs))
	for i, f := range futs {
		if f != nil {
			select {
			case acks[i] = <-f.Ok():
				continue // already confirmed: no timer, and no error channel made
			default:
			}
			if !waited {
				if wait == nil {
					wait = time.NewTimer(topology.ConfirmWait - time.Since(start))
				}
				select {
				case acks[i] = <-f.Ok():
					continue
				case <-f.Err():
				case <-wait.C:
					waited = true
				}
			}
		}
		// Rare (an outage): the context is made only here.
		ctx, cancel := context.WithDeadline(context.Background(), start.Add(timeout))
		ack, err := js.PublishMsg(ctx, topology.CloneMsg(msgs[i]))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("publish to %s: %w", msgs[i].Subject, err)
		}
		acks[i] = ack
	}
	return acks, nil
}
