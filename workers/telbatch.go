package workers

import (
	"bytes"
	"context"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/topology"
)

// Telemetry group commit: the telemetry of jobs that finish while earlier
// telemetry publishes await their confirmation is published as one
// message (one stored message, one confirmation and one delivery to the
// ingester for many jobs). A job is acknowledged only after the message
// holding its events is confirmed, as before.
//
// At a light load each job's telemetry would go alone, a stored message,
// its confirmation, its delivery and the ingester's ack per job. Then a
// job finding no other telemetry queued waits up to telemetryLinger for
// more, while the pool has ample room (the batcher's slack: at most a
// quarter of its workers busy), so the wait delays only acks (this job's
// and those of the jobs joining it, by at most the linger), never a
// caller's answer, which went out before. A pool near its concurrency,
// whose ack slots are what limits it, sends at once.
const (
	telemetryInFlight = 2                    // batch publishes awaiting confirmation
	telemetryMaxJobs  = 256                  // jobs per message
	telemetryMaxBytes = 256 << 10            // bytes per message (a bigger job goes alone)
	telemetryLinger   = 5 * time.Millisecond // a lone job's wait for company
)

// telemetryReq is one job's telemetry message waiting to be published.
type telemetryReq struct {
	msg  *nats.Msg
	done chan error
}

// telemetryBatcher gathers jobs' telemetry into shared messages.
type telemetryBatcher struct {
	js      jetstream.JetStream
	timeout time.Duration
	reqs    chan *telemetryReq
	slots   chan struct{}
	// linger is how long a lone job's telemetry waits for more while
	// slack (nil: never) reports room.
	linger time.Duration
	slack  func() bool
}

// newTelemetryBatcher publishes on js; queue sizes its queue (the pool's
// concurrency), and slack, if not nil, reports whether a lone job's
// telemetry may wait telemetryLinger for company.
func newTelemetryBatcher(js jetstream.JetStream, timeout time.Duration, queue int, slack func() bool) *telemetryBatcher {
	return &telemetryBatcher{js: js, timeout: timeout,
		reqs: make(chan *telemetryReq, max(queue, telemetryMaxJobs)), slots: make(chan struct{}, telemetryInFlight),
		linger: telemetryLinger, slack: slack}
}

// publish queues a job's telemetry message (a JSON array of events) and
// returns the channel that reports whether the message holding it was
// confirmed.
func (b *telemetryBatcher) publish(m *nats.Msg) <-chan error {
	r := &telemetryReq{msg: m, done: make(chan error, 1)}
	b.reqs <- r
	return r.done
}

// run publishes queued telemetry until ctx ends, then what is still queued.
func (b *telemetryBatcher) run(ctx context.Context) {
	for {
		var first *telemetryReq
		select {
		case first = <-b.reqs:
		case <-ctx.Done():
			for {
				select {
				case r := <-b.reqs:
					b.slots <- struct{}{}
					b.send([]*telemetryReq{r})
				default:
					for range telemetryInFlight { // wait for the last ones
						b.slots <- struct{}{}
					}
					return
				}
			}
		}
		b.slots <- struct{}{} // meanwhile, more jobs' telemetry queues up
		batch, size := []*telemetryReq{first}, len(first.msg.Data)
		var linger *time.Timer // started once, when the first would go alone
		lingered := false
	gather:
		for len(batch) < telemetryMaxJobs && size < telemetryMaxBytes {
			var r *telemetryReq
			select {
			case r = <-b.reqs:
			default:
				if !lingered && len(batch) == 1 && b.slack != nil && b.slack() {
					linger, lingered = time.NewTimer(b.linger), true
				}
				if linger == nil {
					break gather
				}
				select {
				case r = <-b.reqs:
				case <-linger.C:
					break gather
				case <-ctx.Done(): // stop waiting; take what is queued
					linger.Stop()
					linger = nil
					continue
				}
			}
			if size+len(r.msg.Data) > telemetryMaxBytes {
				go b.alone(r)
				continue
			}
			batch, size = append(batch, r), size+len(r.msg.Data)
		}
		if linger != nil {
			linger.Stop()
		}
		go b.send(batch)
	}
}

// alone sends a request too big to share a message, under its own slot.
func (b *telemetryBatcher) alone(r *telemetryReq) {
	b.slots <- struct{}{}
	b.send([]*telemetryReq{r})
}

// send publishes batch as one message (releasing a slot), sending it again
// while it is not confirmed (see awaitConfirmed), and reports to each job.
func (b *telemetryBatcher) send(batch []*telemetryReq) {
	m := joinTelemetry(batch)
	// A publish that could not start (nil future) is sent synchronously.
	fut, _ := b.js.PublishMsgAsync(topology.CloneMsg(m))
	_, err := awaitConfirmed(b.js, []*nats.Msg{m}, []jetstream.PubAckFuture{fut}, b.timeout)
	<-b.slots
	for _, r := range batch {
		r.done <- err
	}
}

// joinTelemetry is one message holding the events of every request: their
// arrays joined. A single job's message is sent as it is (its dedup id
// names the job's hop); a shared one's id names its first and last jobs'
// batches and their count, so a re-sent message deduplicates. Each event
// also carries its own id, which ClickHouse deduplicates on.
func joinTelemetry(batch []*telemetryReq) *nats.Msg {
	if len(batch) == 1 {
		return batch[0].msg
	}
	size := 2
	for _, r := range batch {
		size += len(r.msg.Data)
	}
	data := make([]byte, 0, size)
	data = append(data, '[')
	for i, r := range batch {
		inner := bytes.TrimSpace(r.msg.Data)
		inner = bytes.TrimSpace(inner[1 : len(inner)-1]) // telemetryMsg encodes a non-empty array
		if i > 0 {
			data = append(data, ',')
		}
		data = append(data, inner...)
	}
	data = append(data, ']')
	first, last := batch[0].msg.Header.Get(jetstream.MsgIDHeader), batch[len(batch)-1].msg.Header.Get(jetstream.MsgIDHeader)
	m := &nats.Msg{Subject: batch[0].msg.Subject, Data: data, Header: nats.Header{}}
	m.Header.Set(jetstream.MsgIDHeader, first+"+"+strconv.Itoa(len(batch))+"+"+last)
	return m
}
