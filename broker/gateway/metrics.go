package gateway

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/switchboard-llm/switchboard/schemas"
)

// The gateway writes Prometheus' text exposition format itself: a handful of
// counters, gauges and histograms do not justify a dependency.

// latencyBuckets are request latency bucket bounds in seconds.
var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// family is one metric family with labelled series.
type family struct {
	name, help, kind string
	labels           []string
	buckets          []float64

	mu     sync.Mutex
	series map[string]*series
}

type series struct {
	values []string
	value  float64  // counter or gauge
	counts []uint64 // histogram buckets (non-cumulative)
	sum    float64  // histogram sum
	count  uint64   // histogram count
}

func newFamily(name, help, kind string, buckets []float64, labels ...string) *family {
	return &family{name: name, help: help, kind: kind, labels: labels, buckets: buckets, series: map[string]*series{}}
}

func (f *family) get(values []string) *series {
	key := strings.Join(values, "\xff")
	s, ok := f.series[key]
	if !ok {
		s = &series{values: append([]string(nil), values...)}
		if f.kind == "histogram" {
			s.counts = make([]uint64, len(f.buckets))
		}
		f.series[key] = s
	}
	return s
}

// add adds v to a counter or gauge series.
func (f *family) add(v float64, values ...string) {
	f.mu.Lock()
	f.get(values).value += v
	f.mu.Unlock()
}

// set sets a gauge series.
func (f *family) set(v float64, values ...string) {
	f.mu.Lock()
	f.get(values).value = v
	f.mu.Unlock()
}

// observe records one histogram observation.
func (f *family) observe(v float64, values ...string) {
	f.mu.Lock()
	s := f.get(values)
	for i, b := range f.buckets {
		if v <= b {
			s.counts[i]++
			break
		}
	}
	s.sum += v
	s.count++
	f.mu.Unlock()
}

func (f *family) write(w io.Writer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", f.name, f.help, f.name, f.kind)
	keys := make([]string, 0, len(f.series))
	for k := range f.series {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s := f.series[k]
		if f.kind != "histogram" {
			fmt.Fprintf(w, "%s%s %s\n", f.name, labelString(f.labels, s.values, "", ""), formatFloat(s.value))
			continue
		}
		var cum uint64
		for i, b := range f.buckets {
			cum += s.counts[i]
			fmt.Fprintf(w, "%s_bucket%s %d\n", f.name, labelString(f.labels, s.values, "le", formatFloat(b)), cum)
		}
		fmt.Fprintf(w, "%s_bucket%s %d\n", f.name, labelString(f.labels, s.values, "le", "+Inf"), s.count)
		fmt.Fprintf(w, "%s_sum%s %s\n", f.name, labelString(f.labels, s.values, "", ""), formatFloat(s.sum))
		fmt.Fprintf(w, "%s_count%s %d\n", f.name, labelString(f.labels, s.values, "", ""), s.count)
	}
}

func labelString(names, values []string, extraName, extraValue string) string {
	if len(names) == 0 && extraName == "" {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteString(`="`)
		b.WriteString(escapeLabel(values[i]))
		b.WriteByte('"')
	}
	if extraName != "" {
		if len(names) > 0 {
			b.WriteByte(',')
		}
		b.WriteString(extraName + `="` + extraValue + `"`)
	}
	b.WriteByte('}')
	return b.String()
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// metrics are the gateway's Prometheus metrics.
type metrics struct {
	requests    *family
	duration    *family
	ttft        *family
	attempts    *family
	errors      *family
	fallbacks   *family
	tokens      *family
	cost        *family
	queueDepth  *family
	queueActive *family
	inFlight    atomic.Int64
	families    []*family
}

func newMetrics() *metrics {
	m := &metrics{
		requests: newFamily("switchboard_gateway_requests_total",
			"HTTP requests answered, by endpoint, route (or provider/model) and status code.", "counter", nil, "endpoint", "route", "status"),
		duration: newFamily("switchboard_gateway_request_duration_seconds",
			"Time from request to the end of the answer, by endpoint and route.", "histogram", latencyBuckets, "endpoint", "route"),
		ttft: newFamily("switchboard_gateway_ttft_seconds",
			"Time from a streaming request to its first chunk, by route.", "histogram", latencyBuckets, "route"),
		attempts: newFamily("switchboard_attempts_total",
			"Provider attempts of the jobs answered by this gateway, by provider, model and outcome.", "counter", nil, "provider", "model", "outcome"),
		errors: newFamily("switchboard_attempt_errors_total",
			"Failed provider attempts of the jobs answered by this gateway, by provider and error class.", "counter", nil, "provider", "error_type"),
		fallbacks: newFamily("switchboard_fallbacks_total",
			"Jobs answered by this gateway that moved past their first target, by route.", "counter", nil, "route"),
		tokens: newFamily("switchboard_tokens_total",
			"Tokens of the jobs answered by this gateway, by provider, model and direction (input|output).", "counter", nil, "provider", "model", "direction"),
		cost: newFamily("switchboard_cost_usd_total",
			"Cost in USD of the jobs answered by this gateway, by provider and model (priced models only).", "counter", nil, "provider", "model"),
		queueDepth: newFamily("switchboard_queue_depth",
			"Jobs waiting for a provider's workers, by priority lane (consumer NumPending; cached a few seconds).", "gauge", nil, "provider", "lane"),
		queueActive: newFamily("switchboard_queue_in_progress",
			"Jobs delivered to a provider's workers and not yet acknowledged, by priority lane (consumer NumAckPending).", "gauge", nil, "provider", "lane"),
	}
	m.families = []*family{m.requests, m.duration, m.ttft, m.attempts, m.errors, m.fallbacks, m.tokens, m.cost, m.queueDepth, m.queueActive}
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
		m.attempts.add(1, a.Provider, modelOf(a.Provider, a.Model), outcome)
		if a.ErrorType != "" {
			m.errors.add(1, a.Provider, a.ErrorType)
		}
	}
	if res.Fallback() {
		m.fallbacks.add(1, route)
	}
	model := modelOf(res.Provider, res.Model)
	if res.Usage.InputTokens > 0 {
		m.tokens.add(float64(res.Usage.InputTokens), res.Provider, model, "input")
	}
	if res.Usage.OutputTokens > 0 {
		m.tokens.add(float64(res.Usage.OutputTokens), res.Provider, model, "output")
	}
	if res.CostUSD != nil && *res.CostUSD > 0 {
		m.cost.add(*res.CostUSD, res.Provider, model)
	}
}

func (m *metrics) write(w io.Writer) {
	fmt.Fprintf(w, "# HELP switchboard_gateway_in_flight Requests being served now.\n# TYPE switchboard_gateway_in_flight gauge\nswitchboard_gateway_in_flight %d\n", m.inFlight.Load())
	for _, f := range m.families {
		f.write(w)
	}
}
