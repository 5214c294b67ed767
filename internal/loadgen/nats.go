package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// Ways to drive jobs over NATS.
const (
	// ViaSubmit publishes each job to llm.submit (JetStream, confirmed)
	// and waits for its Result on llm.results.<batch>.<id>.
	ViaSubmit = "submit"
	// ViaComplete sends each job as a request to llm.complete.
	ViaComplete = "complete"
)

// errFailed marks a job answered with a failed Result.
var errFailed = errors.New("job failed")

// JobTarget drives jobs over NATS to model, a route name or a pinned
// "provider/model" as over HTTP (request: the chat body). Its
// Call returns once the job's Result has arrived; close stops listening
// for Results. Jobs carry a batch id of their own, so their Results are
// told apart from other traffic.
func JobTarget(nc *nats.Conn, js jetstream.JetStream, via, model string, request json.RawMessage) (t Target, closeFn func(), err error) {
	switch via {
	case ViaSubmit:
		return submitTarget(nc, js, model, request)
	case ViaComplete:
		return Target{Name: "nats-complete", Call: func(ctx context.Context) error {
			data, err := json.Marshal(newJob(model, "", request))
			if err != nil {
				return err
			}
			msg, err := nc.RequestWithContext(ctx, topology.SubjectComplete, data)
			if err != nil {
				return err
			}
			if code := msg.Header.Get("Nats-Service-Error-Code"); code != "" {
				return fmt.Errorf("%w: %s %s", errFailed, code, msg.Header.Get("Nats-Service-Error"))
			}
			return resultErr(msg.Data)
		}}, func() {}, nil
	}
	return Target{}, nil, fmt.Errorf("%w: via %q (want %s or %s)", ErrInvalid, via, ViaSubmit, ViaComplete)
}

// newJob is a job for model (a route, or "provider/model") in batch.
func newJob(model, batch string, request json.RawMessage) *schemas.Job {
	j := &schemas.Job{ID: schemas.NewJobID(), Batch: batch, Request: request}
	if strings.Contains(model, "/") {
		j.Model = model
	} else {
		j.Route = model
	}
	return j
}

func submitTarget(nc *nats.Conn, js jetstream.JetStream, model string, request json.RawMessage) (Target, func(), error) {
	batch := "bench_" + schemas.NewJobID()
	var mu sync.Mutex
	waiting := map[string]chan []byte{}
	sub, err := nc.Subscribe(topology.BatchResults(batch), func(m *nats.Msg) {
		id := m.Subject[len(topology.Result(batch, "")):]
		mu.Lock()
		ch := waiting[id]
		delete(waiting, id)
		mu.Unlock()
		if ch != nil {
			ch <- m.Data
		}
	})
	if err != nil {
		return Target{}, nil, fmt.Errorf("subscribe to results: %w", err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	call := func(ctx context.Context) error {
		job := newJob(model, batch, request)
		id := job.ID
		data, err := json.Marshal(job)
		if err != nil {
			return err
		}
		ch := make(chan []byte, 1)
		mu.Lock()
		waiting[id] = ch
		mu.Unlock()
		defer func() {
			mu.Lock()
			delete(waiting, id)
			mu.Unlock()
		}()
		if _, err := js.Publish(ctx, topology.SubjectSubmit, data); err != nil {
			return fmt.Errorf("publish job: %w", err)
		}
		select {
		case res := <-ch:
			return resultErr(res)
		case <-ctx.Done():
			return fmt.Errorf("waiting for the result: %w", ctx.Err())
		}
	}
	return Target{Name: "nats-submit", Call: call}, func() { _ = sub.Unsubscribe() }, nil
}

// JobSize is the size of the jobs JobTarget publishes.
func JobSize(model string, request json.RawMessage) int {
	data, _ := json.Marshal(newJob(model, "bench_"+schemas.NewJobID(), request))
	return len(data)
}

// resultErr is nil for a succeeded Result.
func resultErr(data []byte) error {
	res, err := schemas.DecodeResult(data)
	if err != nil {
		return fmt.Errorf("decode result: %w", err)
	}
	if res.Status != schemas.StatusSucceeded {
		msg := res.Status
		if res.Error != nil {
			msg = res.Error.Type + ": " + res.Error.Message
		}
		return fmt.Errorf("%w: %s", errFailed, msg)
	}
	return nil
}

// RawPublish is the anchor of a NATS run: n messages of size bytes
// published to JetStream async, flat out, into a file-backed stream of
// its own (deleted afterwards), as fast as the server confirms them.
func RawPublish(ctx context.Context, js jetstream.JetStream, n, size int) (Stats, error) {
	name := "BENCH_" + schemas.NewJobID()
	subject := "bench." + name
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subject},
		Storage: jetstream.FileStorage, MaxAge: 10 * time.Minute})
	if err != nil {
		return Stats{}, fmt.Errorf("create stream %s: %w", name, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = js.DeleteStream(dctx, s.CachedInfo().Config.Name)
	}()
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = 'x'
	}
	rec := &recorder{}
	start := time.Now()
	futs := make([]jetstream.PubAckFuture, 0, n)
	for i := 0; i < n && ctx.Err() == nil; i++ {
		f, err := js.PublishAsync(subject, payload)
		if err != nil {
			rec.add(0, err)
			continue
		}
		futs = append(futs, f)
	}
	for _, f := range futs {
		select {
		case <-f.Ok():
			rec.add(0, nil)
		case err := <-f.Err():
			rec.add(0, err)
		case <-ctx.Done():
			return rec.stats("raw-jetstream", time.Since(start)), ctx.Err()
		}
	}
	st := rec.stats("raw-jetstream", time.Since(start))
	st.P50, st.P90, st.P99, st.Max = 0, 0, 0, 0 // not timed per message
	return st, nil
}
