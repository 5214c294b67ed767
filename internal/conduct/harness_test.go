package conduct_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/switchboard-llm/switchboard/analytics/ingest"
	"github.com/switchboard-llm/switchboard/broker/gateway"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/chtest"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/internal/testenv"
	"github.com/switchboard-llm/switchboard/llm/mock"
	"github.com/switchboard-llm/switchboard/workers"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// prompt makes the canonical answer "mock reply to: <prompt>" 23 words long.
const prompt = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty"

// canonical is the whole answer every healthy mock gives to prompt.
const canonical = "mock reply to: " + prompt

// target is one provider of a test stack: a mock speaking kind's shape.
type target struct {
	name, kind string
	faults     mock.Faults
	// yaml is extra provider keys, e.g. "stream_idle_timeout: 300ms".
	yaml string
	// timeout is the provider timeout (default 10s).
	timeout string
	// reply, when set, is the mock's answer instead of the canonical one.
	reply string
}

// stack is a running Switchboard: NATS, worker pools, the gateway over
// HTTP, an ingester into a fresh ClickHouse database, and one mock per
// target.
type stack struct {
	t     *testing.T
	db    *chtest.DB
	cfg   *config.Config
	mocks map[string]*mock.Server
	url   string
}

// baseURL is the base_url of a provider of kind served by srv.
func baseURL(kind string, srv *mock.Server) string {
	switch kind {
	case config.KindAnthropic:
		return srv.URL()
	case config.KindGemini:
		return srv.URL() + "/v1beta"
	}
	return srv.URL() + "/v1"
}

// start runs a stack whose route "chat" tries targets in order (model
// "<name>-m", priced 1 and 2 USD per million tokens); routeYAML adds keys
// to the route (e.g. "retries: 1").
func start(t *testing.T, routeYAML string, targets ...target) *stack {
	t.Helper()
	s := &stack{t: t, db: chtest.NewDB(t), mocks: map[string]*mock.Server{}}
	var provs, models, tgts strings.Builder
	for _, tg := range targets {
		opts := mock.Options{Faults: tg.faults}
		if reply := tg.reply; reply != "" {
			opts.Reply = func(string) string { return reply }
		}
		srv := testenv.StartMock(t, opts)
		s.mocks[tg.name] = srv
		timeout := tg.timeout
		if timeout == "" {
			timeout = "10s"
		}
		fmt.Fprintf(&provs, "  - {name: %s, kind: %s, base_url: %q, timeout: %s, concurrency: 8", tg.name, tg.kind, baseURL(tg.kind, srv), timeout)
		if tg.yaml != "" {
			provs.WriteString(", " + tg.yaml)
		}
		provs.WriteString("}\n")
		fmt.Fprintf(&models, "  - {provider: %s, name: %s-m, input_per_mtok: 1, output_per_mtok: 2}\n", tg.name, tg.name)
		fmt.Fprintf(&tgts, "      - {provider: %s, model: %s-m}\n", tg.name, tg.name)
	}
	yaml := "providers:\n" + provs.String() + "models:\n" + models.String() +
		"routes:\n  - name: chat\n    targets:\n" + tgts.String()
	if routeYAML != "" {
		for _, line := range strings.Split(routeYAML, "\n") {
			yaml += "    " + line + "\n"
		}
	}
	cfg := testenv.ParseConfig(t, yaml)
	s.cfg = cfg

	te := testenv.StartConfig(t, cfg)
	nc, js := te.NC, te.JS
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	res, err := workers.OpenResilience(runCtx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	te.StartPools(t, testenv.Logger(log), testenv.WithResilience(res),
		testenv.Backoff(time.Millisecond, 5*time.Millisecond), testenv.Drain(time.Second))
	in, err := ingest.New(ingest.Config{JS: js, DSN: s.db.DSN, BatchRows: 100, BatchInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = in.Run(runCtx) }()
	gw, err := gateway.New(gateway.Options{Config: cfg, Conn: nc, JS: js, Logger: log, QueueDepthTTL: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(gw.Handler())
	t.Cleanup(hs.Close)
	s.url = hs.URL
	return s
}

// answer is what the caller of one streamed request got.
type answer struct {
	text   string
	chunks int
	err    error
	header http.Header
	usage  openai.CompletionUsage
	jobID  string
}

// stream sends one streamed chat request for prompt through the gateway
// with the openai-go client and assembles what arrives.
func (s *stack) stream(includeUsage bool) answer {
	s.t.Helper()
	client := openai.NewClient(option.WithBaseURL(s.url+"/v1"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	params := openai.ChatCompletionNewParams{
		Model:    "chat",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)},
	}
	if includeUsage {
		params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var resp *http.Response
	st := s.newStream(ctx, client, params, &resp)
	var a answer
	for st.Next() {
		ch := st.Current()
		a.chunks++
		for _, c := range ch.Choices {
			a.text += c.Delta.Content
		}
		if ch.Usage.TotalTokens > 0 {
			a.usage = ch.Usage
		}
	}
	a.err = st.Err()
	if resp != nil {
		a.header = resp.Header
		a.jobID = resp.Header.Get("X-Switchboard-Job-Id")
	}
	return a
}

func (s *stack) newStream(ctx context.Context, client openai.Client, params openai.ChatCompletionNewParams, resp **http.Response) interface {
	Next() bool
	Current() openai.ChatCompletionChunk
	Err() error
} {
	return client.Chat.Completions.NewStreaming(ctx, params, option.WithResponseInto(resp))
}

// complete sends one non-streamed chat request through the gateway.
func (s *stack) complete() (*openai.ChatCompletion, *http.Response, error) {
	s.t.Helper()
	client := openai.NewClient(option.WithBaseURL(s.url+"/v1"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var resp *http.Response
	c, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    "chat",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)},
	}, option.WithResponseInto(&resp))
	return c, resp, err
}

// calls is how many provider calls the named mock saw.
func (s *stack) calls(name string) int64 { return s.mocks[name].Stats().Requests }

// attemptRow is one row of the attempts table.
type attemptRow struct {
	Attempt      uint16
	Provider     string
	ErrorType    string
	Outcome      string
	InputTokens  uint64
	OutputTokens uint64
}

func (r attemptRow) String() string {
	return fmt.Sprintf("%d %s %q %s in=%d out=%d", r.Attempt, r.Provider, r.ErrorType, r.Outcome, r.InputTokens, r.OutputTokens)
}

// completionRow is the job's row of the completions table.
type completionRow struct {
	Status, ErrorType, Provider string
	Attempts                    uint16
	Fallback                    uint8
	OutputTokens                uint64
}

// rows waits until ClickHouse holds the job's completion and n attempt rows.
func (s *stack) rows(jobID string, n int) (completionRow, []attemptRow) {
	s.t.Helper()
	ctx := context.Background()
	var c completionRow
	var atts []attemptRow
	natstest.CheckFor(s.t, 30*time.Second, 20*time.Millisecond, func() error {
		atts = atts[:0]
		rs, err := s.db.Conn.Query(ctx, `SELECT attempt, provider, error_type, outcome, input_tokens, output_tokens
			FROM attempts FINAL WHERE job_id = ? ORDER BY attempt`, jobID)
		if err != nil {
			return err
		}
		for rs.Next() {
			var r attemptRow
			if err := rs.Scan(&r.Attempt, &r.Provider, &r.ErrorType, &r.Outcome, &r.InputTokens, &r.OutputTokens); err != nil {
				rs.Close()
				return err
			}
			atts = append(atts, r)
		}
		rs.Close()
		if len(atts) != n {
			return fmt.Errorf("%d attempt rows, want %d: %v", len(atts), n, atts)
		}
		return s.db.Conn.QueryRow(ctx, `SELECT status, error_type, provider, attempts, fallback, output_tokens
			FROM completions FINAL WHERE job_id = ?`, jobID).
			Scan(&c.Status, &c.ErrorType, &c.Provider, &c.Attempts, &c.Fallback, &c.OutputTokens)
	})
	return c, atts
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}
