package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/switchboard-llm/switchboard/broker/gateway"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/llm/mock"
)

// alwaysFail makes a mock fail every call with status.
func alwaysFail(status int) mock.Faults {
	return mock.Faults{FailFirst: 1 << 30, ErrorStatus: status}
}

func startMock(t testing.TB, opts mock.Options) *mock.Server {
	t.Helper()
	return testenv.StartMock(t, opts)
}

// stackConfig routes "chat" to primary then backup (no retries) and
// "solo" to primary alone.
func stackConfig(t testing.TB, primary, backup *mock.Server, extra string) *config.Config {
	t.Helper()
	return testenv.ParseConfig(t, fmt.Sprintf(`
providers:
  - {name: primary, kind: mock, base_url: "%s/v1", timeout: 20s, concurrency: 64}
  - {name: backup, kind: mock, base_url: "%s/v1", timeout: 20s, concurrency: 64}
models:
  - {provider: backup, name: m2, input_per_mtok: 1, output_per_mtok: 2}
routes:
  - name: chat
    targets:
      - {provider: primary, model: m1}
      - {provider: backup, model: m2}
    retries: 0
  - name: solo
    targets: [{provider: primary, model: m1}]
    retries: 0
`, primary.URL(), backup.URL())+extra)
}

// startPools runs a real worker pool per provider, on one connection of
// their own, until the test ends.
func (e *env) startPools() {
	e.t.Helper()
	nc, js := e.nats.Connect(e.t)
	e.startPoolsOn(nc, js)
}

// startPoolsOn starts the pools on nc/js with the tests' short backoff and
// drain, then mods.
func (e *env) startPoolsOn(nc *nats.Conn, js jetstream.JetStream, mods ...testenv.PoolOption) {
	e.t.Helper()
	opts := []testenv.PoolOption{testenv.OnConn(nc, js), testenv.Backoff(time.Millisecond, 5*time.Millisecond), testenv.Drain(time.Second)}
	e.te.StartPools(e.t, append(opts, mods...)...)
}

func (e *env) openai() openai.Client {
	return openai.NewClient(option.WithBaseURL(e.http.URL+"/v1"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
}

func chatParams(model string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    openai.ChatModel(model),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	}
}

func TestOpenAISDKFailover(t *testing.T) {
	primary := startMock(t, mock.Options{Faults: alwaysFail(500)})
	backup := startMock(t, mock.Options{})
	e := newEnv(t, stackConfig(t, primary, backup, ""), nil)
	e.startPools()
	client := e.openai()
	ctx := natstest.Context(t)

	var resp *http.Response
	c, err := client.Chat.Completions.New(ctx, chatParams("chat"), option.WithResponseInto(&resp))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Choices[0].Message.Content; got != "mock reply to: hi" {
		t.Errorf("content %q", got)
	}
	if c.Object != "chat.completion" || c.Usage.TotalTokens == 0 {
		t.Errorf("completion %+v", c)
	}
	h := resp.Header
	if h.Get("X-Switchboard-Provider") != "backup" || h.Get("X-Switchboard-Model") != "m2" || h.Get("X-Switchboard-Attempts") != "2" || h.Get("X-Switchboard-Job-Id") == "" {
		t.Errorf("headers %v", h)
	}

	// Streaming: the failed first target is invisible, the backup streams.
	stream := client.Chat.Completions.NewStreaming(ctx, chatParams("chat"), option.WithResponseInto(&resp))
	var text strings.Builder
	chunks := 0
	for stream.Next() {
		ch := stream.Current()
		chunks++
		if len(ch.Choices) > 0 {
			text.WriteString(ch.Choices[0].Delta.Content)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if text.String() != "mock reply to: hi" || chunks < 2 {
		t.Errorf("streamed %q in %d chunks", text.String(), chunks)
	}
	if resp.Header.Get("X-Switchboard-Provider") != "backup" || resp.Header.Get("X-Switchboard-Model") != "m2" {
		t.Errorf("stream headers %v", resp.Header)
	}
	// The mock counts a streamed call as succeeded once its handler
	// returns, which can be just after the pool read the stream's end and
	// answered: poll.
	natstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if ps, bs := primary.Stats(), backup.Stats(); ps.Requests != 2 || bs.Succeeded != 2 || bs.Streams != 1 {
			return fmt.Errorf("primary %+v backup %+v", ps, bs)
		}
		return nil
	})

	// The handler counts a streamed request once it returns, which can be
	// just after the client read the stream's end: poll.
	var metrics string
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		metrics = string(e.must("GET", "/metrics", "", nil).body)
		for _, want := range []string{
			`switchboard_fallbacks_total{route="chat"} 2`,
			`switchboard_attempt_errors_total{provider="primary",error_type="server_error"} 2`,
			`switchboard_attempts_total{provider="backup",model="m2",outcome="ok"} 2`,
			`switchboard_gateway_requests_total{endpoint="chat",route="chat",status="200"} 1`,
			`switchboard_gateway_requests_total{endpoint="chat_stream",route="chat",status="200"} 1`,
			`switchboard_tokens_total{provider="backup",model="m2",direction="output"}`,
			`switchboard_cost_usd_total{provider="backup",model="m2"}`,
			`switchboard_gateway_ttft_seconds_count{route="chat"} 1`,
		} {
			if !hasSample(metrics, want) {
				return fmt.Errorf("metrics lack %q", want)
			}
		}
		return nil
	})
	checkExposition(t, metrics)
}

// sseEvents reads a raw SSE body into its data payloads.
func sseEvents(t *testing.T, body string) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

func TestStreamErrorAfterFirstChunk(t *testing.T) {
	primary := startMock(t, mock.Options{Faults: mock.Faults{ErrorAfterChunks: 2}})
	backup := startMock(t, mock.Options{})
	e := newEnv(t, stackConfig(t, primary, backup, ""), nil)
	e.startPools()

	// Route solo has no target to continue on (continuation: internal/conduct).
	a := e.must("POST", "/v1/chat/completions", `{"model":"solo","stream":true,"messages":[{"role":"user","content":"hi there friend"}]}`, nil)
	if a.status != 200 || !strings.HasPrefix(a.header.Get("Content-Type"), "text/event-stream") || a.header.Get("X-Switchboard-Provider") != "primary" {
		t.Fatalf("%d %v %s", a.status, a.header, a.body)
	}
	events := sseEvents(t, string(a.body))
	if len(events) < 3 {
		t.Fatalf("events %q", events)
	}
	last := events[len(events)-1]
	var ev struct {
		Error struct{ Message, Type, Code string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(last), &ev); err != nil || ev.Error.Message == "" || ev.Error.Type == "" {
		t.Fatalf("last event is not an error: %q", last)
	}
	for _, d := range events[:len(events)-1] {
		if d == "[DONE]" || strings.Contains(d, `"error"`) {
			t.Errorf("unexpected event before the error: %q", d)
		}
	}
	if a.trailer.Get("X-Switchboard-Attempts") != "1" {
		t.Errorf("trailer %v", a.trailer)
	}
	if backup.Stats().Requests != 0 {
		t.Errorf("backup called: %+v", backup.Stats())
	}

	// The SDK surfaces it as a stream error after the first chunks.
	client := e.openai()
	stream := client.Chat.Completions.NewStreaming(natstest.Context(t), chatParams("solo"))
	n := 0
	for stream.Next() {
		n++
	}
	if err := stream.Err(); err == nil || n == 0 || !strings.Contains(err.Error(), "error while streaming") {
		t.Errorf("after %d chunks, err = %v", n, err)
	}
}

func TestFailedResultStatuses(t *testing.T) {
	faults := map[string]mock.Faults{
		"m429": alwaysFail(429), "m400": alwaysFail(400), "m401": alwaysFail(401), "m500": alwaysFail(500),
	}
	primary := startMock(t, mock.Options{ModelFaults: faults})
	backup := startMock(t, mock.Options{})
	e := newEnv(t, stackConfig(t, primary, backup, ""), nil)
	e.startPools()
	cases := []struct {
		model  string
		status int
		typ    string
		code   string
	}{
		{"m429", 429, "rate_limit_error", "rate_limited"},
		{"m400", 400, "invalid_request_error", "invalid_request"},
		{"m401", 502, "upstream_error", "auth"},
		{"m500", 502, "upstream_error", "server_error"},
	}
	for _, tc := range cases {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s stream=%v", tc.model, stream), func(t *testing.T) {
				body := fmt.Sprintf(`{"model":"primary/%s","stream":%v,"messages":[{"role":"user","content":"hi"}]}`, tc.model, stream)
				a := e.must("POST", "/v1/chat/completions", body, nil)
				if a.status != tc.status {
					t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
				}
				// Failure before the first chunk is a plain HTTP error, streaming or not.
				msg, typ, code := a.errorBody(t)
				if typ != tc.typ || code != tc.code || !strings.Contains(msg, "attempt") {
					t.Errorf("error %q %q %q", msg, typ, code)
				}
				if a.header.Get("X-Switchboard-Provider") != "primary" || a.header.Get("X-Switchboard-Attempts") == "" || a.header.Get("X-Switchboard-Job-Id") == "" {
					t.Errorf("headers %v", a.header)
				}
				if tc.status == 429 && a.header.Get("Retry-After") == "" {
					t.Error("429 without Retry-After")
				}
			})
		}
	}
	// The SDK sees the mapped status too.
	client := e.openai()
	_, err := client.Chat.Completions.New(natstest.Context(t), chatParams("primary/m429"))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Type != "rate_limit_error" {
		t.Errorf("sdk error %v", err)
	}
}

func TestDisconnectCancelsUpstream(t *testing.T) {
	primary := startMock(t, mock.Options{ModelFaults: map[string]mock.Faults{
		"hang": {Hang: true},
		"slow": {ChunkDelay: time.Hour},
	}})
	backup := startMock(t, mock.Options{})
	e := newEnv(t, stackConfig(t, primary, backup, ""), nil)
	e.startPools()
	client := e.openai()

	// Non-streaming: the client gives up while the provider hangs.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := client.Chat.Completions.New(ctx, chatParams("primary/hang"))
		done <- err
	}()
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if s := primary.Stats(); s.InFlight != 1 {
			return fmt.Errorf("in flight %d", s.InFlight)
		}
		return nil
	})
	cancel()
	if err := <-done; err == nil {
		t.Fatal("request succeeded")
	}
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if s := primary.Stats(); s.Canceled != 1 || s.InFlight != 0 {
			return fmt.Errorf("stats %+v", s)
		}
		return nil
	})

	// Streaming: the client reads the first chunk, then goes away.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	stream := client.Chat.Completions.NewStreaming(ctx, chatParams("primary/slow"))
	if !stream.Next() {
		t.Fatalf("no first chunk: %v", stream.Err())
	}
	cancel()
	stream.Close()
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if s := primary.Stats(); s.Canceled != 2 || s.InFlight != 0 {
			return fmt.Errorf("stats %+v", s)
		}
		return nil
	})
	if backup.Stats().Requests != 0 {
		t.Errorf("a canceled job fell back: %+v", backup.Stats())
	}
}

func TestGatewayRestartWithQueuedJobs(t *testing.T) {
	primary := startMock(t, mock.Options{Faults: alwaysFail(503)})
	backup := startMock(t, mock.Options{})
	e := newEnv(t, stackConfig(t, primary, backup, ""), nil)

	// Gateway 1 takes jobs while no worker runs, then stops.
	ctx1, stop1 := context.WithCancel(context.Background())
	ln := listen(t)
	served := make(chan error, 1)
	go func() { served <- e.gw.Serve(ctx1, ln) }()
	base := "http://" + ln.Addr().String()
	var ids []string
	for i := 0; i < 5; i++ {
		body := fmt.Sprintf(`{"model":"chat","metadata":{"custom_id":"c%d"},"messages":[{"role":"user","content":"job %d"}]}`, i, i)
		resp, err := http.Post(base+"/v1/jobs", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var st gateway.JobStatus
		json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if resp.StatusCode != 202 || st.Status != "queued" {
			t.Fatalf("submit %d: %d %+v", i, resp.StatusCode, st)
		}
		ids = append(ids, st.ID)
	}
	stop1()
	if err := <-served; err != nil {
		t.Fatal(err)
	}

	// Gateway 2 (a new process's server) still sees them queued.
	e.gw = e.newGateway(nil)
	e.http.Config.Handler = e.gw.Handler()
	for _, id := range ids {
		a := e.must("GET", "/v1/jobs/"+id, "", nil)
		if !strings.Contains(string(a.body), `"status":"queued"`) {
			t.Fatalf("before workers: %s", a.body)
		}
	}
	// Workers start: every job completes, through the fallback.
	e.startPools()
	for i, id := range ids {
		natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
			a := e.must("GET", "/v1/jobs/"+id, "", nil)
			var st gateway.JobStatus
			if err := json.Unmarshal(a.body, &st); err != nil || st.Status != "succeeded" {
				return fmt.Errorf("job %s: %d %s", id, a.status, a.body)
			}
			if st.Result.Provider != "backup" || st.Result.Metadata["custom_id"] != "c"+strconv.Itoa(i) ||
				!strings.Contains(string(st.Result.Response), fmt.Sprintf("mock reply to: job %d", i)) {
				return fmt.Errorf("result %+v", st.Result)
			}
			if a.header.Get("X-Switchboard-Provider") != "backup" || a.header.Get("X-Switchboard-Attempts") != "2" {
				return fmt.Errorf("headers %v", a.header)
			}
			return nil
		})
	}
	// Gateway 3 reads the same results.
	e.gw = e.newGateway(nil)
	e.http.Config.Handler = e.gw.Handler()
	for _, id := range ids {
		if a := e.must("GET", "/v1/jobs/"+id, "", nil); !strings.Contains(string(a.body), `"status":"succeeded"`) {
			t.Errorf("after restart: %s", a.body)
		}
	}
	if n := backup.Stats().Succeeded; n != 5 {
		t.Errorf("backup served %d, want 5", n)
	}
}
