package ingest

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-llm/switchboard/topology"
)

var (
	rowsDesc = prometheus.NewDesc("switchboard_ingest_rows_total",
		"Rows written to ClickHouse (after dedup), by table (attempts, completions).", []string{"table"}, nil)
	duplicatesDesc = prometheus.NewDesc("switchboard_ingest_duplicates_total",
		"Telemetry events skipped because their id was already stored or repeated within a batch.", nil, nil)
	deadDesc = prometheus.NewDesc("switchboard_ingest_dead_lettered_total",
		"Bad telemetry events sent to llm.dlq.telemetry.", nil, nil)
	batchesDesc = prometheus.NewDesc("switchboard_ingest_batches_total",
		"Batches written to ClickHouse.", nil, nil)
	failuresDesc = prometheus.NewDesc("switchboard_ingest_insert_failures_total",
		"ClickHouse inserts that failed (and were retried).", nil, nil)
	lagDesc = prometheus.NewDesc("switchboard_ingest_lag_messages",
		"Telemetry messages not yet delivered to the ingest consumer (NumPending), read at scrape time (absent until the consumer exists).", nil, nil)
	unackedDesc = prometheus.NewDesc("switchboard_ingest_unacked_messages",
		"Telemetry messages delivered to the ingest consumer and not yet acknowledged (NumAckPending), read at scrape time (absent until the consumer exists).", nil, nil)
)

// Collector exports the ingester's counters (Stats) and its consumer's lag
// as Prometheus metrics; `switchboard ingest --metrics ADDR` serves them.
// The lag is one consumer info request per scrape (at most 2 s; left out
// when NATS does not answer).
func (in *Ingester) Collector() prometheus.Collector { return ingestCollector{in} }

type ingestCollector struct{ in *Ingester }

// Describe implements prometheus.Collector.
func (c ingestCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{rowsDesc, duplicatesDesc, deadDesc, batchesDesc, failuresDesc, lagDesc, unackedDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c ingestCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.in.Stats()
	counter := func(d *prometheus.Desc, n int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(n), labels...)
	}
	counter(rowsDesc, s.Attempts, "attempts")
	counter(rowsDesc, s.Completions, "completions")
	counter(duplicatesDesc, s.Duplicates)
	counter(deadDesc, s.DeadLettered)
	counter(batchesDesc, s.Batches)
	counter(failuresDesc, s.Failures)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cons, err := c.in.cfg.JS.Consumer(ctx, topology.StreamTelemetry, c.in.cfg.Durable)
	if err != nil {
		return
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(info.NumPending))
	ch <- prometheus.MustNewConstMetric(unackedDesc, prometheus.GaugeValue, float64(info.NumAckPending))
}
