package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/schemas"
)

// resultRecheck is how often a waiting request also reads the stored
// Result, in case its reply was lost (e.g. during a NATS reconnect).
const resultRecheck = 5 * time.Second

// replies multiplexes the Results of this gateway's sync jobs over one
// wildcard subscription: each job's Reply is <prefix><job id>, so waiting
// costs no per-request subscription.
type replies struct {
	prefix string
	sub    *nats.Subscription

	mu      sync.Mutex
	waiters map[string]chan *nats.Msg
}

func newReplies(nc *nats.Conn) (*replies, error) {
	r := &replies{prefix: nc.NewInbox() + ".", waiters: map[string]chan *nats.Msg{}}
	sub, err := nc.Subscribe(r.prefix+"*", r.deliver)
	if err != nil {
		return nil, fmt.Errorf("gateway: subscribe to replies: %w", err)
	}
	r.sub = sub
	return r, nil
}

func (r *replies) deliver(m *nats.Msg) {
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

// register returns the reply subject of a job and the channel its Result
// arrives on; release it with unregister.
func (r *replies) register(jobID string) (string, chan *nats.Msg) {
	ch := make(chan *nats.Msg, 1)
	r.mu.Lock()
	r.waiters[jobID] = ch
	r.mu.Unlock()
	return r.prefix + jobID, ch
}

func (r *replies) unregister(jobID string) {
	r.mu.Lock()
	delete(r.waiters, jobID)
	r.mu.Unlock()
}

func (r *replies) close() error { return r.sub.Unsubscribe() }

// errClientGone means the caller went away before the Result.
var errClientGone = errors.New("client disconnected")

// run publishes a routed, prepared job with a reply subject and waits for
// its Result until ctx ends. clientCtx tells a client that left (the job is
// canceled, errClientGone) from a passed deadline (canceled,
// broker.ErrDeadlineExceeded).
func (s *Server) run(ctx, clientCtx context.Context, job *schemas.Job) (*schemas.Result, error) {
	var ch chan *nats.Msg
	job.Reply, ch = s.replies.register(job.ID)
	defer s.replies.unregister(job.ID)
	// Finish a publish under way even if the client leaves; cancel after.
	pubCtx, pubCancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	err := broker.PublishJob(pubCtx, s.js, job)
	pubCancel()
	if err != nil {
		return nil, err
	}
	recheck := time.NewTicker(resultRecheck)
	defer recheck.Stop()
	for {
		select {
		case m := <-ch:
			return schemas.DecodeResult(m.Data)
		case <-recheck.C:
			if res, err := s.client.Result(ctx, job.ID); err == nil {
				return res, nil
			}
		case <-ctx.Done():
			if res, err := s.client.Result(context.WithoutCancel(ctx), job.ID); err == nil {
				return res, nil
			}
			if clientCtx.Err() != nil {
				s.cancelJob(job.ID, "client disconnected")
				return nil, errClientGone
			}
			s.cancelJob(job.ID, "deadline exceeded")
			return nil, fmt.Errorf("job %s: %w", job.ID, broker.ErrDeadlineExceeded)
		}
	}
}
