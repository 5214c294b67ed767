package main

import (
	"flag"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-llm/switchboard/internal/metrics"
)

// metricsFlag registers --metrics on a command without an HTTP listener of
// its own (worker, ingest).
func metricsFlag(fs *flag.FlagSet) *string {
	return fs.String("metrics", envOr("SWITCHBOARD_METRICS", ""), "serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9101); off when empty")
}

// serveMetrics serves cs plus the Go runtime and process metrics on addr
// ("" = off). Call the returned stop before returning.
func serveMetrics(addr string, log *slog.Logger, cs ...prometheus.Collector) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	reg := metrics.NewRegistry()
	reg.MustRegister(cs...)
	srv, err := metrics.Start(addr, reg, log)
	if err != nil {
		return nil, fmt.Errorf("%w: --metrics: %v", errUsage, err)
	}
	return func() {
		if err := srv.Close(); err != nil {
			log.Warn("metrics", "err", err)
		}
	}, nil
}
