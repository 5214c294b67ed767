package dlq_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/broker/dlq"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/llm/mock"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

func TestListAndReplay(t *testing.T) {
	env := testenv.Start(t, []testenv.Provider{{Name: "a", Faults: mock.Faults{ErrorRate: 1, ErrorStatus: 503}}})
	env.StartPools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A new, empty DLQ lists nothing (it used to ask the server for message 0).
	if entries, err := dlq.List(ctx, env.JS, 0, 0); err != nil || len(entries) != 0 {
		t.Fatalf("empty dlq list = %v, %v", entries, err)
	}

	res, err := env.Client.Complete(ctx, &schemas.Job{Request: testenv.Chat("dead"), Metadata: map[string]string{"tenant": "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != schemas.StatusFailed {
		t.Fatalf("result = %+v", res)
	}
	var entries []dlq.Entry
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		entries, err = dlq.List(ctx, env.JS, 0, 0)
		if err != nil {
			return err
		}
		if len(entries) != 1 {
			return fmt.Errorf("%d dead letters", len(entries))
		}
		return nil
	})
	e := entries[0]
	if e.JobID != res.ID || e.Route != "chat" || e.Tenant != "acme" || e.Subject != topology.DLQ(topology.DLQExhausted) || e.Reason == "" {
		t.Fatalf("entry = %+v", e)
	}

	// A poison message is listed but cannot be replayed.
	if _, err := env.JS.Publish(ctx, topology.DLQ(topology.DLQPoison), []byte("not a job")); err != nil {
		t.Fatal(err)
	}
	entries, _ = dlq.List(ctx, env.JS, 0, 0)
	if len(entries) != 2 || entries[1].JobID != "" {
		t.Fatalf("entries = %+v", entries)
	}
	if _, err := dlq.Replay(ctx, env.JS, env.Client, entries[1].Seq); !errors.Is(err, dlq.ErrNotReplayable) {
		t.Fatalf("replay poison: %v", err)
	}

	// A sequence number that holds no dead letter says so, not a raw API error.
	if _, err := dlq.Replay(ctx, env.JS, env.Client, 99); !errors.Is(err, dlq.ErrNotFound) || strings.Contains(err.Error(), "API error") ||
		!strings.Contains(err.Error(), "dead letter 99") || !strings.Contains(err.Error(), "dlq list") {
		t.Fatalf("replay 99: %v", err)
	}

	// The provider recovers; the replayed job succeeds and its letter is gone.
	env.Mocks["a"].SetFaults(mock.Faults{})
	done, err := dlq.Replay(ctx, env.JS, env.Client, e.Seq)
	if err != nil || done.JobID != res.ID {
		t.Fatalf("replay: %s %v", done, err)
	}
	id := done.JobID
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		r, err := env.Client.Result(ctx, id)
		if err != nil {
			return err
		}
		if r.Status != schemas.StatusSucceeded {
			return fmt.Errorf("status %s", r.Status)
		}
		if len(r.Attempts) < 3 {
			return fmt.Errorf("attempt history lost: %d attempts", len(r.Attempts))
		}
		return nil
	})
	entries, _ = dlq.List(ctx, env.JS, 0, 0)
	if len(entries) != 1 || entries[0].JobID != "" {
		t.Fatalf("after replay: %+v", entries)
	}
	// Both runs' outcomes are in the telemetry, under different ids, so the
	// replay's success is recorded beside the first run's failure.
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		outcomes := completions(t, env, id)
		if len(outcomes) != 2 || outcomes[0].Status != schemas.StatusFailed || outcomes[1].Status != schemas.StatusSucceeded ||
			outcomes[0].EventID == outcomes[1].EventID {
			return fmt.Errorf("completion events %+v, want a failed and a succeeded one with distinct ids", outcomes)
		}
		return nil
	})
}

// completions reads the completion events of a job from TELEMETRY.
func completions(t *testing.T, env *testenv.Env, jobID string) []schemas.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := env.JS.OrderedConsumer(ctx, topology.StreamTelemetry, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.FetchNoWait(1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []schemas.Event
	for m := range batch.Messages() {
		var evs []schemas.Event
		if m.Subject() != topology.TelemetryBatch || json.Unmarshal(m.Data(), &evs) != nil {
			continue
		}
		for _, ev := range evs {
			if ev.JobID == jobID && ev.Kind == schemas.EventCompletion {
				out = append(out, ev)
			}
		}
	}
	return out
}
