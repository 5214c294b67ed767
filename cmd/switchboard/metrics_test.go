package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/internal/natstest"
)

// `worker --metrics` and `ingest --metrics` serve their counters plus the Go
// runtime and process metrics, and stop serving when the command ends.
func TestWorkerAndIngestServeMetrics(t *testing.T) {
	ns := natstest.Start(t)
	cfgPath := filepath.Join(t.TempDir(), "switchboard.yaml")
	if err := writeFile(cfgPath, "providers:\n  - {name: a, kind: mock, base_url: 'http://127.0.0.1:1'}\nroutes:\n  - {name: chat, targets: [{provider: a, model: m}]}\n"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		run  func(context.Context, []string, io.Writer, io.Writer) error
		args []string
		want []string
	}{
		{"worker", runWorker, []string{"--provider", "a"},
			[]string{`switchboard_worker_calls_total{provider="a"} 0`, `switchboard_worker_jobs_total{outcome="succeeded",provider="a"} 0`}},
		{"ingest", runIngest, []string{"--clickhouse", "clickhouse://127.0.0.1:1/x?dial_timeout=100ms"},
			[]string{`switchboard_ingest_rows_total{table="completions"} 0`, "switchboard_ingest_batches_total 0"}}, // no lag: its consumer starts with ClickHouse
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := freeAddr(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var stderr bytes.Buffer
			done := make(chan error, 1)
			args := append([]string{"--config", cfgPath, "--nats", ns.ClientURL(), "--metrics", addr}, tc.args...)
			go func() { done <- tc.run(ctx, args, io.Discard, &stderr) }()
			var body string
			natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
				select {
				case err := <-done:
					t.Fatalf("%s exited early: %v", tc.name, err)
				default:
				}
				resp, err := http.Get("http://" + addr + "/metrics")
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				body = string(b)
				for _, want := range append(tc.want, "go_goroutines ", "process_start_time_seconds ") {
					if !strings.Contains(body, want) {
						return fmt.Errorf("metrics lack %q", want)
					}
				}
				return nil
			})
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if _, err := http.Get("http://" + addr + "/metrics"); err == nil {
				t.Error("metrics still served after the command ended")
			}
		})
	}
	// A busy address is a usage error at start.
	var errOut bytes.Buffer
	ln := freeAddr(t)
	busy, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", ln)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if code := run([]string{"worker", "--config", cfgPath, "--nats", ns.ClientURL(), "--provider", "a", "--metrics", ln}, io.Discard, &errOut); code != exitUsage ||
		!strings.Contains(errOut.String(), "--metrics") {
		t.Errorf("busy --metrics: exit %d, %q", code, errOut.String())
	}
}
