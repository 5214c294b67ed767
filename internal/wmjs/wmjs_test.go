package wmjs_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/wmjs"
)

// pubSub returns the constructors of the conformance tests: every
// subscriber of one topic (and consumer group) shares one durable consumer
// on stream WMTEST, so a new subscriber continues where an earlier one
// stopped and a consumer group splits the work.
func pubSub(t *testing.T, concurrency int) (jetstream.JetStream, tests.PubSubConstructor, tests.ConsumerGroupPubSubConstructor) {
	ns := natstest.Start(t)
	_, js := ns.Connect(t)
	ctx := natstest.Context(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "WMTEST", Subjects: []string{"wmtest.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	group := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		pub, err := wmjs.NewPublisher(js, 0)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := wmjs.NewSubscriber(wmjs.SubscriberConfig{
			Consumer: func(ctx context.Context, topic string) (jetstream.Consumer, error) {
				return js.CreateOrUpdateConsumer(ctx, "WMTEST", jetstream.ConsumerConfig{
					Durable:       group + strings.ReplaceAll(topic, ".", "_"),
					FilterSubject: topic,
					AckPolicy:     jetstream.AckExplicitPolicy,
					AckWait:       5 * time.Second,
					MaxDeliver:    -1,
				})
			},
			Concurrency:  concurrency,
			NakDelay:     10 * time.Millisecond,
			CloseTimeout: 2 * time.Second,
			Name:         "wmtest",
		})
		if err != nil {
			t.Fatal(err)
		}
		return pub, sub
	}
	return js, func(t *testing.T) (message.Publisher, message.Subscriber) { return group(t, "all") }, group
}

var features = tests.Features{
	ConsumerGroups: true,
	Persistent:     true,
	GenerateTopicFunc: func(tctx tests.TestContext) string {
		return "wmtest." + strings.ReplaceAll(string(tctx.TestID), "-", "")
	},
}

// TestPubSubConformance runs watermill's Pub/Sub conformance tests
// (pubsub/tests, as tests.TestPubSub would) with the features a durable
// JetStream consumer has: persistent, consumer groups (one durable per
// group), with one in-flight slot and with four. Not claimed, and so not
// listed (tests.TestPubSub would only skip them): guaranteed order (a
// nacked message comes back after later ones, so TestPublishSubscribeInOrder
// and TestNoAck), exactly-once delivery, old messages for a new consumer
// group (TestNewSubscriberReceivesOldMessages), and TestReconnect (it needs
// a broker restart command; broker's outage tests restart the in-process
// server under the dispatcher instead).
func TestPubSubConformance(t *testing.T) {
	for _, c := range []struct {
		name        string
		concurrency int
	}{{"one slot", 1}, {"four slots", 4}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, pubSub, groups := pubSub(t, c.concurrency)
			for name, fn := range map[string]func(*testing.T, tests.TestContext, tests.PubSubConstructor){
				"PublishSubscribe":                  tests.TestPublishSubscribe,
				"ConcurrentSubscribe":               tests.TestConcurrentSubscribe,
				"ConcurrentSubscribeMultipleTopics": tests.TestConcurrentSubscribeMultipleTopics,
				"ResendOnError":                     tests.TestResendOnError,
				"ContinueAfterSubscribeClose":       tests.TestContinueAfterSubscribeClose,
				"ConcurrentClose":                   tests.TestConcurrentClose,
				"ContinueAfterErrors":               tests.TestContinueAfterErrors,
				"PublisherClose":                    tests.TestPublisherClose,
				"Topic":                             tests.TestTopic,
				"MessageCtx":                        tests.TestMessageCtx,
				"SubscribeCtx":                      tests.TestSubscribeCtx,
			} {
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					fn(t, tests.TestContext{TestID: tests.NewTestID(), Features: features}, pubSub)
				})
			}
			t.Run("ConsumerGroups", func(t *testing.T) {
				t.Parallel()
				tests.TestConsumerGroups(t, tests.TestContext{TestID: tests.NewTestID(), Features: features}, groups)
			})
		})
	}
}

// One slot hands out the next message only after the previous one is
// settled: watermill's Subscriber contract.
func TestOneSlotHoldsTheNextMessageUntilAck(t *testing.T) {
	_, newPubSub, _ := pubSub(t, 1)
	pub, sub := newPubSub(t)
	defer sub.Close()
	const topic = "wmtest.order"
	for _, p := range []string{"1", "2"} {
		if err := pub.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte(p))); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := sub.Subscribe(natstest.Context(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	first := <-msgs
	select {
	case m := <-msgs:
		t.Fatalf("second message %q handed out before the first was acked", m.Payload)
	case <-time.After(200 * time.Millisecond): // a negative check: nothing may arrive
	}
	first.Ack()
	select {
	case m := <-msgs:
		m.Ack()
	case <-time.After(10 * time.Second):
		t.Fatal("second message not delivered after the ack")
	}
}

// A message with a Nats-Msg-Id is stored once however often it is
// published; metadata travels as headers and comes back with the Meta* keys,
// and the UUID comes back as sent.
func TestPublisherDedupAndMetadata(t *testing.T) {
	ns := natstest.Start(t)
	_, js := ns.Connect(t)
	ctx := natstest.Context(t)
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "DEDUP", Subjects: []string{"dedup.>"}, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := wmjs.NewPublisher(js, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m := message.NewMessage("job-1.0", []byte("x"))
	m.Metadata.Set("X-Kind", "test")
	m.Metadata.Set(jetstream.MsgIDHeader, m.UUID)
	for range 2 {
		if err := pub.Publish("dedup.a", m); err != nil {
			t.Fatal(err)
		}
	}
	info, err := s.Info(ctx)
	if err != nil || info.State.Msgs != 1 {
		t.Fatalf("stored %+v (%v), want 1 message", info.State, err)
	}
	sub, err := wmjs.NewSubscriber(wmjs.SubscriberConfig{Consumer: func(ctx context.Context, topic string) (jetstream.Consumer, error) {
		return js.CreateOrUpdateConsumer(ctx, "DEDUP", jetstream.ConsumerConfig{Durable: "d", FilterSubject: topic, AckPolicy: jetstream.AckExplicitPolicy})
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs, err := sub.Subscribe(ctx, "dedup.a")
	if err != nil {
		t.Fatal(err)
	}
	got := <-msgs
	got.Ack()
	if got.UUID != "job-1.0" || got.Metadata.Get("X-Kind") != "test" || got.Metadata.Get(wmjs.MetaSubject) != "dedup.a" ||
		got.Metadata.Get(wmjs.MetaStreamSeq) != "1" || got.Metadata.Get(wmjs.MetaNumDelivered) != "1" || got.Metadata.Get(jetstream.MsgIDHeader) != "" {
		t.Fatalf("message %s %v", got.UUID, got.Metadata)
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish("dedup.a", m); !errors.Is(err, wmjs.ErrClosed) {
		t.Fatalf("publish after Close: %v", err)
	}
	if _, err := sub.Subscribe(ctx, "dedup.a"); err != nil {
		t.Fatal(err)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Subscribe(ctx, "dedup.a"); !errors.Is(err, wmjs.ErrClosed) {
		t.Fatalf("subscribe after Close: %v", err)
	}
}

// A consumer deleted under a subscription is re-created, and the
// subscription goes on.
func TestSubscriberRecreatesDeletedConsumer(t *testing.T) {
	js, newPubSub, _ := pubSub(t, 2)
	pub, sub := newPubSub(t)
	defer sub.Close()
	ctx := natstest.Context(t)
	const topic = "wmtest.recreate"
	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	// receive publishes payload and waits for it; the stream keeps what
	// was acked, so a re-created consumer may deliver "before" again first.
	receive := func(payload string) {
		t.Helper()
		if err := pub.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte(payload))); err != nil {
			t.Fatal(err)
		}
		timeout := time.After(30 * time.Second)
		for {
			select {
			case m := <-msgs:
				m.Ack()
				if string(m.Payload) == payload {
					return
				}
			case <-timeout:
				t.Fatalf("%q not delivered", payload)
			}
		}
	}
	receive("before")
	if err := js.DeleteConsumer(ctx, "WMTEST", "all"+strings.ReplaceAll(topic, ".", "_")); err != nil {
		t.Fatal(err)
	}
	receive("after")
}

// With a Lease, a message held longer than the consumer's AckWait (a
// handler retrying with backoff) is kept alive with InProgress and never
// redelivered; without one the server hands it out again after AckWait.
func TestLeaseKeepsAHeldMessage(t *testing.T) {
	for _, tc := range []struct {
		name        string
		lease       time.Duration
		redelivered bool
	}{
		{"lease", 200 * time.Millisecond, false},
		{"no lease", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := natstest.Start(t)
			_, js := ns.Connect(t)
			ctx := natstest.Context(t)
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "LEASE", Subjects: []string{"lease.>"}, Storage: jetstream.MemoryStorage}); err != nil {
				t.Fatal(err)
			}
			sub, err := wmjs.NewSubscriber(wmjs.SubscriberConfig{
				Consumer: func(ctx context.Context, topic string) (jetstream.Consumer, error) {
					return js.CreateOrUpdateConsumer(ctx, "LEASE", jetstream.ConsumerConfig{
						Durable: "held", FilterSubject: topic, AckPolicy: jetstream.AckExplicitPolicy,
						AckWait: 2 * time.Second, MaxDeliver: -1,
					})
				},
				Concurrency: 2, Lease: tc.lease, CloseTimeout: time.Second, Name: "lease",
			})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			pub, err := wmjs.NewPublisher(js, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := pub.Publish("lease.x", message.NewMessage(watermill.NewUUID(), []byte("held"))); err != nil {
				t.Fatal(err)
			}
			msgs, err := sub.Subscribe(ctx, "lease.x")
			if err != nil {
				t.Fatal(err)
			}
			held := <-msgs
			// Held for 2.5 AckWaits (10 renewals each, so a loaded machine
			// can miss several): a second slot is free to take a redelivery.
			var again *message.Message
			select {
			case again = <-msgs:
			case <-time.After(5 * time.Second):
			}
			if got := again != nil; got != tc.redelivered {
				t.Fatalf("redelivered while held: %v, want %v", got, tc.redelivered)
			}
			held.Ack()
			if again != nil {
				again.Ack()
			}
			natstest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
				cons, err := js.Consumer(ctx, "LEASE", "held")
				if err != nil {
					return err
				}
				info, err := cons.Info(ctx)
				if err != nil {
					return err
				}
				if info.NumAckPending != 0 {
					return errors.New("still pending after the ack")
				}
				return nil
			})
		})
	}
}
