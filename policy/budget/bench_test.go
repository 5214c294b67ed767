package budget

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// BenchmarkCountResults measures how fast the spend counter drains a
// backlog of priced Results (4 tenants), against the embedded JetStream
// server: results/s, and KV writes per Result from the sb_spend stream's
// message count.
func BenchmarkCountResults(b *testing.B) {
	const n = 5000
	for range b.N {
		srv := natstest.Start(b)
		ctx, cancel := context.WithCancel(natstest.Context(b))
		_, js := srv.Connect(b)
		cfg, err := config.Parse([]byte(cfgYAML))
		if err != nil {
			b.Fatal(err)
		}
		if err := topology.Ensure(ctx, js, cfg.Limits); err != nil {
			b.Fatal(err)
		}
		tr, err := Open(ctx, js, Options{})
		if err != nil {
			b.Fatal(err)
		}
		for i := range n {
			usd := 0.001
			id := fmt.Sprintf("job-%d", i)
			data, _ := json.Marshal(schemas.Result{V: 1, ID: id, Status: schemas.StatusSucceeded, CostUSD: &usd, Metadata: map[string]string{"tenant": fmt.Sprint("t", i%4)}})
			if _, err := js.PublishMsgAsync(&nats.Msg{Subject: topology.Result("", id), Data: data}); err != nil {
				b.Fatal(err)
			}
		}
		<-js.PublishAsyncComplete()
		b.ResetTimer()
		start := time.Now()
		go func() { _ = tr.Run(ctx, js) }()
		for {
			total := int64(0)
			for i := range 4 {
				d, _ := tr.Spent(fmt.Sprint("t", i), time.Now())
				total += toNano(d)
			}
			if total == toNano(0.001*n) {
				break
			}
			if time.Since(start) > 2*time.Minute {
				b.Fatalf("counted %d nano-USD of %d after 2m", total, toNano(0.001*n))
			}
			time.Sleep(5 * time.Millisecond)
		}
		el := time.Since(start)
		b.StopTimer()
		st, err := js.Stream(ctx, "KV_"+Bucket)
		if err != nil {
			b.Fatal(err)
		}
		cancel()
		b.ReportMetric(float64(n)/el.Seconds(), "results/s")
		b.ReportMetric(float64(st.CachedInfo().State.LastSeq)/n, "kv-writes/result")
	}
}
