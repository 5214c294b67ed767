package topology_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/topology"
)

// The Replicated JetStream's PublishMsg sends a message again when its
// confirmation does not come: a stream leader that went away while the
// publish waited answers nothing. Here the "stream" is a responder that
// swallows the first publish and confirms the second; the caller gets that
// confirmation after about ConfirmWait, long before its own deadline.
func TestReplicatedPublishResendsUnconfirmed(t *testing.T) {
	ns := natstest.Start(t)
	nc, js := ns.Connect(t)
	var tries atomic.Int32
	sub, err := nc.Subscribe("lost.ack", func(m *nats.Msg) {
		if m.Header.Get(jetstream.MsgIDHeader) != "id-1" {
			t.Errorf("try without its dedup id: %v", m.Header)
		}
		if tries.Add(1) == 1 {
			return // the leader went away with it
		}
		_ = m.Respond([]byte(`{"stream":"S","seq":7,"duplicate":true}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	msg := &nats.Msg{Subject: "lost.ack", Data: []byte("x"), Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, "id-1")
	ctx, cancel := context.WithTimeout(natstest.Context(t), 20*time.Second)
	defer cancel()
	start := time.Now()
	ack, err := topology.Replicated(js, 1).PublishMsg(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	if ack.Sequence != 7 || !ack.Duplicate || tries.Load() != 2 {
		t.Fatalf("ack %+v after %d tries, want the second try's", ack, tries.Load())
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("confirmed after %s: waited out more than one try", took)
	}
	if len(msg.Header) != 1 {
		t.Fatalf("the caller's message was modified: %v", msg.Header)
	}
}

// While no stream answers on the subject (no responders: a stream being
// created, or a leader being elected), the Replicated JetStream's
// PublishMsg keeps trying; it stores the message once a stream takes it.
func TestReplicatedPublishWaitsForAStream(t *testing.T) {
	ns := natstest.Start(t)
	_, js := ns.Connect(t)
	ctx, cancel := context.WithTimeout(natstest.Context(t), 20*time.Second)
	defer cancel()
	msg := &nats.Msg{Subject: "later.x", Data: []byte("x"), Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, "id-2")
	done := make(chan error, 1)
	go func() {
		_, err := topology.Replicated(js, 1).PublishMsg(ctx, msg)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("returned %v before any stream took the message", err)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "LATER", Subjects: []string{"later.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, "LATER")
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Fatalf("stream holds %v messages (%v), want 1", info, err)
	}
}

// A stream that refuses the message is not asked again: the refusal comes
// back at once. And a ctx that ends stops the tries.
func TestReplicatedPublishReturnsRefusals(t *testing.T) {
	ns := natstest.Start(t)
	_, js := ns.Connect(t)
	ctx := natstest.Context(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SMALL", Subjects: []string{"small.>"}, Storage: jetstream.MemoryStorage, MaxMsgSize: 8}); err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: "small.x", Data: []byte("far more than eight bytes"), Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, "id-3")
	start := time.Now()
	if _, err := topology.Replicated(js, 1).PublishMsg(ctx, msg); err == nil {
		t.Fatal("an oversized message was stored")
	}
	if took := time.Since(start); took > topology.ConfirmWait {
		t.Fatalf("refusal returned after %s: it was retried", took)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	msg.Subject = "nowhere.x"
	if _, err := topology.Replicated(js, 1).PublishMsg(short, msg); !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("err = %v, want the deadline's", err)
	}
}
