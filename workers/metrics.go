package workers

import "github.com/prometheus/client_golang/prometheus"

// poolMetric is one of the pool's counters as a Prometheus metric.
type poolMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(PoolStats) int64
}

// Collector exports the pool's counters (Stats) as Prometheus metrics
// labelled with its provider; `switchboard worker --metrics ADDR` serves
// them. Each scrape reads one Stats snapshot; nothing is counted twice.
func (p *Pool) Collector() prometheus.Collector {
	labels := prometheus.Labels{"provider": p.name}
	desc := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, extra, labels)
	}
	jobs := desc("switchboard_worker_jobs_total",
		"Deliveries finished by this worker process, by outcome (succeeded, failed, fell_back, dead_lettered, poison, abandoned, redelivered).", "outcome")
	c := &poolCollector{pool: p, jobs: jobs, metrics: []poolMetric{
		{desc("switchboard_worker_in_flight", "Jobs this worker process is processing now."), prometheus.GaugeValue,
			func(s PoolStats) int64 { return s.InFlight }},
		{desc("switchboard_worker_calls_total", "Provider calls made by this worker process."), prometheus.CounterValue,
			func(s PoolStats) int64 { return s.Calls }},
		{desc("switchboard_worker_publish_failures_total", "Deliveries handed back (Nak) because a publish failed."), prometheus.CounterValue,
			func(s PoolStats) int64 { return s.PublishFailures }},
	}}
	return c
}

type poolCollector struct {
	pool    *Pool
	jobs    *prometheus.Desc
	metrics []poolMetric
}

// Describe implements prometheus.Collector.
func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.jobs
	for _, m := range c.metrics {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector.
func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stats()
	for _, m := range c.metrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, float64(m.value(s)))
	}
	for _, o := range []struct {
		outcome string
		n       int64
	}{
		{"succeeded", s.Succeeded}, {"failed", s.Failed}, {"fell_back", s.FellBack}, {"dead_lettered", s.DeadLettered},
		{"poison", s.Poison}, {"abandoned", s.Abandoned}, {"redelivered", s.Redelivered},
	} {
		ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.CounterValue, float64(o.n), o.outcome)
	}
}
