package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-llm/switchboard/internal/loadgen"
	"github.com/switchboard-llm/switchboard/llm/mock"
)

// benchReport is `switchboard bench --json`.
type benchReport struct {
	Mode    string          `json:"mode"` // "paced" or "flat_out"
	Rate    float64         `json:"rate_per_target,omitempty"`
	Via     string          `json:"via"` // "http", "submit" or "complete"
	Targets []loadgen.Stats `json:"targets"`
	// RawJetStream: the same server's async publish of messages the size
	// of a job, flat out, in the same run (NATS runs, --raw > 0).
	RawJetStream *loadgen.Stats `json:"raw_jetstream,omitempty"`
	// Added is the gateway's latency over the direct call (paced runs
	// with both targets).
	Added *loadgen.Added `json:"added,omitempty"`
}

// runBench loads a gateway with chat completions (or the broker with jobs
// over NATS), side by side with the same provider called directly, and
// prints the latencies and what the broker adds.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", stderr)
	gatewayURL := fs.String("gateway", "http://127.0.0.1:8080", "gateway base URL (its /v1/chat/completions is loaded)")
	direct := fs.String("direct", "", "the provider's OpenAI-compatible base URL, called directly for comparison (e.g. http://127.0.0.1:9999/v1)")
	mockAddr := fs.String("mock", "", "start an instant mock provider on this address (the gateway's config must point at it) and use it as --direct")
	model := fs.String("model", "chat", "model (route) in each request body")
	rate := fs.Float64("rate", 500, "requests per second per target, open loop; 0 runs flat out (each target alone)")
	requests := fs.Int("requests", 5000, "requests per target")
	concurrency := fs.Int("concurrency", 256, "requests in flight per target (flat out: callers)")
	keyEnv := fs.String("api-key-env", "", "environment variable holding a gateway key (sent as Authorization: Bearer)")
	via := fs.String("via", "http", "how requests reach the broker: http (the gateway), submit (jobs published to llm.submit, each timed until its Result arrives) or complete (llm.complete request-reply)")
	raw := fs.Int("raw", 100000, "with --via submit|complete: also publish this many job-sized messages to a scratch JetStream stream flat out, as the server's own speed (0: off)")
	var c commonFlags
	fs.StringVar(&c.natsURL, "nats", envOr("SWITCHBOARD_NATS", nats.DefaultURL), "NATS server URL for --via submit|complete (env SWITCHBOARD_NATS; without either, the URL a running `up` recorded under --data-dir)")
	fs.StringVar(&c.dataDir, "data-dir", ".switchboard", "data directory of a local `switchboard up` (its NATS URL and token are used when none is given)")
	c.natsAuth.register(fs)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	opts := loadgen.Options{Rate: *rate, Requests: *requests, Concurrency: *concurrency}
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *via != "http" && *via != loadgen.ViaSubmit && *via != loadgen.ViaComplete {
		return fmt.Errorf("%w: --via %q: want http, submit or complete", errUsage, *via)
	}
	if *raw < 0 {
		return fmt.Errorf("%w: --raw %d is negative", errUsage, *raw)
	}
	if *mockAddr != "" {
		if *direct != "" {
			return fmt.Errorf("%w: give --direct or --mock, not both", errUsage)
		}
		srv, err := mock.Listen(*mockAddr, mock.Options{Seed: 1})
		if err != nil {
			return err
		}
		defer func() { _ = srv.Close() }()
		*direct = srv.URL() + "/v1"
		fmt.Fprintf(stderr, "mock provider listening on %s/v1\n", srv.URL())
	}
	body := []byte(fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}]}`, *model))
	gw := loadgen.Target{Name: "gateway", URL: strings.TrimRight(*gatewayURL, "/") + "/v1/chat/completions", Body: body}
	if *keyEnv != "" {
		key := os.Getenv(*keyEnv)
		if key == "" {
			return fmt.Errorf("%w: --api-key-env %s: variable is empty or unset", errUsage, *keyEnv)
		}
		gw.Header = http.Header{"Authorization": {"Bearer " + key}}
	}
	rep := benchReport{Mode: "flat_out", Via: *via}
	if *via != "http" {
		nc, js, err := c.connect(ctx, fs, "switchboard-bench")
		if err != nil {
			return err
		}
		defer nc.Close()
		request := json.RawMessage(`{"messages":[{"role":"user","content":"hi"}]}`)
		t, closeTarget, err := loadgen.JobTarget(nc.Conn, js, *via, *model, request)
		if err != nil {
			return err
		}
		defer closeTarget()
		gw = t
		if *raw > 0 {
			st, err := loadgen.RawPublish(ctx, js, *raw, loadgen.JobSize(*model, request))
			if err != nil {
				return err
			}
			rep.RawJetStream = &st
		}
	}
	var targets []loadgen.Target
	if *direct != "" {
		targets = append(targets, loadgen.Target{Name: "direct", URL: strings.TrimRight(*direct, "/") + "/chat/completions", Body: body})
	}
	targets = append(targets, gw)
	stats, err := loadgen.Run(ctx, opts, targets...)
	if err != nil {
		return err
	}
	rep.Targets = stats
	if *rate > 0 {
		rep.Mode, rep.Rate = "paced", *rate
		if len(stats) == 2 {
			a := loadgen.Diff(stats[0], stats[1])
			rep.Added = &a
		}
	}
	if *asJSON {
		return loadgen.JSON(stdout, rep)
	}
	printBench(stdout, rep)
	for _, s := range stats {
		if s.Errors > 0 {
			return fmt.Errorf("%s: %d of %d requests failed (first: %s)", s.Name, s.Errors, s.Requests, s.FirstError)
		}
	}
	return nil
}

func printBench(w io.Writer, rep benchReport) {
	if rep.Mode == "paced" {
		fmt.Fprintf(w, "open loop at %.0f req/s per target, side by side\n", rep.Rate)
	} else {
		fmt.Fprintln(w, "flat out, each target alone")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\trequests\terrors\treq/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\t")
	for _, s := range rep.Targets {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", s.Name, s.Requests, s.Errors, s.Throughput, s.P50, s.P90, s.P99, s.Max)
	}
	if a := rep.Added; a != nil {
		fmt.Fprintf(tw, "added\t\t\t\t%.3f\t%.3f\t%.3f\t\t\n", a.P50, a.P90, a.P99)
	}
	if r := rep.RawJetStream; r != nil {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t\t\t\t\t\n", r.Name, r.Requests, r.Errors, r.Throughput)
	}
	_ = tw.Flush()
	if r := rep.RawJetStream; r != nil && r.Throughput > 0 && rep.Mode == "flat_out" {
		last := rep.Targets[len(rep.Targets)-1]
		fmt.Fprintf(w, "%s jobs/s over raw JetStream msgs/s: %.3f\n", last.Name, last.Throughput/r.Throughput)
	}
}
