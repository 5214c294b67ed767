package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// chunkBuffer bounds the chunks buffered per stream between NATS and a slow
// client; beyond it chunks are dropped and the stream ends in an error.
const chunkBuffer = 1024

// errorChunkGrace bounds the wait for a failed stream's Result after its
// error chunk.
const errorChunkGrace = 2 * time.Second

// handleChat serves POST /v1/chat/completions.
func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body := bodyFrom(r)
	fields, e := topLevel(body)
	if e != nil {
		s.writeError(w, r, "chat", "", e)
		return
	}
	job, stream, e := s.jobFromChat(r, body, fields)
	if e != nil {
		s.writeError(w, r, "chat", "", e)
		return
	}
	if err := s.client.Prepare(job); err != nil {
		s.writeError(w, r, "chat", s.label(job), fromSubmit(err, "request."))
		return
	}
	s.answer(w, r, job, stream, openAIDialect, start)
}

// handleEmbeddings serves POST /v1/embeddings (OpenAI's shape): a job of
// kind embeddings through the same queue, routes and failover, answered
// with the embeddings list of whichever target served it.
func (s *Server) handleEmbeddings(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body := bodyFrom(r)
	fields, e := topLevel(body)
	if e != nil {
		s.writeError(w, r, "embeddings", "", e)
		return
	}
	if raw, ok := fields["stream"]; ok && !isNull(raw) && string(raw) != "false" {
		s.writeError(w, r, "embeddings", "", invalid("stream", "stream: embeddings are not streamed"))
		return
	}
	job, _, e := s.jobFromChat(r, body, fields)
	if e != nil {
		s.writeError(w, r, "embeddings", "", e)
		return
	}
	job.Kind = schemas.KindEmbeddings
	if err := s.client.Prepare(job); err != nil {
		s.writeError(w, r, "embeddings", s.label(job), fromSubmit(err, "request."))
		return
	}
	s.answer(w, r, job, false, embeddingsDialect, start)
}

// answer runs a prepared job and answers it in dialect d.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, job *schemas.Job, stream bool, d *dialect, start time.Time) {
	w.Header().Set(HeaderJobID, job.ID)
	if stream {
		s.stream(w, r, job, d, start)
		return
	}
	s.complete(w, r, job, d, start)
}

// waitContext bounds waiting for a job: its own deadline, else
// gateway.request_timeout of the live config (which then becomes the job's
// deadline, so workers skip it once nobody waits).
func (s *Server) waitContext(ctx context.Context, job *schemas.Job) (context.Context, context.CancelFunc) {
	if job.Deadline == nil {
		d := time.Now().Add(s.config().Gateway.RequestTimeout).UTC()
		job.Deadline = &d
	}
	return context.WithDeadline(ctx, *job.Deadline)
}

// cancelJob asks the worker running a job to cancel its upstream call.
func (s *Server) cancelJob(id, reason string) {
	if err := s.nc.Publish(topology.Cancel(id), []byte(reason)); err != nil {
		s.log.Warn("publish cancel", "job_id", id, "err", err)
	}
}

func (s *Server) done(endpoint, route string, status int, start time.Time) {
	s.metrics.requests.WithLabelValues(endpoint, route, strconv.Itoa(status)).Inc()
	s.metrics.duration.WithLabelValues(endpoint, route).Observe(time.Since(start).Seconds())
}

// complete serves a non-streaming request.
func (s *Server) complete(w http.ResponseWriter, r *http.Request, job *schemas.Job, d *dialect, start time.Time) {
	ctx, cancel := s.waitContext(r.Context(), job)
	defer cancel()
	res, err := s.run(ctx, r.Context(), job)
	route := s.label(job)
	if err != nil {
		if errors.Is(err, errClientGone) {
			s.done(d.name, route, StatusClientClosed, start)
			return
		}
		e := fromSubmit(err, "request.")
		d.writeError(w, e)
		s.done(d.name, route, e.Status, start)
		return
	}
	s.metrics.observeResult(route, res, s.modelLabel)
	setResultHeaders(w, res)
	if res.Status != schemas.StatusSucceeded {
		e := fromResult(res)
		d.writeError(w, e)
		s.done(d.name, route, e.Status, start)
		return
	}
	out, err := d.response(res)
	if err != nil {
		e := &apiError{Status: http.StatusBadGateway, Type: typeUpstream, Code: schemas.ErrBadResponse, Message: "could not translate the answer: " + err.Error()}
		d.writeError(w, e)
		s.done(d.name, route, e.Status, start)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(out)
	s.done(d.name, route, http.StatusOK, start)
}

func setResultHeaders(w http.ResponseWriter, res *schemas.Result) {
	h := w.Header()
	if res.Provider != "" {
		h.Set(HeaderProvider, res.Provider)
	}
	if res.Model != "" {
		h.Set(HeaderModel, res.Model)
	}
	h.Set(HeaderAttempts, strconv.Itoa(len(res.Attempts)))
}

// sse writes server-sent events, flushing each.
type sse struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func (e *sse) start(provider, model string) {
	h := e.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Set("Trailer", HeaderAttempts)
	if provider != "" {
		h.Set(HeaderProvider, provider)
	}
	if model != "" {
		h.Set(HeaderModel, model)
	}
	e.w.WriteHeader(http.StatusOK)
	e.started = true
}

// comment writes an SSE comment line (ignored by SSE clients, readable on
// the wire).
func (e *sse) comment(text string) error {
	if _, err := e.w.Write([]byte(": " + text + "\n\n")); err != nil {
		return err
	}
	return e.rc.Flush()
}

// attemptsComment is the comment that ends a succeeded stream with the
// attempts count (X-Switchboard-Attempts is only a trailer on streams,
// which SDKs do not read).
func attemptsComment(out *sse, res *schemas.Result) {
	if res != nil {
		_ = out.comment("x-switchboard-attempts: " + strconv.Itoa(len(res.Attempts)))
	}
}

// event writes a named event ("event: NAME" then its data line).
func (e *sse) event(name string, payload []byte) error {
	if _, err := e.w.Write([]byte("event: " + name + "\n")); err != nil {
		return err
	}
	return e.data(payload)
}

func (e *sse) data(payload []byte) error {
	if bytes.IndexByte(payload, '\n') >= 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, payload); err == nil {
			payload = buf.Bytes()
		}
	}
	if _, err := e.w.Write([]byte("data: ")); err != nil {
		return err
	}
	if _, err := e.w.Write(payload); err != nil {
		return err
	}
	if _, err := e.w.Write([]byte("\n\n")); err != nil {
		return err
	}
	return e.rc.Flush()
}

// stream serves a streaming chat completion: it subscribes to the job's
// chunks and result before publishing the job, holds the response until the
// first chunk (so failover before it is invisible), relays every chunk and
// ends with [DONE] when the Result arrives, or with an error event.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, job *schemas.Job, d *dialect, start time.Time) {
	route := s.label(job)
	job.Stream = true
	ctx, cancel := s.waitContext(r.Context(), job)
	defer cancel()

	msgs := make(chan *nats.Msg, chunkBuffer)
	chunkSub, err := s.nc.ChanSubscribe(topology.Chunks(job.ID), msgs)
	if err != nil {
		s.writeError(w, r, d.name+"_stream", route, fromSubmit(fmt.Errorf("subscribe to chunks: %w", err), ""))
		return
	}
	defer chunkSub.Unsubscribe()
	resultSubject := topology.Result(job.Batch, job.ID)
	resSub, err := s.nc.ChanSubscribe(resultSubject, msgs)
	if err != nil {
		s.writeError(w, r, d.name+"_stream", route, fromSubmit(fmt.Errorf("subscribe to result: %w", err), ""))
		return
	}
	defer resSub.Unsubscribe()
	// A publish under way when the client leaves may still store the job:
	// finish it, then cancel the job below if nobody waits any more.
	pubCtx, pubCancel := context.WithTimeout(context.WithoutCancel(ctx), broker.PublishTimeout)
	err = topology.PublishJob(pubCtx, s.js, job)
	pubCancel()
	if err != nil {
		s.writeError(w, r, d.name+"_stream", route, fromSubmit(err, "request."))
		return
	}

	out := &sse{w: w, rc: http.NewResponseController(w)}
	conv := d.newStream(job)
	status := http.StatusOK
	defer func() { s.done(d.name+"_stream", route, status, start) }()
	fail := func(e *apiError) {
		status = e.Status
		if !out.started {
			d.writeError(w, e)
			return
		}
		conv.fail(out, e)
	}
	finish := func(res *schemas.Result) {
		s.metrics.observeResult(route, res, s.modelLabel)
		w.Header().Set(HeaderAttempts, strconv.Itoa(len(res.Attempts)))
		if res.Status != schemas.StatusSucceeded {
			if !out.started {
				setResultHeaders(w, res)
			}
			fail(fromResult(res))
			return
		}
		if !out.started {
			// The worker answered without streaming: send the whole
			// completion at once.
			if err := conv.check(res.Response); err != nil {
				fail(&apiError{Status: http.StatusBadGateway, Type: typeUpstream, Code: schemas.ErrBadResponse, Message: "could not convert the completion to a stream: " + err.Error()})
				return
			}
			out.start(res.Provider, res.Model)
			s.metrics.ttft.WithLabelValues(route).Observe(time.Since(start).Seconds())
			conv.whole(out, res.Response)
		}
		conv.done(out, res)
	}
	// After an error chunk the Result follows at once; wait for it briefly
	// (for its attempts and metrics), answering from the chunk if it is late.
	var (
		errChunk *apiError
		grace    <-chan time.Time
	)
	for {
		select {
		case <-grace:
			if !out.started {
				fail(errChunk)
			}
			return
		case <-ctx.Done():
			if r.Context().Err() != nil {
				s.cancelJob(job.ID, "client disconnected")
				status = StatusClientClosed
				return
			}
			// The result's core message may have been missed (reconnect):
			// the stored result is the source of truth.
			if res, err := s.client.Result(context.Background(), job.ID); err == nil {
				finish(res)
				return
			}
			if errChunk != nil {
				if !out.started {
					fail(errChunk)
				}
				return
			}
			s.cancelJob(job.ID, "deadline exceeded")
			fail(&apiError{Status: http.StatusGatewayTimeout, Type: typeTimeout, Code: schemas.ErrDeadlineExceeded,
				Message: "the request's deadline passed before the stream ended"})
			return
		case msg := <-msgs:
			if msg.Subject == resultSubject {
				res, err := schemas.DecodeResult(msg.Data)
				if err != nil {
					if errChunk == nil || !out.started {
						fail(&apiError{Status: http.StatusBadGateway, Type: typeUpstream, Code: schemas.ErrBadResponse, Message: "unreadable result: " + err.Error()})
					}
					return
				}
				if errChunk != nil && out.started {
					// The error event is already sent: just count it.
					s.metrics.observeResult(route, res, s.modelLabel)
					w.Header().Set(HeaderAttempts, strconv.Itoa(len(res.Attempts)))
					return
				}
				finish(res)
				return
			}
			if errChunk != nil {
				continue // the stream is over; only the Result matters now
			}
			if msg.Header.Get(topology.HeaderChunkKind) == "error" {
				var info schemas.ErrorInfo
				if err := json.Unmarshal(msg.Data, &info); err != nil || info.Type == "" {
					info = schemas.ErrorInfo{Type: schemas.ErrBadResponse, Message: "the stream failed"}
				}
				errChunk = fromErrorInfo(&info)
				if out.started {
					fail(errChunk)
				} else {
					w.Header().Set(HeaderProvider, msg.Header.Get(topology.HeaderProvider))
					w.Header().Set(HeaderModel, msg.Header.Get(topology.HeaderModel))
				}
				grace = time.After(errorChunkGrace)
				continue
			}
			if !out.started {
				out.start(msg.Header.Get(topology.HeaderProvider), msg.Header.Get(topology.HeaderModel))
				s.metrics.ttft.WithLabelValues(route).Observe(time.Since(start).Seconds())
			}
			if err := conv.chunk(out, msg.Data); err != nil {
				s.cancelJob(job.ID, "client disconnected")
				status = StatusClientClosed
				return
			}
			if n, _ := chunkSub.Dropped(); n > 0 {
				s.cancelJob(job.ID, "client too slow")
				fail(&apiError{Status: http.StatusBadGateway, Type: typeServer, Code: "stream_overflow",
					Message: fmt.Sprintf("the client read too slowly: %d chunks were dropped", n)})
				return
			}
		}
	}
}

// completionChunk turns a chat.completion into one chat.completion.chunk
// carrying each choice's whole message as its delta.
func completionChunk(resp json.RawMessage) ([]byte, error) {
	var c map[string]any
	if err := json.Unmarshal(resp, &c); err != nil {
		return nil, err
	}
	c["object"] = "chat.completion.chunk"
	if choices, ok := c["choices"].([]any); ok {
		for _, ch := range choices {
			if m, ok := ch.(map[string]any); ok {
				m["delta"] = m["message"]
				delete(m, "message")
			}
		}
	}
	return json.Marshal(c)
}
