package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/router"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// Client submits jobs to JetStream and waits for their results.
type Client struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	resolver *router.Resolver

	muxOnce sync.Once
	mux     *replyMux
	muxErr  error
}

// NewClient returns a client that routes jobs with resolver.
func NewClient(nc *nats.Conn, js jetstream.JetStream, resolver *router.Resolver) *Client {
	return &Client{nc: nc, js: js, resolver: resolver}
}

// Conn returns the client's NATS connection.
func (c *Client) Conn() *nats.Conn { return c.nc }

// Prepare fills a job's defaults, validates it and resolves its plan without
// publishing it. Errors wrap schemas.ErrInvalid and name the field.
func (c *Client) Prepare(job *schemas.Job) error {
	if err := job.Prepare(time.Now()); err != nil {
		return err
	}
	if job.Expired(time.Now()) {
		return fmt.Errorf("job %s: %w", job.ID, ErrDeadlineExceeded)
	}
	if err := c.resolver.Resolve(job); err != nil {
		return err
	}
	// The request dominates a job's size; JOBS allows twice the limit per
	// message for the envelope and the attempt history a job gathers.
	size := len(job.Request)
	if job.Native != nil {
		size += len(job.Native.Body) // a native request travels beside its translation
	}
	if max := c.resolver.Config().Limits.MaxJobBytes; max > 0 && size > max {
		return &schemas.FieldError{Field: "request", Msg: fmt.Sprintf("is %d bytes, over the limit of %d", size, max)}
	}
	return nil
}

// Submit validates and routes a job, publishes it to its first target's
// subject with a dedup id and returns the job id. The job is durable when
// Submit returns nil; publishing the same job id twice runs it once.
func (c *Client) Submit(ctx context.Context, job *schemas.Job) (string, error) {
	if err := c.Prepare(job); err != nil {
		return "", err
	}
	if err := topology.PublishJob(ctx, c.js, job); err != nil {
		return "", err
	}
	return job.ID, nil
}

// Complete submits a job and waits for its Result until ctx ends or the job's
// deadline passes. A job without a deadline inherits ctx's, so workers skip
// it once nobody waits. A failed job returns its Result and a nil error.
func (c *Client) Complete(ctx context.Context, job *schemas.Job) (*schemas.Result, error) {
	if err := c.Prepare(job); err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok && job.Deadline == nil {
		d := dl.UTC()
		job.Deadline = &d
	}
	if job.Deadline != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, *job.Deadline)
		defer cancel()
	}
	return c.Await(ctx, job)
}

// Result returns the stored Result of a job, or ErrResultNotFound.
func (c *Client) Result(ctx context.Context, jobID string) (*schemas.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stream, err := c.js.Stream(ctx, topology.StreamResults)
	if err != nil {
		return nil, fmt.Errorf("results stream: %w", err)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, topology.ResultByID(jobID))
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, fmt.Errorf("job %s: %w", jobID, ErrResultNotFound)
		}
		return nil, fmt.Errorf("read result of job %s: %w", jobID, err)
	}
	return schemas.DecodeResult(msg.Data)
}
