// Package testenv is the one way tests stand up a real Switchboard: an
// in-process JetStream server (internal/natstest) with the streams
// provisioned, a config (from Provider structs, or from YAML through
// config.Parse), mock providers over HTTP on loopback (llm/mock), worker
// pools with the standard adapter, a broker client, and worker
// subprocesses (the test binary re-executed: Main, StartWorker).
//
// Start and StartConfig build an Env; the pieces also stand alone for tests
// that wire part of the stack themselves: ParseConfig, StartMock,
// ServeMock, Provision, Adapter, RunPool with PoolOptions, Submit,
// AwaitResult, StreamCount and CallsPerWindow.
package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/broker"
	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/llm/mock"
	"github.com/switchboard-llm/switchboard/router"
	"github.com/switchboard-llm/switchboard/topology"
	"github.com/switchboard-llm/switchboard/workers"
)

// Provider describes one mock provider of the environment.
type Provider struct {
	Name string
	// Model is the model its route target asks for (default "<name>-model").
	Model       string
	Faults      mock.Faults
	Concurrency int
	// Timeout is the provider timeout (default 2s).
	Timeout time.Duration
	// InputPerMTok and OutputPerMTok price the model (0 = no price entry).
	InputPerMTok, OutputPerMTok float64
}

func (p Provider) model() string {
	if p.Model == "" {
		return p.Name + "-model"
	}
	return p.Model
}

// Env is a running environment.
type Env struct {
	// NATS is the server (nil on a cluster: see Cluster).
	NATS *natstest.Server
	// Cluster is the JetStream cluster of StartCluster.
	Cluster *natstest.Cluster
	// NC and JS are the environment's own connection (the Client's).
	NC *nats.Conn
	JS jetstream.JetStream
	// Config is the validated config the streams were provisioned for.
	Config *config.Config
	// Client routes with router.New(Config) and submits on NC.
	Client *broker.Client
	// Mocks are the mock providers Start started, by provider name.
	Mocks map[string]*mock.Server
	// Pools holds the pool StartPool started last, by provider name.
	Pools map[string]*workers.Pool
}

// Start builds the environment: one mock per provider and one route "chat"
// over the providers in order (retries 1; see ChatRoute) unless routes are
// given. Worker pools are not started; call StartPools or StartPool.
func Start(t testing.TB, ps []Provider, routes ...config.Route) *Env {
	t.Helper()
	e := &Env{NATS: natstest.Start(t)}
	e.NC, e.JS = e.NATS.Connect(t)
	return e.start(t, &config.Config{}, ps, routes)
}

// StartCluster is Start on a real JetStream cluster of nodes servers, with
// nats.replicas set to replicas; connections fail over between nodes.
func StartCluster(t testing.TB, nodes, replicas int, ps []Provider, routes ...config.Route) *Env {
	t.Helper()
	e := &Env{Cluster: natstest.StartCluster(t, nodes)}
	e.NC, e.JS = e.connect(t)
	return e.start(t, &config.Config{NATS: config.NATS{Replicas: replicas}}, ps, routes)
}

// StartConfig builds the environment for a config already made (usually by
// ParseConfig, its providers pointing at mocks of StartMock): the server,
// the streams for cfg and the client. Mocks stays empty.
func StartConfig(t testing.TB, cfg *config.Config) *Env {
	t.Helper()
	e := &Env{NATS: natstest.Start(t)}
	e.NC, e.JS = e.NATS.Connect(t)
	e.provision(t, cfg)
	return e
}

// ChatRoute is the route "chat" over the providers in order, with retries.
func ChatRoute(retries int, ps ...Provider) config.Route {
	r := config.Route{Name: "chat", Retries: &retries}
	for _, p := range ps {
		r.Targets = append(r.Targets, config.RouteTarget{Provider: p.Name, Model: p.model()})
	}
	return r
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

// Connect opens another connection to the environment's server or cluster,
// closed with the test (a separate process's connection).
func (e *Env) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return e.connect(t)
}

// URL is the client URL of the server, or the cluster's URLs.
func (e *Env) URL() string {
	if e.Cluster != nil {
		return e.Cluster.URLs()
	}
	return e.NATS.ClientURL()
}

func (e *Env) start(t testing.TB, cfg *config.Config, ps []Provider, routes []config.Route) *Env {
	t.Helper()
	e.Mocks = map[string]*mock.Server{}
	for _, p := range ps {
		srv := StartMock(t, mock.Options{Faults: p.Faults})
		e.Mocks[p.Name] = srv
		if p.Timeout == 0 {
			p.Timeout = 2 * time.Second
		}
		cfg.Providers = append(cfg.Providers, config.Provider{Name: p.Name, Kind: config.KindMock,
			BaseURL: srv.URL() + "/v1", Concurrency: p.Concurrency, Timeout: p.Timeout})
		if p.InputPerMTok > 0 || p.OutputPerMTok > 0 {
			cfg.Models = append(cfg.Models, config.Model{Provider: p.Name, Name: p.model(), InputPerMTok: p.InputPerMTok, OutputPerMTok: p.OutputPerMTok})
		}
	}
	if len(routes) == 0 {
		routes = []config.Route{ChatRoute(1, ps...)}
	}
	cfg.Routes = routes
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e.provision(t, cfg)
	return e
}

// provision sets the config, provisions its streams and builds the client.
func (e *Env) provision(t testing.TB, cfg *config.Config) {
	t.Helper()
	e.Config = cfg
	if e.Cluster != nil {
		e.JS = topology.Replicated(e.JS, cfg.NATS.Replicas)
	}
	Provision(t, e.JS, cfg)
	e.Client = broker.NewClient(e.NC, e.JS, router.New(cfg, router.Options{}))
}

// Provision creates or updates every stream, consumer and bucket of cfg
// (topology.EnsureAll), failing the test on an error.
func Provision(t testing.TB, js jetstream.JetStream, cfg *config.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := topology.EnsureAll(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
}

// ParseConfig loads a config from YAML through config.Parse (strict keys,
// defaults, Validate), failing the test with the YAML on an error.
func ParseConfig(t testing.TB, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	return cfg
}

// OpenResilience opens the shared breakers, rate limits and latency store
// for the environment's config on a connection of its own, as a separate
// process would, until the test ends.
func (e *Env) OpenResilience(t testing.TB) workers.Resilience {
	t.Helper()
	_, js := e.connect(t)
	res, err := workers.OpenResilience(natstest.Context(t), js, e.Config)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
