package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/analytics/dashboard"
	"github.com/switchboard-llm/switchboard/analytics/ingest"
	"github.com/switchboard-llm/switchboard/broker/gateway"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/chtest"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/redact"
	"github.com/switchboard-llm/switchboard/internal/testenv"
)

// bodiesKey is the provider's API key; the request quotes it, so the
// stored request (and the mock's reply, which echoes it) must not.
const bodiesKey = "sk-test-bodies-0123456789abcdef"

// With analytics.log_bodies the request log (/api/jobs and the page) shows
// each job's request and response, the provider's key redacted and each
// body cut to analytics.log_body_bytes; without it, metadata only.
func TestRequestLogBodies(t *testing.T) {
	t.Setenv("SB_BODIES_TEST_KEY", bodiesKey)
	prompt := "my key is " + bodiesKey + " " + strings.Repeat("long ", 100)
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("log_bodies=%v", on), func(t *testing.T) {
			url, db := bodiesStack(t, on, prompt)
			resp, err := http.Get(url + "/api/jobs?since=1h")
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var jobs dashboard.Jobs
			if err := json.Unmarshal(raw, &jobs); err != nil || len(jobs.Jobs) != 1 {
				t.Fatalf("/api/jobs: %v: %s", err, raw)
			}
			if strings.Contains(string(raw), bodiesKey) {
				t.Fatalf("/api/jobs shows the key: %s", raw)
			}
			j := jobs.Jobs[0]
			stored, err := db.Count(context.Background(), "SELECT count() FROM completions FINAL WHERE request_body != '' OR response_body != ''")
			if err != nil {
				t.Fatal(err)
			}
			dom := ""
			if bin := chromium(t); bin != "" {
				// The page without its inlined script, which spells the markup.
				dom = regexp.MustCompile(`(?s)<script>.*?</script>`).ReplaceAllString(string(headless(t, bin, url+"/", "--dump-dom")), "")
			}
			if !on {
				if j.RequestBody != "" || j.ResponseBody != "" || strings.Contains(string(raw), "request_body") || stored != 0 {
					t.Fatalf("bodies logged while off (%d rows): %s", stored, raw)
				}
				if strings.Contains(dom, `data-body=`) {
					t.Errorf("the page shows bodies while off")
				}
				return
			}
			if len(j.RequestBody) > 200 || !strings.HasSuffix(j.RequestBody, redact.Ellipsis) ||
				!strings.Contains(j.RequestBody, "my key is "+redact.Placeholder) {
				t.Errorf("request_body (%d bytes) = %q, want it redacted and cut to 200 bytes", len(j.RequestBody), j.RequestBody)
			}
			if !strings.Contains(j.ResponseBody, "mock reply to: my key is "+redact.Placeholder) || len(j.ResponseBody) > 200 {
				t.Errorf("response_body (%d bytes) = %q", len(j.ResponseBody), j.ResponseBody)
			}
			for _, part := range []string{`data-body="request">`, `data-body="response">`, "my key is " + redact.Placeholder} {
				if !strings.Contains(dom, part) {
					t.Errorf("the page lacks %q", part)
				}
			}
			if strings.Contains(dom, bodiesKey) {
				t.Errorf("the page shows the key")
			}
		})
	}
}

// bodiesStack runs one provider (its key in SB_BODIES_TEST_KEY), the
// ingester and the gateway with the dashboard, sends one chat request and
// waits for its outcome in ClickHouse.
func bodiesStack(t *testing.T, logBodies bool, prompt string) (string, *chtest.DB) {
	t.Helper()
	db := chtest.NewDB(t)
	env := testenv.Start(t, []testenv.Provider{{Name: "alpha"}})
	env.Config.Providers[0].APIKeyEnv = "SB_BODIES_TEST_KEY"
	env.Config.Analytics.LogBodies = logBodies
	env.Config.Analytics.LogBodyBytes = 200
	env.StartPool(t, "alpha")
	ctx, cancel := context.WithCancel(context.Background())
	in, err := ingest.New(ingest.Config{JS: env.JS, DSN: db.DSN, BatchRows: 50, BatchInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	dash, err := dashboard.New(dashboard.Options{Config: func() *config.Config { return env.Config }, JS: env.JS, ClickHouse: db.Conn})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Options{Config: env.Config, Conn: env.NC, JS: env.JS, Dashboard: dash})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(func() { gw.Close() })
	body, _ := json.Marshal(map[string]any{"model": "chat", "messages": []map[string]string{{"role": "user", "content": prompt}}})
	resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("chat: %d %s", resp.StatusCode, answer)
	}
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		n, err := db.Count(context.Background(), "SELECT count() FROM completions FINAL")
		if err != nil || n != 1 {
			return fmt.Errorf("%d completions (%v)", n, err)
		}
		return nil
	})
	return srv.URL, db
}
