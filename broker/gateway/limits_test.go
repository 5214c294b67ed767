package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-llm/switchboard/broker/gateway"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/llm/mock"
	"github.com/switchboard-llm/switchboard/policy/budget"
	"github.com/switchboard-llm/switchboard/router"
	"github.com/switchboard-llm/switchboard/workers"
)

// oneProcess is `switchboard up` in miniature: the gateway, a worker pool
// with its shared breakers and latency store, and the budget spend counter,
// all on ONE NATS connection, so anything that breaks that connection
// breaks the whole process, as in production.
func oneProcess(t *testing.T) (*env, *budget.Tracker) {
	t.Helper()
	m := startMock(t, mock.Options{})
	cfg := testenv.ParseConfig(t, fmt.Sprintf(`
providers:
  - {name: primary, kind: mock, base_url: "%s/v1", timeout: 10s}
models:
  - {provider: primary, name: m1, input_per_mtok: 1, output_per_mtok: 2}
routes:
  - name: chat
    targets: [{provider: primary, model: m1}]
budgets:
  - {tenant: "*", daily_usd: 1000, on_exceed: reject}
routing: {latency_flush: 50ms}
gateway: {request_timeout: 10s}
`, m.URL()))
	te := testenv.StartConfig(t, cfg)
	nc, js := te.NC, te.JS
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	spend, err := budget.Open(ctx, js, budget.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := workers.OpenResilience(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = spend.Run(ctx, js) }()
	te.StartPool(t, "primary", testenv.OnConn(nc, js), testenv.WithResilience(res), testenv.Drain(time.Second))
	resolver := router.New(cfg, router.Options{Health: res.Breakers, Latencies: res.Latency, Budgets: spend})
	gw, err := gateway.New(gateway.Options{Resolver: resolver, Conn: nc, JS: js})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, te: te, nats: te.NATS, nc: nc, js: js, cfg: cfg, gw: gw, http: httptest.NewServer(gw.Handler())}
	t.Cleanup(e.http.Close)
	return e, spend
}

// Defect: a 4,200-byte tenant or pinned model became a KV key over the NATS
// server's 4 KiB control-line limit; the server closed the connection and
// the process answered 503 for good. Now each is a 400 naming the field and
// its limit, and the process stays connected and serving.
func TestOverlongIdentifiersAre400AndNATSStaysUp(t *testing.T) {
	e, spend := oneProcess(t)
	long := strings.Repeat("t", 4200)
	msg := func(content string) string {
		return `{"model":"primary/m1","messages":[{"role":"user","content":"` + content + `"}]}`
	}
	cases := []struct {
		name, path, body string
		headers          map[string]string
		want             []string
	}{
		{"tenant header", "/v1/chat/completions", hello, map[string]string{"X-Switchboard-Tenant": long},
			[]string{"X-Switchboard-Tenant", "4200 bytes", "limit of 128"}},
		{"tier with a control character", "/v1/chat/completions", `{"model":"chat","metadata":{"tier":"a\u0001b"},"messages":[{"role":"user","content":"hi"}]}`, nil,
			[]string{"metadata.tier", "without control characters"}},
		{"pinned model", "/v1/chat/completions", `{"model":"primary/` + strings.Repeat("m", 4200) + `","messages":[{"role":"user","content":"hi"}]}`, nil,
			[]string{"model", "4200 bytes", "limit of 256"}},
		{"pinned provider", "/v1/chat/completions", `{"model":"` + strings.Repeat("p", 4200) + `/m1","messages":[{"role":"user","content":"hi"}]}`, nil,
			[]string{"model", "provider", "limit of 64"}},
		{"route name", "/v1/chat/completions", `{"model":"` + long + `","messages":[{"role":"user","content":"hi"}]}`, nil,
			[]string{"route", "limit of 128"}},
		{"metadata tenant", "/v1/chat/completions", `{"model":"chat","metadata":{"tenant":"` + long + `"},"messages":[{"role":"user","content":"hi"}]}`, nil,
			[]string{"metadata.tenant", "limit of 128"}},
		{"metadata key", "/v1/chat/completions", `{"model":"chat","metadata":{"` + long + `":"v"},"messages":[{"role":"user","content":"hi"}]}`, nil,
			[]string{"metadata key", "limit of 64"}},
		{"metadata value", "/v1/chat/completions", `{"model":"chat","metadata":{"k":"` + long + `"},"messages":[{"role":"user","content":"hi"}]}`, nil,
			[]string{"metadata.k", "limit of 512"}},
		{"async tenant header", "/v1/jobs", hello, map[string]string{"X-Switchboard-Tenant": long},
			[]string{"X-Switchboard-Tenant", "limit of 128"}},
		{"async full job model", "/v1/jobs", `{"model":"primary/` + strings.Repeat("m", 4200) + `","request":{"messages":[{"role":"user","content":"hi"}]}}`, nil,
			[]string{"model", "limit of 256"}},
		{"async full job batch", "/v1/jobs", `{"batch":"a.b","route":"chat","request":{"messages":[{"role":"user","content":"hi"}]}}`, nil,
			[]string{"batch", "without spaces, '.'"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := e.must(http.MethodPost, tc.path, tc.body, tc.headers)
			if a.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %.300s", a.status, a.body)
			}
			m, typ, _ := a.errorBody(t)
			for _, w := range tc.want {
				if !strings.Contains(m, w) {
					t.Errorf("message %q does not contain %q", m, w)
				}
			}
			if typ != "invalid_request_error" || len(m) > 400 {
				t.Errorf("type %q, message of %d bytes (the value must not be echoed whole)", typ, len(m))
			}
		})
	}
	if st := e.nc.Status(); st != nats.CONNECTED {
		t.Fatalf("NATS connection is %v after the hostile requests", st)
	}
	// The process still serves, and its spend counter and latency store
	// (KV writes on the same connection) still work.
	for i := 0; i < 3; i++ {
		a := e.must(http.MethodPost, "/v1/chat/completions", msg("still up"), map[string]string{"X-Switchboard-Tenant": "acme"})
		if a.status != http.StatusOK {
			t.Fatalf("request %d after the hostile ones: %d %s", i, a.status, a.body)
		}
	}
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if day, _ := spend.Spent("acme", time.Now()); day <= 0 {
			return fmt.Errorf("acme's spend not counted yet")
		}
		return nil
	})
	if st := e.nc.Status(); st != nats.CONNECTED {
		t.Fatalf("NATS connection is %v", st)
	}
	if a := e.must(http.MethodGet, "/readyz", "", nil); a.status != http.StatusOK {
		t.Fatalf("readyz %d: %s", a.status, a.body)
	}
}

// Clear errors for a wrong-typed messages field, and a model without '/'
// read as a route name on the full-job path as on the chat path.
func TestRequestShapeErrorsAndRouteModel(t *testing.T) {
	e, _ := oneProcess(t)
	a := e.must(http.MethodPost, "/v1/chat/completions", `{"model":"chat","messages":"hi"}`, nil)
	if a.status != http.StatusBadRequest {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if m, _, _ := a.errorBody(t); !strings.Contains(m, "messages: must be an array of messages") || strings.Contains(m, "Go struct") {
		t.Errorf("message %q", m)
	}
	a = e.must(http.MethodPost, "/v1/jobs", `{"model":"chat","request":{"messages":[{"role":"user","content":"hi"}]}}`, nil)
	if a.status != http.StatusAccepted {
		t.Fatalf("full job with model \"chat\": %d %s", a.status, a.body)
	}
}
