package main

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/broker/config"
	"github.com/switchboard-llm/switchboard/broker/streams"
)

// provision returns js replicated as cfg's nats.replicas says and
// provisions the streams (all also the worker and dispatcher consumers),
// logging every replica change it made.
func provision(ctx context.Context, js jetstream.JetStream, cfg *config.Config, all bool, log *slog.Logger) (jetstream.JetStream, error) {
	js = streams.Replicated(js, cfg.NATS.Replicas)
	var changes []streams.Change
	var err error
	if all {
		changes, err = streams.ProvisionAll(ctx, js, cfg)
	} else {
		changes, err = streams.Provision(ctx, js, cfg.Limits)
	}
	for _, c := range changes {
		log.Info("provisioned", "change", c.String())
	}
	return js, err
}
