package gateway

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	sbmetrics "github.com/switchboard-llm/switchboard/internal/metrics"
	"github.com/switchboard-llm/switchboard/schemas"
)

// latencyBuckets are request latency bucket bounds in seconds.
var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// metrics are the gateway's Prometheus metrics, on a registry of their own
// that also carries the Go runtime and process collectors.
type metrics struct {
	reg         *prometheus.Registry
	handler     http.Handler
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	ttft        *prometheus.HistogramVec
	attempts    *prometheus.CounterVec
	errors      *prometheus.CounterVec
	fallbacks   *prometheus.CounterVec
	tokens      *prometheus.CounterVec
	cost        *prometheus.CounterVec
	queueDepth  *prometheus.GaugeVec
	queueActive *prometheus.GaugeVec
	inFlight    prometheus.Gauge
}

func newMetrics(others ...prometheus.Collector) *metrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	histogram := func(name, help string, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: latencyBuckets}, labels)
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	}
	m := &metrics{
		reg: sbmetrics.NewRegistry(),
		requests: counter("switchboard_gateway_requests_total",
			"HTTP requests answered, by endpoint, route (or provider/model) and status code.", "endpoint", "route", "status"),
		duration: histogram("switchboard_gateway_request_duration_seconds",
			"Time from request to the end of the answer, by endpoint and route.", "endpoint", "route"),
		ttft: histogram("switchboard_gateway_ttft_seconds",
			"Time from a streaming request to its first chunk, by route.", "route"),
		attempts: counter("switchboard_attempts_total",
			"Provider attempts of the jobs answered by this gateway, by provider, model and outcome.", "provider", "model", "outcome"),
		errors: counter("switchboard_attempt_errors_total",
			"Failed provider attempts of the jobs answered by this gateway, by provider and error class.", "provider", "error_type"),
		fallbacks: counter("switchboard_fallbacks_total",
			"Jobs answered by this gateway that moved past their first target, by route.", "route"),
		tokens: counter("switchboard_tokens_total",
			"Tokens of the jobs answered by this gateway, by provider, model and direction (input|output).", "provider", "model", "direction"),
		cost: counter("switchboard_cost_usd_total",
			"Cost in USD of the jobs answered by this gateway, by provider and model (priced models only).", "provider", "model"),
		queueDepth: gauge("switchboard_queue_depth",
			"Jobs waiting for a provider's workers, by priority lane (consumer NumPending; cached a few seconds).", "provider", "lane"),
		queueActive: gauge("switchboard_queue_in_progress",
			"Jobs delivered to a provider's workers and not yet acknowledged, by priority lane (consumer NumAckPending).", "provider", "lane"),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "switchboard_gateway_in_flight", Help: "Requests being served now."}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.ttft, m.attempts, m.errors, m.fallbacks, m.tokens, m.cost, m.queueDepth, m.queueActive, m.inFlight)
	m.reg.MustRegister(others...)
	m.handler = sbmetrics.Handler(m.reg)
	return m
}

// observeResult counts a Result's attempts, errors, fallback, tokens and cost.
// modelOf bounds the model label (see Server.modelLabel).
func (m *metrics) observeResult(route string, res *schemas.Result, modelOf func(provider, model string) string) {
	for _, a := range res.Attempts {
		outcome := a.Outcome
		if outcome == "" {
			outcome = "unknown"
		}
		m.attempts.WithLabelValues(a.Provider, modelOf(a.Provider, a.Model), outcome).Inc()
		if a.ErrorType != "" {
			m.errors.WithLabelValues(a.Provider, a.ErrorType).Inc()
		}
	}
	if res.Fallback() {
		m.fallbacks.WithLabelValues(route).Inc()
	}
	model := modelOf(res.Provider, res.Model)
	if res.Usage.InputTokens > 0 {
		m.tokens.WithLabelValues(res.Provider, model, "input").Add(float64(res.Usage.InputTokens))
	}
	if res.Usage.OutputTokens > 0 {
		m.tokens.WithLabelValues(res.Provider, model, "output").Add(float64(res.Usage.OutputTokens))
	}
	if res.CostUSD != nil && *res.CostUSD > 0 {
		m.cost.WithLabelValues(res.Provider, model).Add(*res.CostUSD)
	}
}
