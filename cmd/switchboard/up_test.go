package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/internal/natstest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The README's quick start: `up` with no config and no keys runs the demo,
// serves chat completions with failover, and exits cleanly on SIGTERM.
func TestUpDemoServesAndShutsDown(t *testing.T) {
	for _, env := range []string{"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"} {
		t.Setenv(env, "")
	}
	httpAddr := freeAddr(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- runUp(ctx, []string{"--config", dir + "/absent.yaml", "--demo", "--data-dir", dir,
			"--http", httpAddr, "--nats-listen", "127.0.0.1:-1", "--clickhouse", ""}, &stdout, &stderr)
	}()
	natstest.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		select {
		case err := <-done:
			t.Fatalf("up exited early: %v\n%s", err, stderr.String())
		default:
		}
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	for i := 0; i < 5; i++ {
		resp, err := http.Post("http://"+httpAddr+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"chat","messages":[{"role":"user","content":"hello demo"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		var completion struct {
			Choices []struct {
				Message struct{ Content string }
			}
		}
		if err := json.Unmarshal(body, &completion); err != nil || len(completion.Choices) != 1 ||
			completion.Choices[0].Message.Content != "mock reply to: hello demo" {
			t.Fatalf("body = %s", body)
		}
		if resp.Header.Get("X-Switchboard-Provider") == "" || resp.Header.Get("X-Switchboard-Job-Id") == "" {
			t.Errorf("missing switchboard headers: %v", resp.Header)
		}
	}
	// The dashboard is served (open: loopback, no gateway keys).
	for _, path := range []string{"/", "/api/queue"} {
		resp, err := http.Get("http://" + httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), map[string]string{"/": "<title>Switchboard</title>", "/api/queue": `"lanes"`}[path]) {
			t.Errorf("GET %s: %d %.200s", path, resp.StatusCode, body)
		}
	}
	// One /metrics for the process: the gateway's and the demo pools'
	// (open on loopback without gateway keys). The 5 jobs above each
	// succeeded on a pool of this process (counted just after the reply).
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		resp, err := http.Get("http://" + httpAddr + "/metrics")
		if err != nil {
			return err
		}
		metricsText, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var succeeded float64
		for _, line := range strings.Split(string(metricsText), "\n") {
			if strings.HasPrefix(line, "switchboard_worker_jobs_total{") && strings.Contains(line, `outcome="succeeded"`) {
				var v float64
				fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
				succeeded += v
			}
		}
		if succeeded != 5 || !strings.Contains(string(metricsText), "switchboard_gateway_requests_total{") {
			return fmt.Errorf("up's /metrics: %v worker jobs succeeded, want 5 beside the gateway's metrics:\n%.2000s", succeeded, metricsText)
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("up: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("up did not exit after SIGTERM")
	}
	if !strings.Contains(stdout.String(), "switchboard is up") {
		t.Errorf("stdout = %q", stdout.String())
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	cases := [][]string{
		{},
		{"frobnicate"},
		{"worker"},
		{"submit"},
		{"up", "--no-such-flag"},
		{"dlq"},
	}
	for _, args := range cases {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != exitUsage {
			t.Errorf("switchboard %v: exit %d, want %d (stderr %q)", args, code, exitUsage, errOut.String())
		}
	}
}

func TestBadConfigIsAFailureNamingTheKey(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/bad.yaml"
	if err := writeFile(path, "providers:\n  - {name: a, kind: mock, base_url: 'http://x', concurency: 3}\nroutes:\n  - {name: chat, targets: [{provider: a, model: m}]}\n"); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := run([]string{"worker", "--provider", "a", "--config", path}, &out, &errOut)
	if code != exitFail || !strings.Contains(errOut.String(), "providers[0].concurency: unknown key") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
}

func writeFile(path, content string) error {
	return os.WriteFile(path, []byte(content), 0o644)
}

func TestFlagsAfterPositionals(t *testing.T) {
	fs := newFlags("t", io.Discard)
	out := fs.String("out", "", "")
	quiet := fs.Bool("quiet", false, "")
	if err := parseFlags(fs, []string{"in.jsonl", "--out", "r.jsonl", "second", "--quiet", "--", "--third"}); err != nil {
		t.Fatal(err)
	}
	if *out != "r.jsonl" || !*quiet || strings.Join(fs.Args(), ",") != "in.jsonl,second,--third" {
		t.Fatalf("out=%q quiet=%v args=%v", *out, *quiet, fs.Args())
	}
	if err := parseFlags(newFlags("t", io.Discard), []string{"x", "--nope"}); !errors.Is(err, errUsage) {
		t.Fatalf("unknown flag after a positional: %v", err)
	}
}
