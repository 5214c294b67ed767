package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/schemas"
)

// Chat returns a minimal chat-completions body.
func Chat(prompt string) []byte {
	return []byte(`{"messages":[{"role":"user","content":"` + prompt + `"}]}`)
}

// Submit routes and publishes a job with c and returns its id, failing the
// test on an error.
func Submit(t testing.TB, c *broker.Client, job *schemas.Job) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id, err := c.Submit(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// AwaitResult polls for the stored Result of a job until it is there,
// failing the test if it is not within the given time.
func AwaitResult(t testing.TB, c *broker.Client, id string, within time.Duration) *schemas.Result {
	t.Helper()
	var res *schemas.Result
	natstest.CheckFor(t, within, 10*time.Millisecond, func() error {
		r, err := c.Result(context.Background(), id)
		if err != nil {
			return err
		}
		res = r
		return nil
	})
	return res
}

// StreamCount returns how many messages a stream holds on a subject filter.
func StreamCount(t testing.TB, js jetstream.JetStream, stream, subject string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return int(n)
}

// StreamCount is StreamCount on the environment's connection.
func (e *Env) StreamCount(t testing.TB, stream, subject string) int {
	t.Helper()
	return StreamCount(t, e.JS, stream, subject)
}
