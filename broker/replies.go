package broker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// resultRecheck is how often a waiting caller also reads the stored Result,
// in case its reply was lost (e.g. during a NATS reconnect).
const resultRecheck = 5 * time.Second

// PublishTimeout bounds the wait for JetStream to store a job.
const PublishTimeout = 10 * time.Second

// replyMux multiplexes the Results of a client's sync jobs over one wildcard
// subscription: each job's Reply is <prefix><job id>, so waiting costs no
// per-request subscription.
type replyMux struct {
	prefix string
	sub    *nats.Subscription

	mu      sync.Mutex
	waiters map[string]chan *nats.Msg
}

func newReplyMux(nc *nats.Conn) (*replyMux, error) {
	r := &replyMux{prefix: nc.NewInbox() + ".", waiters: map[string]chan *nats.Msg{}}
	sub, err := nc.Subscribe(r.prefix+"*", r.deliver)
	if err != nil {
		return nil, fmt.Errorf("subscribe to replies: %w", err)
	}
	r.sub = sub
	return r, nil
}

func (r *replyMux) deliver(m *nats.Msg) {
	id := strings.TrimPrefix(m.Subject, r.prefix)
	r.mu.Lock()
	ch := r.waiters[id]
	r.mu.Unlock()
	if ch != nil {
		select {
		case ch <- m:
		default: // a duplicate; the first one answers
		}
	}
}

// deliverData hands data to the waiter of subject, if subject is one of
// this mux's reply subjects (else false).
func (r *replyMux) deliverData(subject string, data []byte) bool {
	if !strings.HasPrefix(subject, r.prefix) {
		return false
	}
	r.deliver(&nats.Msg{Subject: subject, Data: data})
	return true
}

// register returns the reply subject of a job and the channel its Result
// arrives on; release it with unregister.
func (r *replyMux) register(jobID string) (string, chan *nats.Msg) {
	ch := make(chan *nats.Msg, 1)
	r.mu.Lock()
	r.waiters[jobID] = ch
	r.mu.Unlock()
	return r.prefix + jobID, ch
}

func (r *replyMux) unregister(jobID string) {
	r.mu.Lock()
	delete(r.waiters, jobID)
	r.mu.Unlock()
}

// replies returns the client's reply multiplexer, subscribing on first use.
func (c *Client) replies() (*replyMux, error) {
	c.muxOnce.Do(func() { c.mux, c.muxErr = newReplyMux(c.nc) })
	return c.mux, c.muxErr
}

// DeliverReply hands a Result to a caller waiting in Await on this client,
// in process, when subject is one of this client's reply subjects; it
// reports false for any other subject, which must then be published. A
// pool in the same process as the waiting caller (`switchboard up`) answers
// through it instead of through the server. Only the mux's subscription
// listens on these subjects, so nothing else misses the message.
func (c *Client) DeliverReply(subject string, data []byte) bool {
	mux, err := c.replies()
	if err != nil {
		return false
	}
	return mux.deliverData(subject, data)
}

// Close releases the client's reply subscription, if any. The connection
// belongs to the caller.
func (c *Client) Close() error {
	if c.mux == nil {
		return nil
	}
	return c.mux.sub.Unsubscribe()
}

// Await publishes a prepared job with a reply subject and waits for its
// Result until ctx ends. A publish under way is finished even if ctx ends
// meanwhile. When ctx ends first, the stored Result is read one last time;
// failing that, the error wraps ErrDeadlineExceeded (ctx's deadline passed)
// or ctx's error.
func (c *Client) Await(ctx context.Context, job *schemas.Job) (*schemas.Result, error) {
	mux, err := c.replies()
	if err != nil {
		return nil, err
	}
	var ch chan *nats.Msg
	job.Reply, ch = mux.register(job.ID)
	defer mux.unregister(job.ID)
	publish := func() error {
		pubCtx, pubCancel := context.WithTimeout(context.WithoutCancel(ctx), PublishTimeout)
		defer pubCancel()
		return topology.PublishJob(pubCtx, c.js, job)
	}
	// The job is published without waiting for its confirmation, which
	// overlaps the worker's delivery (a reply can only come from a stored
	// job); a publish that failed or is not confirmed within
	// topology.ConfirmWait (a confirmation lost with a stream leader) is
	// made again synchronously (same dedup id; the Replicated JetStream
	// retries it until confirmed), which reports a full queue or an
	// outage.
	var pubOK <-chan *jetstream.PubAck
	var pubErr <-chan error
	var pubLate <-chan time.Time
	if fut, err := topology.PublishJobAsync(c.js, job); err == nil {
		late := time.NewTimer(topology.ConfirmWait)
		defer late.Stop()
		pubOK, pubErr, pubLate = fut.Ok(), fut.Err(), late.C
	} else if err := publish(); err != nil {
		return nil, err
	}
	recheck := time.NewTicker(resultRecheck)
	defer recheck.Stop()
	for {
		select {
		case <-pubOK:
			pubOK, pubErr, pubLate = nil, nil, nil
		case <-pubErr:
			pubOK, pubErr, pubLate = nil, nil, nil
			if err := publish(); err != nil {
				return nil, err
			}
		case <-pubLate:
			pubOK, pubErr, pubLate = nil, nil, nil
			if err := publish(); err != nil {
				return nil, err
			}
		case m := <-ch:
			return schemas.DecodeResult(m.Data)
		case <-recheck.C:
			if res, err := c.Result(ctx, job.ID); err == nil {
				return res, nil
			}
		case <-ctx.Done():
			if res, err := c.Result(context.WithoutCancel(ctx), job.ID); err == nil {
				return res, nil
			}
			if ctx.Err() == context.DeadlineExceeded {
				return nil, fmt.Errorf("job %s: %w", job.ID, ErrDeadlineExceeded)
			}
			return nil, fmt.Errorf("wait for job %s: %w", job.ID, ctx.Err())
		}
	}
}
