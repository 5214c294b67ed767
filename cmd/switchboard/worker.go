package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/config/live"
	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/llm/keys"
	"github.com/switchboard-llm/switchboard/llm/providers"
	"github.com/switchboard-llm/switchboard/pricing"
	"github.com/switchboard-llm/switchboard/workers"
)

// runWorker runs the worker pool of one provider (--provider), or of every
// provider in the config (--all), against any NATS server. The pools
// follow the config's reloads (workers.Fleet): with --all a provider added
// gets a pool and one removed drains; a provider whose settings changed
// restarts its pool with them.
func runWorker(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlags("worker", stderr)
	var c commonFlags
	c.register(fs, false, false)
	provider := fs.String("provider", "", "provider to serve (a name from the config's providers)")
	all := fs.Bool("all", false, "serve every provider of the config, following its reloads")
	metricsAddr := metricsFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*provider == "") == !*all {
		return fmt.Errorf("%w: give --provider NAME or --all", errUsage)
	}
	given, err := c.givenConfig(fs, stderr)
	if err != nil {
		return err
	}
	name := "switchboard-worker-" + *provider
	if *all {
		name = "switchboard-worker-all"
	}
	nc, js, err := c.connect(ctx, fs, name)
	if err != nil {
		return err
	}
	defer nc.Close()
	defer func() { err = nc.Cause(err) }() // a lost connection is the failure, whatever noticed it
	cfg, err := c.sharedConfig(ctx, given, js, stderr)
	if err != nil {
		return err
	}
	if _, ok := cfg.Provider(*provider); !ok && !*all {
		return fmt.Errorf("%w: unknown provider %q (the config has %v)", errUsage, *provider, providerNames(cfg))
	}
	log := newLogger()
	if js, err = provision(ctx, js, cfg, false, log); err != nil {
		return err
	}
	if _, err := pricing.Load(cfg); err != nil {
		return err
	}
	// The pools drain on SIGTERM; the breakers, latency and config they
	// watch live until they have.
	a := newApp(ctx, nc, log)
	defer a.close()
	// Routes' retries/fallback/thresholds, breaker settings and the rate
	// window reload on SIGHUP or from KV sb_config (a bad config is
	// refused), and the pools read the holder themselves; a provider added,
	// removed or changed starts, drains or restarts its pool.
	holder := live.NewHolder(cfg)
	fleet := newFleet(a, nc.Conn, js, holder, nil, log)
	if !*all {
		fleet.Only(*provider)
	}
	holder.OnChange(func(_, cur *config.Config) { fleet.Apply(cur) })
	stopMetrics, err := serveMetrics(*metricsAddr, log, fleet.Collector())
	if err != nil {
		return err
	}
	defer stopMetrics()
	a.WatchConfig(js, holder, c.config)
	a.Go(func(ctx context.Context) error { return fleet.Run(ctx, cfg) })
	return a.Wait() // a connection closed for good stops the pools: exit 1
}

// newFleet keeps one pool per configured provider (newPool), each built
// with the prices of the config it is built for; localReply, when not nil,
// answers sync callers waiting in this process (workers.PoolConfig.LocalReply).
func newFleet(a *app, nc *nats.Conn, js jetstream.JetStream, holder *live.Holder, localReply func(string, []byte) bool, log *slog.Logger) *workers.Fleet {
	return workers.NewFleet(func(_ context.Context, cur *config.Config, p config.Provider) (*workers.Pool, error) {
		prices, err := pricing.Load(cur)
		if err != nil {
			return nil, err
		}
		return newPool(a, cur, p, nc, js, prices, holder.Load, localReply)
	}, log)
}

// newPool builds the worker pool of one provider with its adapter (one per
// API key, rotated) and the process's shared breakers, rate limits and
// latency store (a's policies). Costs use prices, the config's models plus
// analytics.prices_file.
// The pool reads reloads from liveConfig.
func newPool(a *app, cfg *config.Config, p config.Provider, nc *nats.Conn, js jetstream.JetStream, prices workers.Pricer, liveConfig func() *config.Config, localReply func(string, []byte) bool) (*workers.Pool, error) {
	log := a.log
	for _, env := range providers.UnsetKeyEnvs(p) {
		log.Warn("provider API key variable is not set: calls will fail with auth errors until it is", "provider", p.Name, "env", env)
	}
	hc := providers.NewHTTPClient()
	adapter := func(q config.Provider) (llm.Completer, error) {
		return keys.Build(q, func(k config.Provider) (llm.Completer, error) { return providers.New(k, hc) })
	}
	completer, err := adapter(p)
	if err != nil {
		return nil, err
	}
	res, err := a.policies(js, cfg)
	if err != nil {
		return nil, err
	}
	// Hedging (mode: hedge) calls the plan's next provider from this worker.
	var mu sync.Mutex
	others := map[string]llm.Completer{}
	res.Completers = func(name string) llm.Completer {
		mu.Lock()
		defer mu.Unlock()
		if c, ok := others[name]; ok {
			return c
		}
		q, ok := cfg.Provider(name)
		if !ok {
			return nil
		}
		c, err := adapter(q)
		if err != nil {
			log.Warn("no adapter for hedging", "provider", name, "err", err)
		}
		others[name] = c
		return c
	}
	return workers.NewPool(workers.PoolConfig{
		Provider:   p,
		Config:     cfg,
		Live:       liveConfig,
		Completer:  completer,
		Conn:       nc,
		JS:         js,
		LocalReply: localReply,
		Logger:     log,
		Pricer:     prices,
		Resilience: res,
	})
}

func providerNames(cfg *config.Config) []string {
	names := make([]string, 0, len(cfg.Providers))
	for _, p := range cfg.Providers {
		names = append(names, p.Name)
	}
	return names
}
