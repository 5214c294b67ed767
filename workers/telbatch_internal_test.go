package workers

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/internal/natstest"
)

// A lone job's telemetry waits for company while the pool has room, and
// goes at once when it has none: two jobs finishing one after the other
// share one message with room, and have one each without.
func TestTelemetryLingersOnlyWithRoom(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Context(t)
	_, js := srv.Connect(t)
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		room bool
		want uint64 // stored messages for the two jobs
	}{{"room", true, 1}, {"no room", false, 2}} {
		t.Run(c.name, func(t *testing.T) {
			before, err := stream.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			b := newTelemetryBatcher(js, 5*time.Second, 4, func() bool { return c.room })
			b.linger = time.Second // the second job comes long before that
			runCtx, stop := context.WithCancel(context.Background())
			ran := make(chan struct{})
			go func() { b.run(runCtx); close(ran) }()
			defer func() { stop(); <-ran }()

			msg := func(id string) *nats.Msg {
				m := &nats.Msg{Subject: "t.batch", Data: []byte(`[{"id":"` + id + `"}]`), Header: nats.Header{}}
				m.Header.Set(jetstream.MsgIDHeader, c.name+id)
				return m
			}
			pending := []<-chan error{b.publish(msg("a"))}
			// The batcher has taken the first job's telemetry, alone.
			natstest.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
				if len(b.reqs) > 0 {
					return errors.New("the batcher did not take the first job's telemetry")
				}
				return nil
			})
			if !c.room {
				// Without room the first goes alone, before the second exists.
				if err := <-pending[0]; err != nil {
					t.Fatal(err)
				}
				pending = pending[1:]
			}
			pending = append(pending, b.publish(msg("b")))
			for _, done := range pending {
				select {
				case err := <-done:
					if err != nil {
						t.Fatal(err)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("telemetry not confirmed")
				}
			}
			after, err := stream.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := after.State.Msgs - before.State.Msgs; got != c.want {
				t.Errorf("%d stored messages for two jobs, want %d", got, c.want)
			}
		})
	}
}
