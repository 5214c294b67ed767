package ingest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchboard-llm/switchboard/analytics/ingest"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// BenchmarkSubscriberThroughput: messages/s through the subscriber alone
// (JetStream delivery, toWatermill, Decode, one ack per message, acked in
// batches of 10000), no ClickHouse: the ceiling of the NATS side of
// BenchmarkIngestThroughput on this machine.
func BenchmarkSubscriberThroughput(b *testing.B) {
	const rows, batch = 200_000, 10_000
	ns := natstest.Start(b)
	_, js := ns.Connect(b)
	ctx := natstest.Context(b)
	if err := topology.Ensure(ctx, js, config.Limits{}); err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	evs := make([]schemas.Event, rows)
	for i := range evs {
		evs[i] = benchEvent(i, now)
	}
	var total time.Duration
	for n := 0; n < b.N; n++ {
		for i := range evs {
			evs[i].EventID = uuid.New()
		}
		publishAsync(b, js, evs, 1)
		start := time.Now()
		sub, err := ingest.NewSubscriber(ingest.SubscriberConfig{JS: js, Stream: topology.StreamTelemetry,
			Durable: fmt.Sprintf("sub-%d", n), MaxAckPending: 2*batch + 1000, PullBatch: 5000})
		if err != nil {
			b.Fatal(err)
		}
		msgs, err := sub.Subscribe(ctx, ingest.DefaultTopic)
		if err != nil {
			b.Fatal(err)
		}
		held := make([]interface{ Ack() bool }, 0, batch)
		for got := 0; got < rows; got++ {
			m := <-msgs
			if _, err := ingest.Decode(m.Metadata.Get(ingest.MetaSubject), m.Payload); err != nil {
				b.Fatal(err)
			}
			held = append(held, m)
			if len(held) == batch {
				for _, h := range held {
					h.Ack()
				}
				held = held[:0]
			}
		}
		natstest.CheckFor(b, time.Minute, 5*time.Millisecond, func() error {
			c, err := js.Consumer(ctx, topology.StreamTelemetry, fmt.Sprintf("sub-%d", n))
			if err != nil {
				return err
			}
			info, err := c.Info(ctx)
			if err != nil {
				return err
			}
			if info.AckFloor.Stream < uint64(rows*(n+1)) {
				return fmt.Errorf("ack floor %d", info.AckFloor.Stream)
			}
			return nil
		})
		total += time.Since(start)
		_ = sub.Close()
		if st, err := js.Stream(ctx, topology.StreamTelemetry); err == nil {
			_ = st.Purge(ctx)
		}
	}
	b.ReportMetric(float64(rows*b.N)/total.Seconds(), "msgs/s")
	b.ReportMetric(0, "ns/op")
}
