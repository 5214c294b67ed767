package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/config/live"
	"github.com/switchboard-llm/switchboard/topology"
)

// provision returns js replicated as cfg's nats.replicas says and
// provisions the streams (all also the worker and dispatcher consumers),
// logging every replica change it made.
func provision(ctx context.Context, js jetstream.JetStream, cfg *config.Config, all bool, log *slog.Logger) (jetstream.JetStream, error) {
	js = topology.Replicated(js, cfg.NATS.Replicas)
	var changes []topology.Change
	var err error
	if all {
		changes, err = topology.ProvisionAll(ctx, js, cfg)
	} else {
		changes, err = topology.Provision(ctx, js, cfg.Limits)
	}
	for _, c := range changes {
		log.Info("provisioned", "change", c.String())
	}
	return js, err
}

// givenConfig loads the --config file when one is given (before
// connecting, so a bad file fails at once), or returns nil.
func (c *commonFlags) givenConfig(fs *flag.FlagSet, stderr io.Writer) (*config.Config, error) {
	if !flagGiven(fs, "config") {
		return nil, nil
	}
	cfg, err := loadConfig(c.config)
	if err == nil {
		fmt.Fprintf(stderr, "config: file %s\n", c.config)
	}
	return cfg, err
}

// sharedConfig returns given (from givenConfig) when not nil; else the
// cluster's config, in KV sb_config; else the default file when it
// exists. It tells stderr where the config came from.
func (c *commonFlags) sharedConfig(ctx context.Context, given *config.Config, js jetstream.JetStream, stderr io.Writer) (*config.Config, error) {
	if given != nil {
		return given, nil
	}
	cfg, _, rev, err := live.Load(ctx, js)
	if err == nil {
		fmt.Fprintf(stderr, "config: kv %s/%s rev %d (the cluster's; --config FILE to use a file)\n", live.Bucket, live.Key, rev)
		return cfg, nil
	}
	if !errors.Is(err, live.ErrNoSharedConfig) {
		return nil, err
	}
	if _, statErr := os.Stat(c.config); statErr != nil {
		return nil, fmt.Errorf("%w, and no %s here (pass --config FILE)", err, c.config)
	}
	if cfg, err = loadConfig(c.config); err == nil {
		fmt.Fprintf(stderr, "config: file %s (kv %s holds none)\n", c.config, live.Bucket)
	}
	return cfg, err
}

// publishConfig shares cfg in KV sb_config (up and gateway), unless it
// holds exactly this config already.
func publishConfig(ctx context.Context, js jetstream.JetStream, cfg *config.Config, log *slog.Logger) error {
	data, err := config.Marshal(cfg)
	if err != nil {
		return err
	}
	rev, wrote, err := live.Publish(ctx, js, data)
	if err != nil {
		return err
	}
	if wrote {
		log.Info("config published", "kv", live.Bucket+"/"+live.Key, "rev", rev)
	}
	return nil
}
