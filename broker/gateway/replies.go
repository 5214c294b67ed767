package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/schemas"
)

// errClientGone means the caller went away before the Result.
var errClientGone = errors.New("client disconnected")

// DeliverReply hands a Result to a request of this gateway waiting for it,
// in process, when subject is the request's reply subject (false for any
// other subject): the pools of the same process (`switchboard up`) answer
// through it instead of through the server (workers.PoolConfig.LocalReply).
func (s *Server) DeliverReply(subject string, data []byte) bool {
	return s.client.DeliverReply(subject, data)
}

// run publishes a routed, prepared job with a reply subject and waits for
// its Result until ctx ends. clientCtx tells a client that left (the job is
// canceled, errClientGone) from a passed deadline (canceled,
// broker.ErrDeadlineExceeded).
func (s *Server) run(ctx, clientCtx context.Context, job *schemas.Job) (*schemas.Result, error) {
	res, err := s.client.Await(ctx, job)
	if err == nil || ctx.Err() == nil {
		return res, err
	}
	if clientCtx.Err() != nil {
		s.cancelJob(job.ID, "client disconnected")
		return nil, errClientGone
	}
	s.cancelJob(job.ID, "deadline exceeded")
	return nil, fmt.Errorf("job %s: %w", job.ID, broker.ErrDeadlineExceeded)
}
