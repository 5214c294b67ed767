package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

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
	return loadConfig(c.config)
}

// sharedConfig returns the cluster's config, in KV sb_config. A --config
// file (given, from givenConfig) must be the same config: one that differs
// is an error naming the first difference (push it to change the
// cluster's). When the cluster holds none, it is given, else the default
// file when it exists. It tells stderr where the config came from.
func (c *commonFlags) sharedConfig(ctx context.Context, given *config.Config, js jetstream.JetStream, stderr io.Writer) (*config.Config, error) {
	cfg, _, rev, err := live.Load(ctx, js)
	kv := fmt.Sprintf("kv %s/%s rev %d", live.Bucket, live.Key, rev)
	switch {
	case err == nil && given == nil:
		fmt.Fprintf(stderr, "config: %s (the cluster's)\n", kv)
		return cfg, nil
	case err == nil:
		if d := config.Diff(given, cfg); d != "" {
			return nil, fmt.Errorf("--config %s differs from the cluster's config (%s): %s (here: the file, there: the cluster); "+
				"run `switchboard config push %s` to change it, or omit --config", c.config, kv, d, c.config)
		}
		fmt.Fprintf(stderr, "config: %s (the same as --config %s)\n", kv, c.config)
		return cfg, nil
	case !errors.Is(err, live.ErrNoSharedConfig):
		return nil, err
	case given != nil:
		fmt.Fprintf(stderr, "config: file %s (kv %s holds none; `switchboard config push %s` shares it)\n", c.config, live.Bucket, c.config)
		return given, nil
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

// publishOnSIGHUP makes SIGHUP reread the config file at path ("" = none)
// and publish it to KV sb_config (up and gateway, the processes that
// publish their file), so the whole cluster follows it; a.WatchConfig
// applies it here like any version stored there.
func publishOnSIGHUP(a *app, js jetstream.JetStream, holder *live.Holder, path string) {
	if path == "" {
		return
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP) // now, so that a SIGHUP right after start is not fatal
	a.Background("config file watch", func(ctx context.Context) error {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-ch:
			}
			cur, err := holder.ReloadFile(path)
			if err != nil {
				a.log.Error("config reload", "source", path, "err", err)
				continue
			}
			if err := publishConfig(ctx, js, cur, a.log); err != nil {
				a.log.Error("config reloaded here but not shared with the cluster", "source", path, "err", err)
				continue
			}
			a.log.Info("config reloaded", "source", path)
		}
	})
}
