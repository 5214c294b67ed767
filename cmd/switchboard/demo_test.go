package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/internal/natstest"
)

// TestDemoShowsFailoverInTenRequests: the README's demo walk-through. Ten
// sequential requests to `chat` on `up --demo` show a retry, a fallback to
// healthy past the slow provider's latency threshold, and flaky's breaker
// opening, in the order the README lists.
func TestDemoShowsFailoverInTenRequests(t *testing.T) {
	httpAddr := freeAddr(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- runUp(ctx, []string{"--demo", "--data-dir", dir, "--http", httpAddr, "--nats-listen", "127.0.0.1:-1", "--clickhouse", "clickhouse://127.0.0.1:1/none"},
			io.Discard, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Error("up did not exit")
		}
	})
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
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	var got []string
	for range 10 {
		resp, err := http.Post("http://"+httpAddr+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"chat","messages":[{"role":"user","content":"hello"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		got = append(got, resp.Header.Get("X-Switchboard-Provider")+"/"+resp.Header.Get("X-Switchboard-Attempts"))
	}
	// As README.md describes it.
	want := "flaky/2 flaky/1 healthy/4 healthy/4 healthy/2 healthy/2 healthy/2 healthy/2 healthy/2 healthy/2"
	if strings.Join(got, " ") != want {
		t.Errorf("ten demo requests (provider/attempts):\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	resp, err := http.Get("http://" + httpAddr + "/api/providers")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct {
		Models []struct{ Key, Breaker string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	breakers := map[string]string{}
	for _, m := range p.Models {
		breakers[m.Key] = m.Breaker
	}
	if breakers["flaky/flaky-large"] != "open" || breakers["healthy/healthy-small"] != "closed" {
		t.Errorf("breakers after ten requests: %v, want flaky open, healthy closed", breakers)
	}
}
