package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/broker/config"
	"github.com/switchboard-llm/switchboard/broker/streams"
	"github.com/switchboard-llm/switchboard/workers"
	"github.com/switchboard-llm/switchboard/workers/providers"
)

// runWorker runs the worker pool of one provider against any NATS server.
func runWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("worker", stderr)
	var c commonFlags
	c.register(fs, false, false)
	provider := fs.String("provider", "", "provider to serve (a name from the config's providers)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *provider == "" {
		return fmt.Errorf("%w: --provider is required", errUsage)
	}
	cfg, err := loadConfig(c.config)
	if err != nil {
		return err
	}
	p, ok := cfg.Provider(*provider)
	if !ok {
		return fmt.Errorf("%w: unknown provider %q (the config has %v)", errUsage, *provider, providerNames(cfg))
	}
	nc, js, err := connectNATS(ctx, c.natsURL, "switchboard-worker-"+p.Name)
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := streams.Ensure(ctx, js, cfg.Limits); err != nil {
		return err
	}
	log := newLogger()
	pool, err := newPool(cfg, p, nc, js, log)
	if err != nil {
		return err
	}
	log.Info("worker pool started", "provider", p.Name, "kind", p.Kind, "concurrency", p.Concurrency)
	return pool.Run(ctx)
}

// newPool builds the worker pool of one provider with its adapter.
func newPool(cfg *config.Config, p config.Provider, nc *nats.Conn, js jetstream.JetStream, log *slog.Logger) (*workers.Pool, error) {
	completer, err := providers.New(p, providers.NewHTTPClient())
	if err != nil {
		return nil, err
	}
	return workers.NewPool(workers.PoolConfig{
		Provider:  p,
		Config:    cfg,
		Completer: completer,
		Conn:      nc,
		JS:        js,
		Logger:    log.With("provider", p.Name),
	})
}

func providerNames(cfg *config.Config) []string {
	names := make([]string, 0, len(cfg.Providers))
	for _, p := range cfg.Providers {
		names = append(names, p.Name)
	}
	return names
}
