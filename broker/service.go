package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// ServiceName is the NATS micro service name.
const ServiceName = "switchboard"

// ServiceVersion is the micro service's semantic version.
const ServiceVersion = "1.0.0"

// Service answers sync completion requests on llm.complete: the request is a
// Job, the reply a Result. The handler only validates and enqueues; the worker
// that finishes the job replies straight to the requester's inbox, so one
// service instance never holds a request open.
type Service struct {
	client  *Client
	log     *slog.Logger
	sem     chan struct{}  // bounds the publishes in flight
	wg      sync.WaitGroup // the publishes in flight, waited for by Run
	mu      sync.Mutex     // guards stopped against wg.Add after Run's Wait began
	stopped bool
}

// NewService returns the request-reply service for client. A job that
// carries no deadline gets the live config's gateway.request_timeout, so
// work stops once no requester can still be waiting.
func NewService(client *Client, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	return &Service{client: client, log: log, sem: make(chan struct{}, 256)}
}

// Run registers the service and serves until ctx ends; it returns once the
// requests it took are enqueued (or answered with their error).
func (s *Service) Run(ctx context.Context) error {
	svc, err := micro.AddService(s.client.Conn(), micro.Config{
		Name:        ServiceName,
		Version:     ServiceVersion,
		Description: "LLM completion broker: request = Job JSON, reply = Result JSON",
		Endpoint: &micro.EndpointConfig{
			Subject: topology.SubjectComplete,
			Handler: micro.HandlerFunc(s.handle),
			Metadata: map[string]string{
				"request": "schemas/v1/job.json", "reply": "schemas/v1/result.json",
			},
		},
	})
	if err != nil {
		return fmt.Errorf("register service %s: %w", ServiceName, err)
	}
	<-ctx.Done()
	err = svc.Stop()
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Service) handle(req micro.Request) {
	if req.Reply() == "" {
		s.log.Warn("llm.complete: request without a reply subject dropped")
		return
	}
	if !ReplyAllowed(req.Reply()) {
		// Answering there would publish into a stream or the server's API
		// (a forged Result, a KV write): nothing is sent to it.
		s.log.Warn("llm.complete: request with a reply subject inside llm.> or $> dropped", "reply", schemas.Quote(req.Reply()))
		return
	}
	cfg := s.client.resolver.Config()
	job, err := schemas.DecodeJob(req.Data(), cfg.Limits.MaxJobBytes)
	if err != nil {
		s.fail(req, &schemas.Job{}, err)
		return
	}
	if timeout := cfg.Gateway.RequestTimeout; job.Deadline == nil && timeout > 0 {
		d := time.Now().Add(timeout).UTC()
		job.Deadline = &d
	}
	// Producer-set broker fields (reply, plan, hop, ...) are ignored; the
	// reply is the requester's own.
	if err := s.client.Admit(job); err != nil {
		s.fail(req, job, err)
		return
	}
	job.Reply = req.Reply()
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		s.fail(req, job, ErrStopping)
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	s.sem <- struct{}{}
	go func() {
		defer s.wg.Done()
		defer func() { <-s.sem }()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := topology.PublishJob(ctx, s.client.js, job); err != nil {
			s.fail(req, job, err)
		}
	}()
}

// ReplyAllowed reports whether a requester's reply subject may receive a
// Result: not inside llm.> (the streams' subjects: a reply there would be
// stored as a forged Result, job or dead letter) nor $> (the server's
// JetStream, KV and system API).
func ReplyAllowed(reply string) bool {
	return !strings.HasPrefix(reply, "llm.") && !strings.HasPrefix(reply, "$")
}

// fail replies with a failed Result and the micro error headers.
func (s *Service) fail(req micro.Request, job *schemas.Job, err error) {
	errType, code := RejectType(err)
	res := FailedResult(job, errType, err.Error(), time.Now())
	if schemas.CheckMetadata(job.Metadata) != nil {
		res.Metadata = nil // over its limits: not echoed back
	}
	data, _ := json.Marshal(res)
	if rerr := req.Error(strconv.Itoa(code), err.Error(), data); rerr != nil {
		s.log.Warn("llm.complete: reply", "err", rerr)
	}
}
