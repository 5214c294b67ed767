package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/analytics/ingest"
	"github.com/switchboard-llm/switchboard/analytics/store"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/chtest"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

func benchEvent(i int, ts time.Time) schemas.Event {
	job := uuid.NewString()
	cost := 0.0001 * float64(i%10)
	return schemas.Event{V: 1, Kind: schemas.EventAttempt, EventID: schemas.AttemptEventID(job, 1, ts), JobID: job, TS: ts,
		Attempt: 1, Route: "chat", Provider: []string{"alpha", "beta", "gamma"}[i%3], Model: "m1", Tenant: fmt.Sprintf("t%d", i%20),
		StatusCode: 200, Outcome: schemas.OutcomeOK, InputTokens: 100, OutputTokens: 20, CostUSD: &cost, DurationMS: int64(i % 500)}
}

// benchEvents are rows events: for even i an attempt event, for odd i the
// completion of the job of event i-1, as the workers produce them.
func benchEvents(rows int, ts time.Time) []schemas.Event {
	evs := make([]schemas.Event, rows)
	for i := range evs {
		evs[i] = benchEvent(i, ts)
		if i%2 == 1 {
			att := evs[i-1]
			evs[i].Kind, evs[i].JobID, evs[i].Outcome = schemas.EventCompletion, att.JobID, ""
			evs[i].Status, evs[i].QueuedMS, evs[i].TotalMS = schemas.StatusSucceeded, 3, att.DurationMS+5
		}
	}
	return evs
}

// publishAsync publishes evs, perMsg events to a message: 1 is one event per
// message on llm.telemetry.<kind>, more are llm.telemetry.batch arrays.
func publishAsync(b *testing.B, js jetstream.JetStream, evs []schemas.Event, perMsg int) {
	b.Helper()
	for i := 0; i < len(evs); i += perMsg {
		chunk := evs[i:min(i+perMsg, len(evs))]
		var m *nats.Msg
		if perMsg == 1 {
			data, _ := json.Marshal(chunk[0])
			m = &nats.Msg{Subject: topology.Telemetry(chunk[0].Kind), Data: data, Header: nats.Header{}}
		} else {
			data, _ := json.Marshal(chunk)
			m = &nats.Msg{Subject: topology.TelemetryBatch, Data: data, Header: nats.Header{}}
		}
		m.Header.Set(jetstream.MsgIDHeader, chunk[0].EventID.String())
		for {
			_, err := js.PublishMsgAsync(m)
			if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				// A busy machine: let the confirmations catch up, then go on.
				select {
				case <-js.PublishAsyncComplete():
				case <-time.After(time.Minute):
					b.Fatal("publish did not complete")
				}
				continue
			}
			if err != nil {
				b.Fatal(err)
			}
			break
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("publish did not complete")
	}
}

// waitRun waits for an ingester's Run to return after its context was
// cancelled. A shutdown that hangs fails the benchmark with every
// goroutine's stack instead of stalling it silently.
func waitRun(b *testing.B, done <-chan error) {
	b.Helper()
	select {
	case err := <-done:
		if err != nil {
			b.Fatalf("ingester: %v", err)
		}
	case <-time.After(time.Minute):
		_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
		b.Fatal("ingester did not stop within 1m of cancel (goroutines above)")
	}
}

// BenchmarkIngestThroughput: rows/s from a pre-filled TELEMETRY stream into
// ClickHouse (decode, dedup lookup, native insert, rollups, acks) with the
// default batch_rows (50000) and with 10000, for telemetry as the workers
// publish it under load (the jobs finishing together share a message: 26
// jobs' attempt and completion per message, as measured at 20k jobs), one
// job hop per message (an attempt and a completion: light load) and one
// event per message (what a foreign producer may send). Side by side: the
// bare native insert of the same rows.
func BenchmarkIngestThroughput(b *testing.B) {
	for _, perMsg := range []int{52, 2, 1} {
		for _, batchRows := range []int{config.DefaultBatchRows, 10_000} {
			b.Run(fmt.Sprintf("events_per_msg=%d/batch_rows=%d", perMsg, batchRows), func(b *testing.B) { benchIngest(b, batchRows, perMsg) })
		}
	}
}

// BenchmarkIngestDecoders is the end-to-end ingest figure (200k rows, one
// job hop's two events per message, the default batch_rows) with the
// hand-written decoder and with the library ones (export_test.go). Run
// with -count to interleave rounds: the machine is shared.
func BenchmarkIngestDecoders(b *testing.B) {
	for _, name := range []string{"hand", "sonic", "go_json"} {
		b.Run("decoder="+name, func(b *testing.B) {
			if name != "hand" {
				defer ingest.UseDecoder(name)()
			}
			benchIngest(b, config.DefaultBatchRows, 2)
		})
	}
}

func benchIngest(b *testing.B, batchRows, perMsg int) {
	const rows = 200_000
	// The GC target `switchboard ingest` and `up` run with.
	defer debug.SetGCPercent(debug.SetGCPercent(ingest.GCPercent))
	db := chtest.NewDB(b)
	ns := natstest.Start(b)
	_, js := ns.Connect(b)
	ctx := natstest.Context(b)
	if err := topology.Ensure(ctx, js, config.Limits{}); err != nil {
		b.Fatal(err)
	}
	evs := benchEvents(rows, time.Now().UTC())
	b.ResetTimer()
	var total time.Duration
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		for _, table := range []string{"attempts", "completions"} {
			if err := db.Conn.Exec(ctx, "TRUNCATE TABLE "+table); err != nil {
				b.Fatal(err)
			}
		}
		for i := range evs { // fresh ids each round
			evs[i].EventID = uuid.New()
		}
		publishAsync(b, js, evs, perMsg)
		b.StartTimer()
		start := time.Now()
		in, err := ingest.New(ingest.Config{JS: js, DSN: db.DSN, BatchRows: batchRows, BatchInterval: 200 * time.Millisecond,
			Durable: fmt.Sprintf("bench-%d", n)})
		if err != nil {
			b.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- in.Run(rctx) }()
		// Stats counts rows this ingester newly stored: it stays short when
		// a write landed but reported an error and its retry was
		// deduplicated, so the wait is bounded and the failure names the
		// counters (Failures > 0 points there).
		natstest.CheckFor(b, 2*time.Minute, 5*time.Millisecond, func() error {
			if st := in.Stats(); st.Attempts+st.Completions < rows {
				return fmt.Errorf("ingested %d of %d (%+v)", st.Attempts+st.Completions, rows, st)
			}
			return nil
		})
		total += time.Since(start)
		b.StopTimer()
		cancel()
		waitRun(b, done)
		_ = js.DeleteConsumer(ctx, topology.StreamTelemetry, fmt.Sprintf("bench-%d", n))
		if st, err := js.Stream(ctx, topology.StreamTelemetry); err == nil {
			_ = st.Purge(ctx)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(rows*b.N)/total.Seconds(), "rows/s")
	b.ReportMetric(0, "ns/op")

	// The bare native insert of the same rows, for the ratio.
	byKind := map[string][]*schemas.Event{}
	for i := range evs {
		evs[i].EventID = uuid.New()
		byKind[evs[i].Kind] = append(byKind[evs[i].Kind], &evs[i])
	}
	start := time.Now()
	for kind, ptrs := range byKind {
		for i := 0; i < len(ptrs); i += batchRows / 2 {
			if _, err := store.Insert(ctx, db.Conn, kind, ptrs[i:min(i+batchRows/2, len(ptrs))]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(len(evs))/time.Since(start).Seconds(), "store-insert-rows/s")
}

// BenchmarkTelemetryLag: 1000 jobs/s, each published as the workers do (one
// llm.telemetry.batch message with its attempt and completion, ts = now);
// lag is publish -> insert returned (queryable) per event, p50 and p99, at
// the default batch_interval (1s) and at 100ms.
func BenchmarkTelemetryLag(b *testing.B) {
	for _, interval := range []time.Duration{config.DefaultBatchInterval, 100 * time.Millisecond} {
		b.Run("batch_interval="+interval.String(), func(b *testing.B) {
			db := chtest.NewDB(b)
			ns := natstest.Start(b)
			nc, js := ns.Connect(b)
			ctx := natstest.Context(b)
			if err := topology.Ensure(ctx, js, config.Limits{}); err != nil {
				b.Fatal(err)
			}
			var mu sync.Mutex
			sent := map[uuid.UUID]time.Time{}
			var lags []time.Duration
			in, err := ingest.New(ingest.Config{JS: js, DSN: db.DSN, BatchRows: config.DefaultBatchRows, BatchInterval: interval,
				OnInsert: func(evs []*schemas.Event) {
					now := time.Now()
					mu.Lock()
					for _, e := range evs {
						if t, ok := sent[e.EventID]; ok {
							lags = append(lags, now.Sub(t))
						}
					}
					mu.Unlock()
				}})
			if err != nil {
				b.Fatal(err)
			}
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- in.Run(rctx) }()
			defer func() { cancel(); waitRun(b, done) }()
			<-in.Ready()
			const perSec, seconds = 1000, 3
			total := 0
			b.ResetTimer()
			for n := 0; n < b.N; n++ {
				tick := time.NewTicker(10 * time.Millisecond)
				for i := 0; i < perSec*seconds/10; i++ {
					<-tick.C
					for j := 0; j < 10; j++ {
						job := benchEvents(2, time.Now().UTC())
						data, _ := json.Marshal(job)
						m := &nats.Msg{Subject: topology.TelemetryBatch, Data: data, Header: nats.Header{}}
						m.Header.Set(jetstream.MsgIDHeader, job[0].EventID.String())
						mu.Lock()
						for _, ev := range job {
							sent[ev.EventID] = time.Now()
						}
						mu.Unlock()
						if _, err := js.PublishMsgAsync(m); err != nil {
							b.Fatal(err)
						}
						total += len(job)
					}
				}
				tick.Stop()
			}
			natstest.CheckFor(b, time.Minute, 5*time.Millisecond, func() error {
				mu.Lock()
				defer mu.Unlock()
				if len(lags) < total {
					return fmt.Errorf("%d of %d queryable", len(lags), total)
				}
				return nil
			})
			b.StopTimer()
			_ = nc
			mu.Lock()
			slices.Sort(lags)
			p := func(q float64) float64 { return float64(lags[int(q*float64(len(lags)-1))].Milliseconds()) }
			b.ReportMetric(p(0.5), "p50-lag-ms")
			b.ReportMetric(p(0.99), "p99-lag-ms")
			mu.Unlock()
			b.ReportMetric(0, "ns/op")
		})
	}
}
