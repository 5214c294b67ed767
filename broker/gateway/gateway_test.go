package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/broker/gateway"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
)

// env is a gateway over a real in-process NATS server (a testenv.Env).
type env struct {
	t    testing.TB
	te   *testenv.Env
	nats *natstest.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	cfg  *config.Config
	gw   *gateway.Server
	http *httptest.Server
}

const baseConfig = `
providers:
  - {name: primary, kind: mock, base_url: "http://127.0.0.1:1", timeout: 5s}
  - {name: backup, kind: mock, base_url: "http://127.0.0.1:1", timeout: 5s}
models:
  - {provider: primary, name: m1, input_per_mtok: 1, output_per_mtok: 2}
routes:
  - name: chat
    targets:
      - {provider: primary, model: m1}
      - {provider: backup, model: m2}
    retries: 0
  - name: cheap
    targets: [{provider: backup, model: m2}]
`

func parseConfig(t testing.TB, extra string) *config.Config {
	t.Helper()
	return testenv.ParseConfig(t, baseConfig+extra)
}

// newEnv starts NATS, provisions the streams and serves a gateway.
func newEnv(t testing.TB, cfg *config.Config, getenv func(string) string) *env {
	t.Helper()
	te := testenv.StartConfig(t, cfg)
	e := &env{t: t, te: te, nats: te.NATS, nc: te.NC, js: te.JS, cfg: cfg}
	e.gw = e.newGateway(getenv)
	e.http = httptest.NewServer(e.gw.Handler())
	t.Cleanup(e.http.Close)
	return e
}

func (e *env) newGateway(getenv func(string) string) *gateway.Server {
	e.t.Helper()
	gw, err := gateway.New(gateway.Options{Config: e.cfg, Conn: e.nc, JS: e.js, Getenv: getenv, QueueDepthTTL: time.Millisecond})
	if err != nil {
		e.t.Fatal(err)
	}
	return gw
}

type answer struct {
	status  int
	header  http.Header
	trailer http.Header
	body    []byte
}

func (a answer) errorBody(t testing.TB) (msg, typ, code string) {
	t.Helper()
	var b struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(a.body, &b); err != nil || b.Error.Message == "" {
		t.Fatalf("not an OpenAI error body (%v): %s", err, a.body)
	}
	return b.Error.Message, b.Error.Type, b.Error.Code
}

func (e *env) do(ctx context.Context, method, path, body string, headers map[string]string) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, method, e.http.URL+path, strings.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := e.http.Client().Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, trailer: resp.Trailer, body: b}, err
}

func (e *env) must(method, path, body string, headers map[string]string) answer {
	e.t.Helper()
	a, err := e.do(natstest.Context(e.t), method, path, body, headers)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

const hello = `{"model":"chat","messages":[{"role":"user","content":"hi"}]}`

func TestErrors(t *testing.T) {
	cfg := parseConfig(t, "limits: {max_job_bytes: 4096}\ngateway: {max_body_bytes: 2048}\n")
	e := newEnv(t, cfg, nil)
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	big := `{"model":"chat","messages":[{"role":"user","content":"` + strings.Repeat("x", 3000) + `"}]}`
	cases := []struct {
		name       string
		path, body string
		headers    map[string]string
		status     int
		typ        string
		msg        string
	}{
		{"bad json", "/v1/chat/completions", `{"model":`, nil, 400, "invalid_request_error", "not a valid JSON object"},
		{"not an object", "/v1/chat/completions", `[1,2]`, nil, 400, "invalid_request_error", "not a valid JSON object"},
		{"missing model", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`, nil, 400, "invalid_request_error", "model: is required"},
		{"model not a string", "/v1/chat/completions", `{"model":3,"messages":[{"role":"user","content":"hi"}]}`, nil, 400, "invalid_request_error", "model: must be a string"},
		{"missing messages", "/v1/chat/completions", `{"model":"chat"}`, nil, 400, "invalid_request_error", "messages: must hold at least one message"},
		{"empty messages", "/v1/chat/completions", `{"model":"chat","messages":[]}`, nil, 400, "invalid_request_error", "messages: must hold at least one message"},
		{"message without role", "/v1/chat/completions", `{"model":"chat","messages":[{"content":"hi"}]}`, nil, 400, "invalid_request_error", "messages[0].role: is required"},
		{"stream not bool", "/v1/chat/completions", `{"model":"chat","stream":"yes","messages":[{"role":"user","content":"hi"}]}`, nil, 400, "invalid_request_error", "stream: must be a boolean"},
		{"metadata not object", "/v1/chat/completions", `{"model":"chat","metadata":"x","messages":[{"role":"user","content":"hi"}]}`, nil, 400, "invalid_request_error", "metadata: must be an object"},
		{"unknown route", "/v1/chat/completions", `{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}`, nil, 404, "invalid_request_error", `model "gpt-9" is neither a route nor provider/model`},
		{"unknown provider", "/v1/chat/completions", `{"model":"nope/m","messages":[{"role":"user","content":"hi"}]}`, nil, 404, "invalid_request_error", `unknown provider "nope"`},
		{"half a pin", "/v1/chat/completions", `{"model":"primary/","messages":[{"role":"user","content":"hi"}]}`, nil, 400, "invalid_request_error", "must be a route name or provider/model"},
		{"body too large", "/v1/chat/completions", big, nil, 413, "invalid_request_error", "over the limit of 2048 bytes"},
		{"deadline passed", "/v1/chat/completions", hello, map[string]string{"X-Switchboard-Deadline": past}, 504, "timeout_error", "deadline passed"},
		{"bad deadline", "/v1/chat/completions", hello, map[string]string{"X-Switchboard-Deadline": "tomorrow"}, 400, "invalid_request_error", "X-Switchboard-Deadline: \"tomorrow\" is not an RFC 3339 time"},
		{"bad priority", "/v1/chat/completions", hello, map[string]string{"X-Switchboard-Priority": "urgent"}, 400, "invalid_request_error", `"urgent" must be high, normal or low`},
		{"async bad json", "/v1/jobs", `{`, nil, 400, "invalid_request_error", "not a valid JSON object"},
		{"async full job without messages", "/v1/jobs", `{"route":"chat","request":{"model":"x"}}`, nil, 400, "invalid_request_error", "request.messages"},
		{"async full job bad id", "/v1/jobs", `{"id":"mine","route":"chat","request":{"messages":[{"role":"user","content":"hi"}]}}`, nil, 400, "invalid_request_error", `id: "mine" must be a UUID`},
		{"async full job unknown route", "/v1/jobs", `{"route":"nope","request":{"messages":[{"role":"user","content":"hi"}]}}`, nil, 404, "invalid_request_error", `"nope"`},
		{"async full job bad deadline", "/v1/jobs", `{"route":"chat","deadline":"soon","request":{"messages":[{"role":"user","content":"hi"}]}}`, nil, 400, "invalid_request_error", "deadline"},
		{"job id not a uuid", "/v1/jobs/not-a-uuid", "", nil, 404, "not_found_error", `no job with id "not-a-uuid"`},
		{"unknown endpoint", "/v1/completions", "", nil, 404, "not_found_error", "unknown endpoint"},
		{"wrong method", "/v1/chat/completions?x=1", "", nil, 405, "invalid_request_error", "method GET is not allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := http.MethodPost
			if tc.body == "" {
				method = http.MethodGet
			}
			a := e.must(method, tc.path, tc.body, tc.headers)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			msg, typ, code := a.errorBody(t)
			if typ != tc.typ || code == "" || !strings.Contains(msg, tc.msg) {
				t.Errorf("error = %q/%q/%q, want type %q and a message containing %q", msg, typ, code, tc.typ, tc.msg)
			}
			if a.header.Get("Content-Type") != "application/json" {
				t.Errorf("content type %q", a.header.Get("Content-Type"))
			}
		})
	}
}

func TestQueueFull(t *testing.T) {
	e := newEnv(t, parseConfig(t, "limits: {jobs_max_msgs: 2}\n"), nil)
	for i := 0; i < 2; i++ {
		if a := e.must("POST", "/v1/jobs", hello, nil); a.status != http.StatusAccepted {
			t.Fatalf("submit %d: %d %s", i, a.status, a.body)
		}
	}
	for _, path := range []string{"/v1/jobs", "/v1/chat/completions"} {
		a := e.must("POST", path, hello, nil)
		if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" {
			t.Fatalf("%s on a full queue: %d (Retry-After %q) %s", path, a.status, a.header.Get("Retry-After"), a.body)
		}
		if msg, typ, code := a.errorBody(t); typ != "rate_limit_error" || code != "queue_full" || !strings.Contains(msg, "queue is full") {
			t.Errorf("error = %q %q %q", msg, typ, code)
		}
	}
}

func TestAPIKeys(t *testing.T) {
	cfg := parseConfig(t, `
gateway:
  api_keys:
    - {key_env: SB_KEY_A, tenant: a, tier: enterprise}
    - {key_env: SB_KEY_B, tenant: b}
`)
	keys := map[string]string{"SB_KEY_A": "secret-key-a", "SB_KEY_B": "secret-key-b"}
	e := newEnv(t, cfg, func(k string) string { return keys[k] })

	for name, auth := range map[string]string{"missing": "", "wrong": "Bearer nope", "not bearer": "Basic secret-key-a", "prefix of a key": "Bearer secret-key"} {
		t.Run(name, func(t *testing.T) {
			h := map[string]string{}
			if auth != "" {
				h["Authorization"] = auth
			}
			for _, ep := range [][2]string{{"POST", "/v1/chat/completions"}, {"POST", "/v1/jobs"}, {"GET", "/v1/models"}, {"GET", "/v1/jobs/0190f0c4-0000-7000-8000-000000000000"}} {
				body := ""
				if ep[0] == "POST" {
					body = hello
				}
				a := e.must(ep[0], ep[1], body, h)
				if a.status != http.StatusUnauthorized {
					t.Fatalf("%s %s: status %d", ep[0], ep[1], a.status)
				}
				msg, typ, _ := a.errorBody(t)
				if typ != "authentication_error" || strings.Contains(msg, "secret") {
					t.Errorf("error %q %q", msg, typ)
				}
			}
		})
	}
	// Health stays open to probes (metrics need a key: TestMetricsBehindKeys).
	if a := e.must("GET", "/healthz", "", nil); a.status != 200 {
		t.Errorf("healthz: %d", a.status)
	}

	// A good key is accepted and its tenant/tier override the request's.
	sub, err := e.nc.SubscribeSync(topology.Jobs("primary"))
	if err != nil {
		t.Fatal(err)
	}
	a := e.must("POST", "/v1/jobs", `{"model":"chat","metadata":{"tenant":"evil","task":"t1","n":3},"messages":[{"role":"user","content":"hi"}]}`,
		map[string]string{"Authorization": "Bearer secret-key-a", "X-Switchboard-Tier": "free"})
	if a.status != http.StatusAccepted {
		t.Fatalf("good key: %d %s", a.status, a.body)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var job schemas.Job
	if err := json.Unmarshal(msg.Data, &job); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"tenant": "a", "tier": "enterprise", "task": "t1"}
	if fmt.Sprint(job.Metadata) != fmt.Sprint(want) {
		t.Errorf("metadata = %v, want %v", job.Metadata, want)
	}

	// A configured key whose variable is unset refuses to start.
	if _, err := gateway.New(gateway.Options{Config: cfg, Conn: e.nc, Getenv: func(string) string { return "" }}); err == nil ||
		!strings.Contains(err.Error(), "SB_KEY_A") {
		t.Errorf("missing key env: %v", err)
	}
}

func TestMetadataAndBodyPassThrough(t *testing.T) {
	e := newEnv(t, parseConfig(t, ""), nil)
	sub, err := e.nc.SubscribeSync("llm.jobs.>")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	body := `{"model":"backup/m9","temperature":0.2,"metadata":{"tenant":"t","custom_id":"c-1","ignored":{"x":1}},"messages":[{"role":"user","content":"hi"}],"x_vendor":{"keep":true}}`
	a := e.must("POST", "/v1/jobs", body, map[string]string{
		"X-Switchboard-Task": "summarize", "X-Switchboard-Priority": "high", "X-Switchboard-Deadline": deadline.Format(time.RFC3339),
	})
	if a.status != http.StatusAccepted {
		t.Fatalf("%d %s", a.status, a.body)
	}
	var st gateway.JobStatus
	if err := json.Unmarshal(a.body, &st); err != nil || st.Status != "queued" || st.ID == "" {
		t.Fatalf("answer %s (%v)", a.body, err)
	}
	if a.header.Get("X-Switchboard-Job-Id") != st.ID || a.header.Get("Location") != "/v1/jobs/"+st.ID {
		t.Errorf("headers %v", a.header)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "llm.jobs.backup.high" { // priority high: the provider's high lane
		t.Errorf("subject %s", msg.Subject)
	}
	var job schemas.Job
	if err := json.Unmarshal(msg.Data, &job); err != nil {
		t.Fatal(err)
	}
	if job.ID != st.ID || job.Model != "backup/m9" || job.Route != "" || job.Priority != "high" || job.Deadline == nil || !job.Deadline.Equal(deadline) {
		t.Errorf("job = %+v", job)
	}
	want := map[string]string{"tenant": "t", "custom_id": "c-1", "task": "summarize"}
	if fmt.Sprint(job.Metadata) != fmt.Sprint(want) {
		t.Errorf("metadata = %v, want %v", job.Metadata, want)
	}
	var sent, got any
	json.Unmarshal([]byte(body), &sent)
	json.Unmarshal(job.Request, &got)
	if fmt.Sprint(sent) != fmt.Sprint(got) {
		t.Errorf("request changed:\n sent %s\n got  %s", body, job.Request)
	}
}

func TestAsyncFullJobAndGet(t *testing.T) {
	e := newEnv(t, parseConfig(t, ""), nil)
	id := schemas.NewJobID()
	full := fmt.Sprintf(`{"id":%q,"route":"cheap","metadata":{"tenant":"x"},"reply":"llm.jobs.primary","plan":[{"provider":"nope","model":"m"}],"request":{"messages":[{"role":"user","content":"hi"}]}}`, id)
	sub, err := e.nc.SubscribeSync("llm.jobs.*")
	if err != nil {
		t.Fatal(err)
	}
	a := e.must("POST", "/v1/jobs", full, nil)
	if a.status != http.StatusAccepted {
		t.Fatalf("%d %s", a.status, a.body)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var job schemas.Job
	json.Unmarshal(msg.Data, &job)
	if msg.Subject != "llm.jobs.backup" || job.ID != id || job.Reply != "" || len(job.Plan) != 1 || job.Plan[0].Provider != "backup" {
		t.Errorf("job on %s = %+v", msg.Subject, job)
	}
	// Resubmitting the same id is deduplicated: still one queued message.
	if a := e.must("POST", "/v1/jobs", full, nil); a.status != http.StatusAccepted {
		t.Fatalf("resubmit: %d %s", a.status, a.body)
	}
	stream, _ := e.js.Stream(natstest.Context(t), topology.StreamJobs)
	info, _ := stream.Info(natstest.Context(t))
	if info.State.Msgs != 1 {
		t.Errorf("jobs stored = %d, want 1", info.State.Msgs)
	}

	// The queued job reads as queued (no result yet); an id never
	// submitted is 404.
	a = e.must("GET", "/v1/jobs/"+id, "", nil)
	var st gateway.JobStatus
	if err := json.Unmarshal(a.body, &st); a.status != 200 || err != nil || st.Status != "queued" || st.ID != id || st.Result != nil {
		t.Errorf("GET %s: %d %s", id, a.status, a.body)
	}
	unknown := schemas.NewJobID()
	a = e.must("GET", "/v1/jobs/"+unknown, "", nil)
	if msg, _, code := a.errorBody(t); a.status != http.StatusNotFound || code != "job_not_found" || !strings.Contains(msg, "never queued") {
		t.Errorf("GET unknown %s: %d %s", unknown, a.status, a.body)
	}
}

func TestModelsHealthReady(t *testing.T) {
	e := newEnv(t, parseConfig(t, ""), nil)
	a := e.must("GET", "/v1/models", "", nil)
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			OwnedBy string `json:"owned_by"`
		} `json:"data"`
	}
	if err := json.Unmarshal(a.body, &list); err != nil || a.status != 200 || list.Object != "list" {
		t.Fatalf("models: %d %s", a.status, a.body)
	}
	var ids []string
	for _, m := range list.Data {
		if m.Object != "model" || m.OwnedBy == "" {
			t.Errorf("model %+v", m)
		}
		ids = append(ids, m.ID)
	}
	if got, want := strings.Join(ids, ","), "chat,cheap,primary/m1,backup/m2"; got != want {
		t.Errorf("models = %s, want %s", got, want)
	}
	if a := e.must("GET", "/healthz", "", nil); a.status != 200 {
		t.Errorf("healthz %d", a.status)
	}
	if a := e.must("GET", "/readyz", "", nil); a.status != 200 {
		t.Errorf("readyz %d %s", a.status, a.body)
	}
	// Without the streams the gateway is not ready, and says why.
	if err := e.js.DeleteStream(natstest.Context(t), topology.StreamDLQ); err != nil {
		t.Fatal(err)
	}
	if a := e.must("GET", "/readyz", "", nil); a.status != 503 || !strings.Contains(string(a.body), "DLQ") {
		t.Errorf("readyz without DLQ: %d %s", a.status, a.body)
	}
	// Without NATS it is not ready either, but still healthy.
	e.nats.Shutdown()
	e.nats.WaitForShutdown()
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if a := e.must("GET", "/readyz", "", nil); a.status != 503 || !strings.Contains(string(a.body), "NATS") {
			return fmt.Errorf("readyz: %d %s", a.status, a.body)
		}
		return nil
	})
	if a := e.must("GET", "/healthz", "", nil); a.status != 200 {
		t.Errorf("healthz %d", a.status)
	}
}

func TestInFlightLimitAndDisconnectCancels(t *testing.T) {
	e := newEnv(t, parseConfig(t, "gateway: {max_in_flight: 1}\n"), nil)
	cancels, err := e.nc.SubscribeSync(topology.CancelAll)
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := e.nc.SubscribeSync("llm.jobs.*")
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{hello, strings.Replace(hello, `"chat"`, `"chat","stream":true`, 1)} {
		// No worker runs, so this request waits: it holds the only slot.
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := e.do(ctx, "POST", "/v1/chat/completions", body, nil)
			done <- err
		}()
		msg, err := jobs.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var job schemas.Job
		json.Unmarshal(msg.Data, &job)
		natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
			a := e.must("POST", "/v1/chat/completions", hello, nil)
			if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" {
				return fmt.Errorf("second request: %d %s", a.status, a.body)
			}
			if msg, _, _ := a.errorBody(t); !strings.Contains(msg, "max_in_flight") {
				return fmt.Errorf("message %q", msg)
			}
			return nil
		})
		if !strings.Contains(body, "stream") == job.Stream || job.Deadline == nil {
			t.Errorf("job stream=%v deadline=%v", job.Stream, job.Deadline)
		}
		// The client goes away: the gateway asks the worker to cancel.
		cancel()
		<-done
		c, err := cancels.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("no cancel published: %v", err)
		}
		if c.Subject != topology.Cancel(job.ID) {
			t.Errorf("cancel on %s, want %s", c.Subject, topology.Cancel(job.ID))
		}
		// The slot is free again.
		natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
			if n := metricValue(t, e, "switchboard_gateway_in_flight"); n != 0 {
				return fmt.Errorf("in flight %v", n)
			}
			return nil
		})
	}
}

// metricValue reads one unlabelled sample from /metrics.
func metricValue(t *testing.T, e *env, name string) float64 {
	t.Helper()
	a := e.must("GET", "/metrics", "", nil)
	for _, line := range strings.Split(string(a.body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	t.Fatalf("metric %s not found in:\n%s", name, a.body)
	return 0
}

func TestMetricsFormat(t *testing.T) {
	e := newEnv(t, parseConfig(t, ""), nil)
	e.must("POST", "/v1/chat/completions", `{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}`, nil)
	for i := 0; i < 3; i++ {
		e.must("POST", "/v1/jobs", hello, nil)
	}
	for _, m := range []string{"backup/m2", "backup/x1", "backup/x2"} {
		e.must("POST", "/v1/jobs", strings.Replace(hello, `"chat"`, `"`+m+`"`, 1), nil)
	}
	e.must("POST", "/v1/jobs", strings.Replace(hello, `"chat"`, `"cheap"`, 1), map[string]string{"X-Switchboard-Priority": "high"})
	// Consumer NumPending trails the stored jobs by a moment under load:
	// wait until the queue gauges show all seven, then check every sample.
	var a answer
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		a = e.must("GET", "/metrics", "", nil)
		for _, want := range []string{
			`switchboard_queue_depth{provider="primary",lane="normal"} 3`,
			`switchboard_queue_depth{provider="backup",lane="normal"} 3`,
			`switchboard_queue_depth{provider="backup",lane="high"} 1`,
		} {
			if !hasSample(string(a.body), want) {
				return fmt.Errorf("metrics lack %q", want)
			}
		}
		return nil
	})
	if a.status != 200 || !strings.HasPrefix(a.header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("%d %v", a.status, a.header)
	}
	text := string(a.body)
	for _, want := range []string{
		`switchboard_gateway_requests_total{endpoint="chat",route="",status="404"} 1`,
		`switchboard_gateway_requests_total{endpoint="jobs_submit",route="chat",status="202"} 3`,
		`switchboard_gateway_requests_total{endpoint="jobs_submit",route="backup/m2",status="202"} 1`,
		`switchboard_gateway_requests_total{endpoint="jobs_submit",route="backup/other",status="202"} 2`,
		`switchboard_queue_depth{provider="primary",lane="normal"} 3`,
		`switchboard_queue_depth{provider="backup",lane="normal"} 3`,
		`switchboard_queue_depth{provider="backup",lane="high"} 1`,
		`switchboard_queue_depth{provider="backup",lane="low"} 0`,
		`switchboard_gateway_request_duration_seconds_bucket{endpoint="jobs_submit",route="chat",le="+Inf"} 3`,
		"# TYPE switchboard_gateway_request_duration_seconds histogram",
		"# TYPE switchboard_gateway_in_flight gauge",
	} {
		if !hasSample(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
	checkExposition(t, text)
}

// hasSample reports whether text holds the line want (or a line starting
// with it), comparing label sets regardless of their order: the exposition
// writes labels sorted by name.
func hasSample(text, want string) bool {
	return strings.Contains(canonicalLabels(text), canonicalLabels(want))
}

// canonicalLabels sorts the label pairs of every line of text.
func canonicalLabels(text string) string {
	lines := strings.Split(text, "\n")
	for i, line := range lines {
		open, end := strings.IndexByte(line, '{'), strings.LastIndexByte(line, '}')
		if strings.HasPrefix(line, "#") || open < 0 || end < open {
			continue
		}
		pairs := strings.Split(line[open+1:end], ",")
		sort.Strings(pairs)
		lines[i] = line[:open+1] + strings.Join(pairs, ",") + line[end:]
	}
	return strings.Join(lines, "\n")
}

// checkExposition checks the text format line by line: every sample belongs
// to a family announced by HELP and TYPE, names carry the switchboard_ prefix
// (or go_ / process_: the Go runtime and process collectors), and those
// collectors are there.
func checkExposition(t *testing.T, text string) {
	t.Helper()
	for _, want := range []string{"# TYPE go_goroutines gauge", "# TYPE process_start_time_seconds gauge"} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	typed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		switch {
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(line)
			typed[f[2]] = true
		case strings.HasPrefix(line, "# HELP "):
		default:
			name := line[:strings.IndexAny(line, "{ ")]
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
			if !typed[name] && !typed[base] {
				t.Errorf("sample without TYPE: %q", line)
			}
			if !strings.HasPrefix(name, "switchboard_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
				t.Errorf("metric without prefix: %q", line)
			}
			if len(strings.Fields(line[strings.LastIndex(line, "}")+1:])) != 1 && !strings.Contains(line, "}") && len(strings.Fields(line)) != 2 {
				t.Errorf("bad sample line %q", line)
			}
		}
	}
}

func TestRunGracefulShutdown(t *testing.T) {
	e := newEnv(t, parseConfig(t, ""), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ln := listen(t)
	addr := ln.Addr().String()
	go func() { done <- e.gw.Serve(ctx, ln) }()
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Error("still serving after shutdown")
	}
}

func TestAutoModelUsesRules(t *testing.T) {
	e := newEnv(t, parseConfig(t, "rules:\n  - {when: {tier: free}, route: cheap}\n"), nil)
	sub, err := e.nc.SubscribeSync("llm.jobs.*")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ tier, subject, route string }{{"free", "llm.jobs.backup", "cheap"}, {"pro", "llm.jobs.primary", "chat"}} {
		body := `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`
		if a := e.must("POST", "/v1/jobs", body, map[string]string{"X-Switchboard-Tier": tc.tier}); a.status != 202 {
			t.Fatalf("%d %s", a.status, a.body)
		}
		msg, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var job schemas.Job
		json.Unmarshal(msg.Data, &job)
		if msg.Subject != tc.subject || job.Route != tc.route {
			t.Errorf("tier %s: %s route %q", tc.tier, msg.Subject, job.Route)
		}
	}
}

func TestRequestTimeoutAnswers504AndCancels(t *testing.T) {
	e := newEnv(t, parseConfig(t, "gateway: {request_timeout: 300ms}\n"), nil)
	cancels, err := e.nc.SubscribeSync(topology.CancelAll)
	if err != nil {
		t.Fatal(err)
	}
	// No worker runs: the job is never answered.
	for _, body := range []string{hello, strings.Replace(hello, `"chat"`, `"chat","stream":true`, 1)} {
		a := e.must("POST", "/v1/chat/completions", body, nil)
		if a.status != http.StatusGatewayTimeout {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		if _, typ, code := a.errorBody(t); typ != "timeout_error" || code != "deadline_exceeded" {
			t.Errorf("error %s", a.body)
		}
		c, err := cancels.NextMsg(5 * time.Second)
		if err != nil || c.Subject != topology.Cancel(a.header.Get("X-Switchboard-Job-Id")) {
			t.Errorf("cancel %v %v", c, err)
		}
	}
}

// TestGetJobWhoseResultWasDropped: RESULTS is bounded by count
// (limits.results_max_msgs); a queued job whose Result was dropped for
// newer ones answers 404 saying so, not "queued" for as long as its record
// lives, while a job queued after the oldest stored Result still reads as
// queued.
func TestGetJobWhoseResultWasDropped(t *testing.T) {
	e := newEnv(t, parseConfig(t, "limits: {results_max_msgs: 10000}\n"), nil)
	ctx := natstest.Context(t)
	queue := func() string {
		a := e.must("POST", "/v1/jobs", `{"route":"cheap","request":{"messages":[{"role":"user","content":"hi"}]}}`, nil)
		var st gateway.JobStatus
		if err := json.Unmarshal(a.body, &st); a.status != http.StatusAccepted || err != nil {
			t.Fatalf("POST /v1/jobs: %d %s", a.status, a.body)
		}
		return st.ID
	}
	// store publishes a Result as a worker would, without waiting for
	// its confirmation (wait for those with e.js.PublishAsyncComplete).
	store := func(id string) {
		data, err := schemas.AppendResult(nil, &schemas.Result{V: schemas.Version, ID: id, Status: schemas.StatusSucceeded,
			Response: json.RawMessage(`{"choices":[]}`)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.js.PublishAsync(topology.Result("", id), data); err != nil {
			t.Fatal(err)
		}
	}
	confirmed := func() {
		select {
		case <-e.js.PublishAsyncComplete():
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	status := func(id string) (int, string, string) {
		a := e.must("GET", "/v1/jobs/"+id, "", nil)
		if a.status == http.StatusOK {
			var st gateway.JobStatus
			if err := json.Unmarshal(a.body, &st); err != nil {
				t.Fatal(err)
			}
			return a.status, st.Status, ""
		}
		msg, _, code := a.errorBody(t)
		return a.status, code, msg
	}

	done := queue()
	store(done)
	confirmed()
	if code, st, _ := status(done); code != http.StatusOK || st != schemas.StatusSucceeded {
		t.Fatalf("finished job before the cap: %d %s", code, st)
	}
	// 10,000 newer Results push it out (in rounds, within the client's
	// limit of unconfirmed async publishes).
	for i := range 10_000 {
		store(schemas.NewJobID())
		if i%1000 == 999 {
			confirmed()
		}
	}
	if code, errCode, msg := status(done); code != http.StatusNotFound || errCode != "job_not_found" || !strings.Contains(msg, "limits.results_max_msgs") {
		t.Errorf("finished job whose result was dropped: %d %s %q, want 404 job_not_found naming limits.results_max_msgs", code, errCode, msg)
	}
	if code, st, msg := status(queue()); code != http.StatusOK || st != gateway.JobQueued {
		t.Errorf("job queued after the oldest stored result: %d %s %s, want 200 queued", code, st, msg)
	}
}
