package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/syncbuf"
	"github.com/switchboard-llm/switchboard/llm/providers"
	"github.com/switchboard-llm/switchboard/workers"
)

// Environment of a worker subprocess (the test binary re-executed).
const (
	envWorker   = "SWITCHBOARD_TEST_WORKER"
	envNATS     = "SWITCHBOARD_TEST_NATS"
	envConfig   = "SWITCHBOARD_TEST_CONFIG"
	envProvider = "SWITCHBOARD_TEST_PROVIDER"
	envDrain    = "SWITCHBOARD_TEST_DRAIN"
	// EnvWorkerResilience=1 in the test's environment (t.Setenv) gives the
	// worker subprocesses started after it the shared breakers, rate limits
	// and latency store (workers.OpenResilience).
	EnvWorkerResilience = "SWITCHBOARD_TEST_RESILIENCE"
)

// Main is the TestMain of a package whose tests start worker subprocesses
// (StartWorker): in a subprocess it runs the worker and exits, otherwise it
// runs the tests.
func Main(m *testing.M) {
	if os.Getenv(envWorker) == "1" {
		os.Exit(workerMain())
	}
	os.Exit(m.Run())
}

// workerMain runs one Pool against the NATS server and config given in the
// environment until SIGTERM, like `switchboard worker`, then writes the
// pool's stats as JSON to stdout.
func workerMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := runWorker(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	return 0
}

func runWorker(ctx context.Context, stats io.Writer) error {
	cfg, err := config.Parse([]byte(os.Getenv(envConfig))) // strict, defaults, Validate: as `switchboard worker`
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	p, ok := cfg.Provider(os.Getenv(envProvider))
	if !ok {
		return fmt.Errorf("unknown provider %q", os.Getenv(envProvider))
	}
	drain, err := time.ParseDuration(os.Getenv(envDrain))
	if err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	nc, err := nats.Connect(os.Getenv(envNATS), nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	completer, err := providers.New(p, nil)
	if err != nil {
		return err
	}
	pc := workers.PoolConfig{Provider: p, Config: cfg, Completer: completer, Conn: nc, JS: js}
	for _, o := range []PoolOption{
		Logger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
		Backoff(10*time.Millisecond, 50*time.Millisecond), Drain(drain), NakDelay(100 * time.Millisecond),
	} {
		o(&pc)
	}
	if os.Getenv(EnvWorkerResilience) == "1" {
		if pc.Resilience, err = workers.OpenResilience(ctx, js, cfg); err != nil {
			return err
		}
	}
	pool, err := workers.NewPool(pc)
	if err != nil {
		return err
	}
	if err := pool.Run(ctx); err != nil {
		return err
	}
	// The parent reads what this process did.
	return json.NewEncoder(stats).Encode(pool.Stats())
}

// Worker is a worker subprocess: the test binary re-executed, running the
// pool of one provider (Main must be the package's TestMain).
type Worker struct {
	// Cmd is the process (e.g. to signal it).
	Cmd    *exec.Cmd
	stderr *syncbuf.Buffer
	stdout *strings.Builder
	done   chan error
}

// StartWorker starts a worker subprocess for a provider of the environment
// with the given drain timeout. It gets the config as YAML and loads it
// through config.Parse, as `switchboard worker` does; it connects to the
// environment's server. The test's cleanup kills it.
func (e *Env) StartWorker(t testing.TB, provider string, drain time.Duration) *Worker {
	t.Helper()
	cfgYAML, err := config.Marshal(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envWorker+"=1", envNATS+"="+e.URL(),
		envConfig+"="+string(cfgYAML), envProvider+"="+provider, envDrain+"="+drain.String())
	w := &Worker{Cmd: cmd, stderr: &syncbuf.Buffer{}, stdout: &strings.Builder{}, done: make(chan error, 1)}
	cmd.Stderr = w.stderr
	cmd.Stdout = w.stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-w.done
	})
	return w
}

// Wait waits for the process to exit and returns its exit error; it fails
// the test if the process is still running after timeout.
func (w *Worker) Wait(t testing.TB, timeout time.Duration) error {
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

// Stop sends SIGTERM, waits for a clean exit and returns the pool's stats.
func (w *Worker) Stop(t testing.TB) workers.PoolStats {
	t.Helper()
	if err := w.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := w.Wait(t, 20*time.Second); err != nil {
		t.Fatalf("worker exited with %v after SIGTERM; stderr:\n%s", err, w.stderr)
	}
	var st workers.PoolStats
	if err := json.Unmarshal([]byte(w.stdout.String()), &st); err != nil {
		t.Fatalf("worker stats %q: %v", w.stdout, err)
	}
	return st
}
