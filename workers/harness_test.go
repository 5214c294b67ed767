package workers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/llm/mock"
	"github.com/switchboard-llm/switchboard/llm/providers"
	"github.com/switchboard-llm/switchboard/router"
	"github.com/switchboard-llm/switchboard/schemas"
	"github.com/switchboard-llm/switchboard/topology"
	"github.com/switchboard-llm/switchboard/workers"
)

// Environment of a worker subprocess (the test binary re-executed).
const (
	envWorker   = "SWITCHBOARD_TEST_WORKER"
	envNATS     = "SWITCHBOARD_TEST_NATS"
	envConfig   = "SWITCHBOARD_TEST_CONFIG"
	envProvider = "SWITCHBOARD_TEST_PROVIDER"
	envDrain    = "SWITCHBOARD_TEST_DRAIN"
	// envResilience=1 gives the worker process the shared resilience state.
	envResilience = "SWITCHBOARD_TEST_RESILIENCE"
)

func TestMain(m *testing.M) {
	if os.Getenv(envWorker) == "1" {
		os.Exit(workerMain())
	}
	os.Exit(m.Run())
}

// workerMain runs one Pool against the NATS server and config given in the
// environment until SIGTERM, like `switchboard worker`.
func workerMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	cfg, err := config.Parse([]byte(os.Getenv(envConfig))) // strict, defaults, Validate: as `switchboard worker`
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker config:", err)
		return 1
	}
	p, ok := cfg.Provider(os.Getenv(envProvider))
	if !ok {
		fmt.Fprintln(os.Stderr, "unknown provider")
		return 1
	}
	drain, _ := time.ParseDuration(os.Getenv(envDrain))
	nc, err := nats.Connect(os.Getenv(envNATS), nats.MaxReconnects(-1))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	completer, err := providers.New(p, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var res workers.Resilience
	if os.Getenv(envResilience) == "1" { // shared breakers, rate limits, latency (resilience_test.go)
		if res, err = workers.OpenResilience(ctx, js, cfg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	pool, err := workers.NewPool(workers.PoolConfig{
		Provider: p, Config: cfg, Completer: completer, Conn: nc, JS: js,
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		DrainTimeout: drain, NakDelay: 100 * time.Millisecond, Resilience: res,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := pool.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The parent reads what this process did.
	_ = json.NewEncoder(os.Stdout).Encode(pool.Stats())
	return 0
}

// env is one test's NATS server, config and mock providers.
type env struct {
	t      testing.TB
	srv    *natstest.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	cfg    *config.Config
	client *broker.Client
	mocks  map[string]*mock.Server
	pools  map[string]*workers.Pool // the last pool startPool started per provider
}

// provider describes one mock provider of a test.
type provider struct {
	name        string
	faults      mock.Faults
	concurrency int
	timeout     time.Duration
}

// newEnv starts NATS and one mock per provider, and builds a config with
// route "chat" over the providers in order (model "m-<name>") and the given
// retries. Provider "a"'s model is priced; the others are not.
func newEnv(t testing.TB, retries int, provs ...provider) *env {
	t.Helper()
	e := &env{t: t, mocks: map[string]*mock.Server{}}
	e.srv = natstest.Start(t)
	e.nc, e.js = e.srv.Connect(t)
	cfg := &config.Config{}
	rt := config.Route{Name: "chat", Retries: &retries}
	for _, p := range provs {
		srv, err := mock.Listen("127.0.0.1:0", mock.Options{Faults: p.faults})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Close() })
		e.mocks[p.name] = srv
		if p.concurrency == 0 {
			p.concurrency = 4
		}
		if p.timeout == 0 {
			p.timeout = time.Second
		}
		cfg.Providers = append(cfg.Providers, config.Provider{
			Name: p.name, Kind: config.KindMock, BaseURL: srv.URL() + "/v1",
			Concurrency: p.concurrency, Timeout: p.timeout,
		})
		rt.Targets = append(rt.Targets, config.RouteTarget{Provider: p.name, Model: "m-" + p.name})
	}
	cfg.Models = []config.Model{{Provider: provs[0].name, Name: "m-" + provs[0].name, InputPerMTok: 1, OutputPerMTok: 2}}
	cfg.Routes = []config.Route{rt}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := topology.EnsureAll(ctx, e.js, cfg); err != nil {
		t.Fatal(err)
	}
	e.client = broker.NewClient(e.nc, e.js, router.New(cfg, router.Options{}))
	return e
}

// adapter builds the real adapter of a provider.
func (e *env) adapter(name string) llm.Completer {
	p, _ := e.cfg.Provider(name)
	c, err := providers.New(p, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// startPool runs an in-process pool for a provider until the test ends (or
// the returned stop is called, which waits for Run to return).
func (e *env) startPool(name string, mods ...func(*workers.PoolConfig)) (stop func()) {
	e.t.Helper()
	p, _ := e.cfg.Provider(name)
	pc := workers.PoolConfig{
		Provider: p, Config: e.cfg, Completer: e.adapter(name), Conn: e.nc, JS: e.js,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		DrainTimeout: 2 * time.Second, NakDelay: 100 * time.Millisecond,
	}
	for _, m := range mods {
		m(&pc)
	}
	pool, err := workers.NewPool(pc)
	if err != nil {
		e.t.Fatal(err)
	}
	if e.pools == nil {
		e.pools = map[string]*workers.Pool{}
	}
	e.pools[name] = pool
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pool.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("pool %s: Run: %v", name, err)
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

// worker is a worker subprocess.
type worker struct {
	cmd    *exec.Cmd
	stderr *strings.Builder
	stdout *strings.Builder
	done   chan error
}

// startWorker re-executes the test binary as a worker process of provider.
func (e *env) startWorker(name string, drain time.Duration) *worker {
	e.t.Helper()
	cfgYAML, err := config.Marshal(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envWorker+"=1", envNATS+"="+e.srv.ClientURL(),
		envConfig+"="+string(cfgYAML), envProvider+"="+name, envDrain+"="+drain.String())
	w := &worker{cmd: cmd, stderr: &strings.Builder{}, stdout: &strings.Builder{}, done: make(chan error, 1)}
	cmd.Stderr = &lockedWriter{w: w.stderr}
	cmd.Stdout = w.stdout
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { w.done <- cmd.Wait() }()
	e.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-w.done
	})
	return w
}

// wait waits for the process to exit and returns its exit error.
func (w *worker) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-w.done:
		w.done <- err // for the cleanup
		return err
	case <-time.After(timeout):
		t.Fatalf("worker did not exit within %s; stderr:\n%s", timeout, w.stderr)
		return nil
	}
}

// stop sends SIGTERM, waits for a clean exit and returns the pool's stats.
func (w *worker) stop(t *testing.T) workers.PoolStats {
	t.Helper()
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := w.wait(t, 20*time.Second); err != nil {
		t.Fatalf("worker exited with %v after SIGTERM; stderr:\n%s", err, w.stderr)
	}
	var st workers.PoolStats
	if err := json.Unmarshal([]byte(w.stdout.String()), &st); err != nil {
		t.Fatalf("worker stats %q: %v", w.stdout, err)
	}
	return st
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// chatBody is a minimal OpenAI chat-completions request.
const chatBody = `{"messages":[{"role":"user","content":"say hi"}]}`

// newJob returns a job on route "chat".
func newJob() *schemas.Job {
	return &schemas.Job{Route: "chat", Request: json.RawMessage(chatBody),
		Metadata: map[string]string{"tenant": "acme", "tier": "pro", "task": "chat"}}
}

// submit submits a job and returns its id.
func (e *env) submit(job *schemas.Job) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id, err := e.client.Submit(ctx, job)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// result waits for the stored Result of a job.
func (e *env) result(id string, within time.Duration) *schemas.Result {
	e.t.Helper()
	var res *schemas.Result
	natstest.CheckFor(e.t, within, 10*time.Millisecond, func() error {
		r, err := e.client.Result(context.Background(), id)
		if err != nil {
			return err
		}
		res = r
		return nil
	})
	return res
}

// count returns the number of messages stored in a stream on subject.
func (e *env) count(stream, subject string) int {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n
}

// lastMsg returns the last stored message on subject.
func (e *env) lastMsg(stream, subject string) *jetstream.RawStreamMsg {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		e.t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		e.t.Fatalf("last message on %s: %v", subject, err)
	}
	return m
}

// jobsLeft is the number of jobs still on JOBS (work queue: acked jobs go).
func (e *env) jobsLeft() int {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, topology.StreamJobs)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return int(info.State.Msgs)
}

// waitEmpty waits until JOBS holds no job.
func (e *env) waitEmpty(within time.Duration) {
	e.t.Helper()
	natstest.CheckFor(e.t, within, 10*time.Millisecond, func() error {
		if n := e.jobsLeft(); n != 0 {
			return fmt.Errorf("%d jobs left on JOBS", n)
		}
		return nil
	})
}

// events returns the telemetry events of a job, by kind.
func (e *env) events(jobID string) (attempts, completions []schemas.Event) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := e.js.OrderedConsumer(ctx, topology.StreamTelemetry, jetstream.OrderedConsumerConfig{})
	if err != nil {
		e.t.Fatal(err)
	}
	for {
		batch, err := cons.FetchNoWait(256)
		if err != nil {
			e.t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var evs []schemas.Event
			if m.Subject() != topology.TelemetryBatch {
				evs = append(evs, schemas.Event{})
				err = json.Unmarshal(m.Data(), &evs[0])
			} else {
				err = json.Unmarshal(m.Data(), &evs)
			}
			if err != nil {
				e.t.Fatal(err)
			}
			for _, ev := range evs {
				if ev.JobID != jobID {
					continue
				}
				if ev.Kind == schemas.EventAttempt {
					attempts = append(attempts, ev)
				} else {
					completions = append(completions, ev)
				}
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			e.t.Fatal(err)
		}
		if n == 0 {
			return attempts, completions
		}
	}
}

// outcomes renders attempts as "provider:outcome[:error_type]" for comparison.
func outcomes(atts []schemas.Attempt) string {
	parts := make([]string, len(atts))
	for i, a := range atts {
		parts[i] = a.Provider + ":" + a.Outcome
		if a.ErrorType != "" {
			parts[i] += ":" + a.ErrorType
		}
	}
	return strings.Join(parts, " ")
}
