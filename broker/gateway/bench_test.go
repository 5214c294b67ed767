package gateway_test

import (
	"bufio"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/llm/mock"
	"github.com/switchboard-llm/switchboard/workers"
)

// Benchmarks report latencies measured side by side in one run: the same
// mock answered directly and through the gateway (JetStream job, worker
// pool, Result), so the difference is what the broker adds.

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: 2048, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}}
}

func quietLogs(b *testing.B) {
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	b.Cleanup(func() { slog.SetDefault(prev) })
}

// benchStack serves the gateway over pools whose only target is the mock,
// each on its own connection as in a worker process.
func benchStack(b *testing.B, m *mock.Server, extra string) *env {
	return benchStackWith(b, m, extra, false)
}

// benchStackWith is benchStack; asUp puts the pools on the gateway's own
// connection, answering its requests in process, as `switchboard up` does.
func benchStackWith(b *testing.B, m *mock.Server, extra string, asUp bool) *env {
	b.Helper()
	quietLogs(b)
	cfg := stackConfig(b, m, m, `
  - name: direct
    targets: [{provider: backup, model: m}]
    retries: 0
gateway: {max_in_flight: 4096}
`+extra)
	for i := range cfg.Providers {
		cfg.Providers[i].Concurrency = 512
	}
	e := newEnv(b, cfg, nil)
	if !asUp {
		e.startPools()
		return e
	}
	e.startPoolsOn(e.nc, e.js, func(pc *workers.PoolConfig) { pc.LocalReply = e.gw.DeliverReply })
	return e
}

func post(c *http.Client, url, body string) (time.Duration, error) {
	start := time.Now()
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != 200 {
		err = &httpStatusError{resp.StatusCode}
	}
	return time.Since(start), err
}

type httpStatusError struct{ code int }

func (e *httpStatusError) Error() string { return http.StatusText(e.code) }

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[int(float64(len(d)-1)*p)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

const benchBody = `{"model":"direct","messages":[{"role":"user","content":"hi"}]}`

// BenchmarkAddedLatencyPaced sends b.N requests to the mock directly and b.N
// through the gateway, interleaved, paced at ~500 req/s each, and reports
// p50/p99 of both, what the gateway adds and the server's messages per
// request: with the pools on their own connections (worker processes), and
// on the gateway's, answering in process (`switchboard up`).
func BenchmarkAddedLatencyPaced(b *testing.B) {
	b.Run("workers=own-connection", func(b *testing.B) { addedLatencyPaced(b, false) })
	b.Run("workers=as-up", func(b *testing.B) { addedLatencyPaced(b, true) })
}

func addedLatencyPaced(b *testing.B, asUp bool) {
	m := startMock(b, mock.Options{})
	e := benchStackWith(b, m, "", asUp)
	c := benchClient()
	direct := m.URL() + "/v1/chat/completions"
	via := e.http.URL + "/v1/chat/completions"
	// Warm connections and the pools.
	for i := 0; i < 50; i++ {
		post(c, direct, benchBody)
		post(c, via, benchBody)
	}
	var mu sync.Mutex
	var dLat, gLat []time.Duration
	var errs atomic.Int64
	var wg sync.WaitGroup
	tick := time.NewTicker(2 * time.Millisecond) // 500/s
	defer tick.Stop()
	v0, err := e.nats.Server.Varz(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		<-tick.C
		wg.Add(2)
		go func() {
			defer wg.Done()
			d, err := post(c, direct, benchBody)
			if err != nil {
				errs.Add(1)
				return
			}
			mu.Lock()
			dLat = append(dLat, d)
			mu.Unlock()
		}()
		go func() {
			defer wg.Done()
			d, err := post(c, via, benchBody)
			if err != nil {
				errs.Add(1)
				return
			}
			mu.Lock()
			gLat = append(gLat, d)
			mu.Unlock()
		}()
	}
	wg.Wait()
	b.StopTimer()
	v1, err := e.nats.Server.Varz(nil)
	if err != nil {
		b.Fatal(err)
	}
	if n := errs.Load(); n > 0 {
		b.Fatalf("%d requests failed", n)
	}
	// The direct calls send no NATS messages: these are the gateway's.
	b.ReportMetric(float64(v1.InMsgs-v0.InMsgs)/float64(b.N), "server-in-msgs/req")
	b.ReportMetric(float64(v1.OutMsgs-v0.OutMsgs)/float64(b.N), "server-out-msgs/req")
	d50, d99 := percentile(dLat, .5), percentile(dLat, .99)
	g50, g99 := percentile(gLat, .5), percentile(gLat, .99)
	b.ReportMetric(ms(d50), "direct-p50-ms")
	b.ReportMetric(ms(d99), "direct-p99-ms")
	b.ReportMetric(ms(g50), "gateway-p50-ms")
	b.ReportMetric(ms(g99), "gateway-p99-ms")
	b.ReportMetric(ms(g50-d50), "added-p50-ms")
	b.ReportMetric(ms(g99-d99), "added-p99-ms")
}

// ttft posts a streaming request and returns the time to its first data event.
func ttft(c *http.Client, url, body string) (time.Duration, error) {
	start := time.Now()
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, &httpStatusError{resp.StatusCode}
	}
	sc := bufio.NewScanner(resp.Body)
	var first time.Duration
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") && first == 0 {
			first = time.Since(start)
		}
	}
	return first, sc.Err()
}

// BenchmarkStreamingTTFT compares the time to the first streamed chunk,
// directly from the mock and through the gateway.
func BenchmarkStreamingTTFT(b *testing.B) {
	m := startMock(b, mock.Options{})
	e := benchStack(b, m, "")
	c := benchClient()
	body := `{"model":"direct","stream":true,"messages":[{"role":"user","content":"hello streaming world"}]}`
	direct := m.URL() + "/v1/chat/completions"
	via := e.http.URL + "/v1/chat/completions"
	for i := 0; i < 20; i++ {
		ttft(c, direct, body)
		ttft(c, via, body)
	}
	var dLat, gLat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, err := ttft(c, direct, body)
		if err != nil {
			b.Fatal(err)
		}
		g, err := ttft(c, via, body)
		if err != nil {
			b.Fatal(err)
		}
		dLat, gLat = append(dLat, d), append(gLat, g)
	}
	b.StopTimer()
	d50, g50 := percentile(dLat, .5), percentile(gLat, .5)
	b.ReportMetric(ms(d50), "direct-ttft-p50-ms")
	b.ReportMetric(ms(g50), "gateway-ttft-p50-ms")
	b.ReportMetric(ms(g50-d50), "added-ttft-p50-ms")
}

// BenchmarkMaxThroughput drives the gateway (and, side by side, the mock
// directly) with many concurrent clients against an instant mock and
// reports requests per second.
func BenchmarkMaxThroughput(b *testing.B) {
	m := startMock(b, mock.Options{})
	e := benchStack(b, m, "")
	c := benchClient()
	for _, tc := range []struct{ name, url string }{
		{"direct", m.URL() + "/v1/chat/completions"},
		{"gateway", e.http.URL + "/v1/chat/completions"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var errs atomic.Int64
			b.SetParallelism(64)
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := post(c, tc.url, benchBody); err != nil {
						errs.Add(1)
					}
				}
			})
			if n := errs.Load(); n > 0 {
				b.Fatalf("%d requests failed", n)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		})
	}
}
