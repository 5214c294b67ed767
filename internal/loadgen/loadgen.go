// Package loadgen drives HTTP chat completions, or jobs over NATS
// (nats.go), at a fixed rate (open loop, side by side against several
// targets) or flat out, and summarises the latencies: the load generator
// behind `switchboard bench`.
package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// ErrInvalid marks bad Options.
var ErrInvalid = errors.New("invalid load options")

// Target is one endpoint to load: every request POSTs Body to URL, or,
// when Call is set, is one Call (e.g. a job over NATS).
type Target struct {
	Name   string
	URL    string
	Body   []byte
	Header http.Header
	// Call makes one request; an error counts as a failed request.
	Call func(ctx context.Context) error
}

// Options shape a run.
type Options struct {
	// Rate is requests per second per target (open loop: a request is
	// sent on schedule whether or not earlier ones have answered, and its
	// latency counts from its scheduled time); 0 runs flat out.
	Rate float64
	// Requests per target (default 1000).
	Requests int
	// Concurrency bounds requests in flight per target (default 256; flat
	// out, it is the number of callers).
	Concurrency int
	// Timeout of one request (default 30s).
	Timeout time.Duration
	// Client sends the requests (default: a pooled client sized to
	// Concurrency).
	Client *http.Client
}

func (o Options) withDefaults() Options {
	if o.Requests == 0 {
		o.Requests = 1000
	}
	if o.Concurrency == 0 {
		o.Concurrency = 256
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Client == nil {
		o.Client = &http.Client{Transport: &http.Transport{
			MaxIdleConns: 4 * o.Concurrency, MaxIdleConnsPerHost: 2 * o.Concurrency, IdleConnTimeout: time.Minute,
		}}
	}
	return o
}

// Validate reports bad options.
func (o Options) Validate() error {
	switch {
	case o.Rate < 0:
		return fmt.Errorf("%w: rate %v is negative", ErrInvalid, o.Rate)
	case o.Requests < 0:
		return fmt.Errorf("%w: requests %d is negative", ErrInvalid, o.Requests)
	case o.Concurrency < 0:
		return fmt.Errorf("%w: concurrency %d is negative", ErrInvalid, o.Concurrency)
	case o.Timeout < 0:
		return fmt.Errorf("%w: timeout %v is negative", ErrInvalid, o.Timeout)
	}
	return nil
}

// Stats summarises one target's run. Latencies are in milliseconds.
type Stats struct {
	Name       string  `json:"name"`
	Requests   int     `json:"requests"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds"`
	Throughput float64 `json:"throughput_rps"`
	P50        float64 `json:"p50_ms"`
	P90        float64 `json:"p90_ms"`
	P99        float64 `json:"p99_ms"`
	Max        float64 `json:"max_ms"`
}

// Added is what the second of two targets adds over the first (ms).
type Added struct {
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
}

// Diff returns b's latencies minus a's.
func Diff(a, b Stats) Added {
	return Added{P50: b.P50 - a.P50, P90: b.P90 - a.P90, P99: b.P99 - a.P99}
}

// Run loads every target. At a fixed rate the targets are loaded side by
// side, their requests interleaved on one schedule (the same machine load
// for each); flat out they are loaded one after another, each alone.
func Run(ctx context.Context, o Options, targets ...Target) ([]Stats, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	if o.Rate > 0 {
		return paced(ctx, o, targets), ctx.Err()
	}
	var out []Stats
	for _, t := range targets {
		out = append(out, flatOut(ctx, o, t))
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
	}
	return out, nil
}

// recorder collects one target's outcomes.
type recorder struct {
	mu       sync.Mutex
	lat      []time.Duration
	errs     int
	firstErr string
}

func (r *recorder) add(d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs++
		if r.firstErr == "" {
			r.firstErr = err.Error()
		}
		return
	}
	r.lat = append(r.lat, d)
}

func (r *recorder) stats(name string, elapsed time.Duration) Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	slices.Sort(r.lat)
	s := Stats{Name: name, Requests: len(r.lat) + r.errs, Errors: r.errs, FirstError: r.firstErr, Seconds: elapsed.Seconds()}
	if elapsed > 0 {
		s.Throughput = float64(len(r.lat)) / elapsed.Seconds()
	}
	if n := len(r.lat); n > 0 {
		pick := func(p float64) float64 { return ms(r.lat[int(float64(n-1)*p)]) }
		s.P50, s.P90, s.P99, s.Max = pick(0.50), pick(0.90), pick(0.99), ms(r.lat[n-1])
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

func paced(ctx context.Context, o Options, targets []Target) []Stats {
	recs := make([]*recorder, len(targets))
	sems := make([]chan struct{}, len(targets))
	for i := range targets {
		recs[i] = &recorder{}
		sems[i] = make(chan struct{}, o.Concurrency)
	}
	interval := time.Duration(float64(time.Second) / o.Rate)
	var wg sync.WaitGroup
	start := time.Now()
	for n := 0; n < o.Requests && ctx.Err() == nil; n++ {
		due := start.Add(time.Duration(n) * interval)
		if d := time.Until(due); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
		for k := range targets {
			i := (k + n) % len(targets) // alternate who goes first
			wg.Add(1)
			go func() {
				defer wg.Done()
				sems[i] <- struct{}{}
				defer func() { <-sems[i] }()
				_, err := do(ctx, o, targets[i])
				recs[i].add(time.Since(due), err) // from its scheduled time
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	out := make([]Stats, len(targets))
	for i, t := range targets {
		out[i] = recs[i].stats(t.Name, elapsed)
	}
	return out
}

func flatOut(ctx context.Context, o Options, t Target) Stats {
	rec := &recorder{}
	next := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for range min(o.Concurrency, o.Requests) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				d, err := do(ctx, o, t)
				rec.add(d, err)
			}
		}()
	}
	for n := 0; n < o.Requests && ctx.Err() == nil; n++ {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	return rec.stats(t.Name, time.Since(start))
}

// maxErrBody bounds the part of an error answer kept for the report.
const maxErrBody = 200

// do sends one request and reads the whole answer; a status other than
// 200 is an error.
func do(ctx context.Context, o Options, t Target) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if t.Call != nil {
		start := time.Now()
		if err := t.Call(ctx); err != nil {
			return 0, fmt.Errorf("%s: %w", t.Name, err)
		}
		return time.Since(start), nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(t.Body))
	if err != nil {
		return 0, fmt.Errorf("request %s: %w", t.Name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range t.Header {
		req.Header[k] = v
	}
	start := time.Now()
	resp, err := o.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", t.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrBody))
		return 0, fmt.Errorf("%s: status %d: %s", t.Name, resp.StatusCode, bytes.TrimSpace(b))
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, fmt.Errorf("%s: read answer: %w", t.Name, err)
	}
	return time.Since(start), nil
}

// JSON encodes a report for --json.
func JSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
