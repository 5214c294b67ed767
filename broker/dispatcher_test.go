package broker_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/syncbuf"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// A raw job whose routed publish is refused (JOBS full) is retried with
// backoff (watermill's Retry, then a redelivery), not dead-lettered, and
// runs once the queue has room again.
func TestDispatcherRetriesWhileQueueFull(t *testing.T) {
	env := testenv.Start(t, []testenv.Provider{{Name: "a"}})
	env.Config.Limits.JobsMaxMsgs = 3
	ctx := natstest.Context(t)
	if err := topology.Ensure(ctx, env.JS, env.Config.Limits); err != nil {
		t.Fatal(err)
	}
	// Two routed jobs wait for a pool that is not running yet; the raw job
	// makes three: its routed copy does not fit.
	for range 2 {
		if _, err := env.Client.Submit(ctx, &schemas.Job{Request: testenv.Chat("waiting")}); err != nil {
			t.Fatal(err)
		}
	}
	var logs syncbuf.Buffer
	go func() {
		_ = broker.NewDispatcher(env.Client, env.JS, slog.New(slog.NewTextHandler(&logs, nil))).Run(ctx)
	}()
	id := schemas.NewJobID()
	raw := fmt.Sprintf(`{"id":%q,"request":{"messages":[{"role":"user","content":"queued"}]}}`, id)
	if _, err := env.JS.Publish(ctx, topology.SubjectSubmit, []byte(raw)); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if !strings.Contains(logs.String(), "retrying") || !strings.Contains(logs.String(), topology.ErrQueueFull.Error()) {
			return fmt.Errorf("no retry of the full queue logged yet:\n%s", logs.String())
		}
		return nil
	})
	env.StartPools(t)
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		res, err := env.Client.Result(ctx, id)
		if err != nil {
			return err
		}
		if res.Status != schemas.StatusSucceeded {
			return fmt.Errorf("result %+v", res)
		}
		return nil
	})
	if n := env.StreamCount(t, topology.StreamDLQ, topology.DLQ(topology.DLQPoison)); n != 0 {
		t.Fatalf("%d poison dead letters for a full queue", n)
	}
}

// A poison message's dead letter keeps the DLQ header contract
// (topology.DeadLetterMsg): the reason, the source subject and the dedup id
// submit.<stream sequence>, and none of the router's own metadata.
func TestDispatcherPoisonDeadLetterHeaders(t *testing.T) {
	env := testenv.Start(t, []testenv.Provider{{Name: "a"}})
	ctx := natstest.Context(t)
	go func() { _ = broker.NewDispatcher(env.Client, env.JS, slog.New(slog.DiscardHandler)).Run(ctx) }()
	ack, err := env.JS.Publish(ctx, topology.SubjectSubmit, []byte(`{"v":1,"request":`))
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if n := env.StreamCount(t, topology.StreamDLQ, topology.DLQ(topology.DLQPoison)); n != 1 {
			return fmt.Errorf("poison dead letters = %d", n)
		}
		return nil
	})
	s, err := env.JS.Stream(ctx, topology.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	dl, err := s.GetLastMsgForSubject(ctx, topology.DLQ(topology.DLQPoison))
	if err != nil {
		t.Fatal(err)
	}
	if got := dl.Header.Get(topology.HeaderSource); got != topology.SubjectSubmit {
		t.Errorf("source header %q", got)
	}
	if got, want := dl.Header.Get(jetstream.MsgIDHeader), fmt.Sprintf("submit.%d", ack.Sequence); got != want {
		t.Errorf("dedup id %q, want %q", got, want)
	}
	if reason := dl.Header.Get(topology.HeaderError); !strings.Contains(reason, "invalid JSON") {
		t.Errorf("reason %q", reason)
	}
	for k := range dl.Header {
		if k != topology.HeaderError && k != topology.HeaderSource && k != jetstream.MsgIDHeader {
			t.Errorf("unexpected header %s: %q", k, dl.Header.Get(k))
		}
	}
	// The poison message was acked: nothing is pending on the dispatcher.
	drained(t, env.JS, 10*time.Second, topology.DispatcherConsumer)
}
