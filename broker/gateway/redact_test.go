package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/broker/gateway"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/syncbuf"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/llm/mock"
	"github.com/switchboard-llm/switchboard/topology"
)

// keyPart returns the first 8-byte piece of key found in s, or "".
func keyPart(s, key string) string {
	for i := 0; i+8 <= len(key); i++ {
		if strings.Contains(s, key[i:i+8]) {
			return key[i : i+8]
		}
	}
	return ""
}

// streamText is every message of a stream (headers and data) as text.
func streamText(t *testing.T, js jetstream.JetStream, name string) (string, int) {
	t.Helper()
	ctx := natstest.Context(t)
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	n := 0
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		n++
		fmt.Fprintf(&b, "%s %v %s\n", m.Subject, m.Header, m.Data)
	}
	return b.String(), n
}

// An upstream echoing the provider key in a non-JSON error body, the key
// straddling byte 300 (where error text is cut), leaks no part of it: not
// in the HTTP answers, RESULTS, the DLQ, telemetry or the logs.
func TestUpstreamKeyNeverLeaksInPart(t *testing.T) {
	const key = "sk-live-Q7mXc2RtZ9pLw4NvB8kHs3Jd"
	t.Setenv("SB_TEST_UPSTREAM_KEY", key)
	upstream := startMock(t, mock.Options{APIKey: key, Faults: mock.Faults{FailFirst: 1 << 30, ErrorStatus: 502,
		ErrorBody: strings.Repeat("x", 290) + key + " <- your key; upstream proxy failure, try again later"}})
	cfg := testenv.ParseConfig(t, fmt.Sprintf(`
providers:
  - {name: primary, kind: mock, base_url: "%s/v1", api_key_env: SB_TEST_UPSTREAM_KEY, timeout: 5s}
routes:
  - {name: solo, targets: [{provider: primary, model: m1}], retries: 1}
`, upstream.URL()))
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	te := testenv.StartConfig(t, cfg)
	nc, js := te.NC, te.JS
	gw, err := gateway.New(gateway.Options{Config: cfg, Conn: nc, JS: js, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(gw.Handler())
	t.Cleanup(hs.Close)

	te.StartPool(t, "primary", testenv.Logger(log), testenv.Backoff(time.Millisecond, 5*time.Millisecond), testenv.Drain(time.Second))

	post := func(path string) (int, string) {
		t.Helper()
		resp, err := hs.Client().Post(hs.URL+path, "application/json",
			strings.NewReader(`{"model":"solo","messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	status, syncAnswer := post("/v1/chat/completions")
	if status != http.StatusBadGateway || !strings.Contains(syncAnswer, strings.Repeat("x", 100)) {
		t.Fatalf("sync answer %d %s, want 502 quoting the upstream body", status, syncAnswer)
	}
	status, queued := post("/v1/jobs")
	var st gateway.JobStatus
	if err := json.Unmarshal([]byte(queued), &st); status != http.StatusAccepted || err != nil {
		t.Fatalf("submit: %d %s", status, queued)
	}
	var asyncAnswer string
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		resp, err := hs.Client().Get(hs.URL + "/v1/jobs/" + st.ID)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		if asyncAnswer = b.String(); !strings.Contains(asyncAnswer, `"failed"`) {
			return fmt.Errorf("job %s: %s", st.ID, asyncAnswer)
		}
		return nil
	})
	var dlq string
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		var n int
		if dlq, n = streamText(t, js, topology.StreamDLQ); n < 2 {
			return fmt.Errorf("%d dead letters, want both jobs", n)
		}
		return nil
	})
	results, _ := streamText(t, js, topology.StreamResults)
	var telemetry string // both jobs' completion events, stored once the jobs are acked
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		telemetry, _ = streamText(t, js, topology.StreamTelemetry)
		if n := strings.Count(telemetry, `"kind":"completion"`); n < 2 {
			return fmt.Errorf("%d completion events in TELEMETRY, want both jobs'", n)
		}
		return nil
	})
	if !strings.Contains(dlq, strings.Repeat("x", 100)) || !strings.Contains(results, strings.Repeat("x", 100)) {
		t.Fatalf("the upstream body is not quoted where it is kept:\nDLQ %.400s\nRESULTS %.400s", dlq, results)
	}
	for where, text := range map[string]string{"sync HTTP answer": syncAnswer, "GET /v1/jobs/{id}": asyncAnswer,
		"RESULTS": results, "DLQ": dlq, "TELEMETRY": telemetry, "logs": logs.String()} {
		if part := keyPart(text, key); part != "" {
			t.Errorf("%s holds %q of the provider key: %.2000s", where, part, text)
		}
	}
}
