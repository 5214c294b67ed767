// Package testenv assembles a real Switchboard for end-to-end tests: an
// in-process JetStream server, mock providers over HTTP on loopback, the
// config routing across them, provisioned streams and worker pools.
package testenv

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/llm/mock"
	"github.com/switchboard-llm/switchboard/llm/providers"
	"github.com/switchboard-llm/switchboard/router"
	"github.com/switchboard-llm/switchboard/topology"
	"github.com/switchboard-llm/switchboard/workers"
)

// Provider describes one mock provider of the environment.
type Provider struct {
	Name        string
	Model       string
	Faults      mock.Faults
	Concurrency int
	Timeout     time.Duration
	// InputPerMTok and OutputPerMTok price the model (0 = no price entry).
	InputPerMTok, OutputPerMTok float64
}

// Env is a running environment.
type Env struct {
	// NATS is the server (nil on a cluster: see Cluster).
	NATS *natstest.Server
	// Cluster is the JetStream cluster of StartCluster.
	Cluster *natstest.Cluster
	NC      *nats.Conn
	JS      jetstream.JetStream
	Config  *config.Config
	Client  *broker.Client
	Mocks   map[string]*mock.Server
}

// Start builds the environment: one route "chat" over the providers in order
// (retries 1) unless routes are given. Worker pools are not started; call
// StartPools or StartPool.
func Start(t testing.TB, ps []Provider, routes ...config.Route) *Env {
	t.Helper()
	e := &Env{NATS: natstest.Start(t), Mocks: map[string]*mock.Server{}}
	e.NC, e.JS = e.NATS.Connect(t)
	return e.start(t, &config.Config{}, ps, routes)
}

// StartCluster is Start on a real JetStream cluster of nodes servers, with
// nats.replicas set to replicas; connections fail over between nodes.
func StartCluster(t testing.TB, nodes, replicas int, ps []Provider, routes ...config.Route) *Env {
	t.Helper()
	e := &Env{Cluster: natstest.StartCluster(t, nodes), Mocks: map[string]*mock.Server{}}
	e.NC, e.JS = e.connect(t)
	return e.start(t, &config.Config{NATS: config.NATS{Replicas: replicas}}, ps, routes)
}

// connect opens a connection to the server or the cluster; its JetStream
// context provisions with the config's replicas (topology.Replicated).
func (e *Env) connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	if e.Cluster != nil {
		nc, js := e.Cluster.Connect(t)
		n := 1
		if e.Config != nil {
			n = e.Config.NATS.Replicas
		}
		return nc, topology.Replicated(js, n)
	}
	return e.NATS.Connect(t)
}

func (e *Env) start(t testing.TB, cfg *config.Config, ps []Provider, routes []config.Route) *Env {
	t.Helper()
	var chat []config.RouteTarget
	for _, p := range ps {
		srv, err := mock.Listen("127.0.0.1:0", mock.Options{Faults: p.Faults})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Close() })
		e.Mocks[p.Name] = srv
		if p.Model == "" {
			p.Model = p.Name + "-model"
		}
		if p.Timeout == 0 {
			p.Timeout = 2 * time.Second
		}
		cfg.Providers = append(cfg.Providers, config.Provider{Name: p.Name, Kind: config.KindMock,
			BaseURL: srv.URL() + "/v1", Concurrency: p.Concurrency, Timeout: p.Timeout})
		if p.InputPerMTok > 0 || p.OutputPerMTok > 0 {
			cfg.Models = append(cfg.Models, config.Model{Provider: p.Name, Name: p.Model, InputPerMTok: p.InputPerMTok, OutputPerMTok: p.OutputPerMTok})
		}
		chat = append(chat, config.RouteTarget{Provider: p.Name, Model: p.Model})
	}
	if len(routes) == 0 {
		one := 1
		routes = []config.Route{{Name: "chat", Targets: chat, Retries: &one}}
	}
	cfg.Routes = routes
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e.Config = cfg
	if e.Cluster != nil {
		e.JS = topology.Replicated(e.JS, cfg.NATS.Replicas)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := topology.EnsureAll(ctx, e.JS, cfg); err != nil {
		t.Fatal(err)
	}
	e.Client = broker.NewClient(e.NC, e.JS, router.New(cfg, router.Options{}))
	return e
}

// StartPools starts an in-process worker pool for every provider.
func (e *Env) StartPools(t testing.TB) {
	t.Helper()
	for _, p := range e.Config.Providers {
		e.StartPool(t, p.Name)
	}
}

// StartPool starts the worker pool of one provider on its own connection and
// returns a function that stops it (SIGTERM semantics: drain, hand back).
func (e *Env) StartPool(t testing.TB, name string) (stop func()) {
	t.Helper()
	p, ok := e.Config.Provider(name)
	if !ok {
		t.Fatalf("no provider %q", name)
	}
	nc, js := e.connect(t)
	completer, err := providers.New(p, providers.NewHTTPClient())
	if err != nil {
		t.Fatal(err)
	}
	pool, err := workers.NewPool(workers.PoolConfig{
		Provider: p, Config: e.Config, Completer: completer, Conn: nc, JS: js,
		Logger:      slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		BackoffBase: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		DrainTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pool.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("pool %s: %v", name, err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// Chat returns a minimal chat-completions body.
func Chat(prompt string) []byte {
	return []byte(`{"messages":[{"role":"user","content":"` + prompt + `"}]}`)
}

// StreamCount returns how many messages a stream holds on a subject filter.
func (e *Env) StreamCount(t testing.TB, stream, subject string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.JS.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return int(n)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}
