package ingest_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/analytics/ingest"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/topology"
)

// subEnv is a TELEMETRY stream holding n messages.
func subEnv(t *testing.T, n int) (jetstream.JetStream, context.Context) {
	t.Helper()
	ns := natstest.Start(t)
	_, js := ns.Connect(t)
	ctx := natstest.Context(t)
	if err := topology.Ensure(ctx, js, config.Limits{}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if _, err := js.Publish(ctx, topology.TelemetryBatch, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	return js, ctx
}

func subscribe(t *testing.T, js jetstream.JetStream, ctx context.Context, ackWait time.Duration) (*ingest.Subscriber, <-chan *message.Message) {
	t.Helper()
	sub, err := ingest.NewSubscriber(ingest.SubscriberConfig{JS: js, Stream: topology.StreamTelemetry, Durable: "sub",
		AckWait: ackWait, MaxAckPending: 100, NakDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	msgs, err := sub.Subscribe(ctx, ingest.DefaultTopic)
	if err != nil {
		t.Fatal(err)
	}
	return sub, msgs
}

func receive(t *testing.T, msgs <-chan *message.Message, n int) []*message.Message {
	t.Helper()
	var got []*message.Message
	timeout := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case m := <-msgs:
			got = append(got, m)
		case <-timeout:
			t.Fatalf("received %d of %d messages", len(got), n)
		}
	}
	return got
}

func consumerInfo(t *testing.T, js jetstream.JetStream, ctx context.Context) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := js.Consumer(ctx, topology.StreamTelemetry, "sub")
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// Acks reach JetStream in delivery order; on Close the messages not acked
// are handed back at once (not after AckWait) to the next subscriber.
func TestSubscriberAcksAndHandsBackOnClose(t *testing.T) {
	js, ctx := subEnv(t, 10)
	sub, msgs := subscribe(t, js, ctx, time.Minute)
	got := receive(t, msgs, 10)
	for i, m := range got {
		if m.Metadata.Get(ingest.MetaStreamSeq) != strconv.Itoa(i+1) || string(m.Payload) != strconv.Itoa(i+1) ||
			m.Metadata.Get(ingest.MetaSubject) != topology.TelemetryBatch || m.Metadata.Get(ingest.MetaNumDelivered) != "1" {
			t.Fatalf("message %d: payload %s metadata %v", i, m.Payload, m.Metadata)
		}
	}
	for _, m := range got[:4] {
		m.Ack()
	}
	got[6].Ack() // behind un-acked ones: acked when they are, or handed back
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if f := consumerInfo(t, js, ctx).AckFloor.Stream; f != 4 {
			return fmt.Errorf("ack floor %d, want 4", f)
		}
		return nil
	})
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	_, msgs = subscribe(t, js, ctx, time.Minute)
	var redelivered []int
	for _, m := range receive(t, msgs, 5) {
		if d := m.Metadata.Get(ingest.MetaNumDelivered); d != "2" {
			t.Fatalf("redelivery of %s: delivered %s times, want 2", m.Payload, d)
		}
		n, _ := strconv.Atoi(string(m.Payload))
		redelivered = append(redelivered, n)
		m.Ack()
	}
	slices.Sort(redelivered) // JetStream does not promise the order of redeliveries
	if !slices.Equal(redelivered, []int{5, 6, 8, 9, 10}) {
		t.Fatalf("redelivered %v, want 5 6 8 9 10", redelivered)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if info := consumerInfo(t, js, ctx); info.AckFloor.Stream != 10 || info.NumAckPending != 0 {
			return fmt.Errorf("ack floor %d, pending %d", info.AckFloor.Stream, info.NumAckPending)
		}
		return nil
	})
}

// A message held far longer than AckWait (ClickHouse down) stays leased: a
// second subscriber on the same consumer does not get it; a Nack hands it
// over.
func TestSubscriberKeepsHeldMessagesLeased(t *testing.T) {
	js, ctx := subEnv(t, 1)
	const ackWait = 300 * time.Millisecond
	_, msgs := subscribe(t, js, ctx, ackWait)
	held := receive(t, msgs, 1)[0]
	_, other := subscribe(t, js, ctx, ackWait)
	select {
	case m := <-other:
		t.Fatalf("held message redelivered to another subscriber: %s (delivered %s)", m.Payload, m.Metadata.Get(ingest.MetaNumDelivered))
	case <-time.After(6 * ackWait):
	}
	held.Nack() // redelivered to either subscriber
	var m *message.Message
	select {
	case m = <-msgs:
	case m = <-other:
	case <-time.After(10 * time.Second):
		t.Fatal("nacked message not redelivered")
	}
	if string(m.Payload) != "1" || m.Metadata.Get(ingest.MetaNumDelivered) != "2" {
		t.Fatalf("after nack: %s delivered %s", m.Payload, m.Metadata.Get(ingest.MetaNumDelivered))
	}
	m.Ack()
}

// A consumer deleted under the subscriber (an operator's `nats consumer rm`,
// one lost with a node) is re-created: the channel stays open and the
// messages published afterwards arrive.
func TestSubscriberRecreatesDeletedConsumer(t *testing.T) {
	js, ctx := subEnv(t, 3)
	_, msgs := subscribe(t, js, ctx, 5*time.Second)
	for _, m := range receive(t, msgs, 3) {
		m.Ack()
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if info := consumerInfo(t, js, ctx); info.AckFloor.Stream != 3 {
			return fmt.Errorf("ack floor %d, want 3", info.AckFloor.Stream)
		}
		return nil
	})
	if err := js.DeleteConsumer(ctx, topology.StreamTelemetry, "sub"); err != nil {
		t.Fatal(err)
	}
	// The re-created consumer starts from the stream's start: 1-3 come
	// again (the ingester drops redelivered events by id), then 4.
	if _, err := js.Publish(ctx, topology.TelemetryBatch, []byte("4")); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				t.Fatal("channel closed after the consumer was deleted")
			}
			m.Ack()
			if string(m.Payload) == "4" {
				return
			}
		case <-timeout:
			t.Fatal("message 4 not received after the consumer was deleted")
		}
	}
}
