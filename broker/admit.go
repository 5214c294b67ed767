package broker

import (
	"errors"
	"fmt"
	"strings"

	"github.com/switchboard-llm/switchboard/router"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// AutoModel is the model name that lets rules and default_route pick the
// route from a job's metadata (unless a route is named "auto"), on every
// entrance alike.
const AutoModel = "auto"

// Admit readies a job a producer sent (llm.submit, llm.complete, POST
// /v1/jobs) the way the HTTP front door readies a chat body: the fields only
// the broker sets are ignored (schemas.Job.ClearBrokerOwned: reply, plan,
// hop, attempts, stream, created_at), a model without '/' names a route
// (ModelAsRoute), and the job is Prepared. The caller sets broker-owned
// fields of its own (llm.complete's reply) after Admit returns.
func (c *Client) Admit(job *schemas.Job) error {
	job.ClearBrokerOwned()
	if err := c.ModelAsRoute(job); err != nil {
		return err
	}
	return c.Prepare(job)
}

// ModelAsRoute reads a model without '/' as a route name, as the HTTP front
// door reads a chat body's model: "chat" is the route chat, "auto" lets
// rules pick (unless a route is named auto). A job naming both a route and
// such a model is refused with a message saying how to name each.
func (c *Client) ModelAsRoute(job *schemas.Job) error {
	if job.Model == "" || strings.Contains(job.Model, "/") {
		return nil
	}
	if job.Route != "" {
		return &schemas.FieldError{Field: "model", Msg: fmt.Sprintf(
			"%s must be provider/model when route is also set (a route is named with \"route\", or with \"model\" alone)", schemas.Quote(job.Model))}
	}
	if job.Model != AutoModel {
		job.Route = job.Model
	} else if _, ok := c.resolver.Config().Route(AutoModel); ok {
		job.Route = AutoModel
	}
	job.Model = ""
	return nil
}

// RejectType maps an error of Admit, Prepare or Submit to the error type of
// the failed Result a NATS producer gets, and its HTTP-like status code (the
// micro service's error code), schemas.HTTPStatus of that type.
func RejectType(err error) (errType string, code int) {
	switch {
	case errors.Is(err, router.ErrBudgetExceeded):
		errType = schemas.ErrBudgetExceeded
	case errors.Is(err, ErrDeadlineExceeded):
		errType = schemas.ErrDeadlineExceeded
	case errors.Is(err, topology.ErrQueueFull):
		errType = schemas.ErrRateLimited
	case errors.Is(err, ErrStopping):
		// No target was asked: the broker cannot serve now (503); the
		// requester retries and another instance takes the job.
		errType = schemas.ErrNoTarget
	case errors.Is(err, schemas.ErrInvalid):
		errType = schemas.ErrInvalidRequest
	default:
		errType = schemas.ErrInternal
	}
	return errType, schemas.HTTPStatus(errType)
}
