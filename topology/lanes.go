package topology

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/schemas"
)

// Priorities are the priority lanes, high first. Jobs of priority high and
// low sit on llm.jobs.<provider>.high|.low, normal on llm.jobs.<provider>;
// each lane has its own durable consumer.
var Priorities = []string{schemas.PriorityHigh, schemas.PriorityNormal, schemas.PriorityLow}

// LaneConsumer is the durable consumer of provider's lane for priority.
func LaneConsumer(provider, priority string) string {
	switch priority {
	case schemas.PriorityHigh, schemas.PriorityLow:
		return WorkerConsumer(provider) + "-" + priority
	}
	return WorkerConsumer(provider)
}

// LaneConsumerConfig is the durable pull consumer of one lane: the provider's
// worker consumer with the lane's name and subject. Each lane's
// MaxAckPending is the provider's concurrency: it bounds the jobs pulled
// ahead; calls are capped over all lanes and processes by workers/lanes.Slots.
func LaneConsumerConfig(p config.Provider, priority string) jetstream.ConsumerConfig {
	c := WorkerConsumerConfig(p)
	c.Durable = LaneConsumer(p.Name, priority)
	c.FilterSubject = JobsLane(p.Name, priority)
	if priority != schemas.PriorityNormal {
		c.Description += " (" + priority + " priority lane)"
	}
	return c
}

// EnsureLaneConsumers creates or updates the three lane consumers of p.
func EnsureLaneConsumers(ctx context.Context, js jetstream.JetStream, p config.Provider) ([]jetstream.Consumer, error) {
	out := make([]jetstream.Consumer, 0, len(Priorities))
	for _, prio := range Priorities {
		c, err := js.CreateOrUpdateConsumer(ctx, StreamJobs, LaneConsumerConfig(p, prio))
		if err != nil {
			return nil, fmt.Errorf("provision consumer %s: %w", LaneConsumer(p.Name, prio), err)
		}
		out = append(out, c)
	}
	return out, nil
}

// AnyReplicated reports whether any of cons has more than one replica, as
// its last known info says (a consumer follows its stream's replica count
// unless it sets its own).
func AnyReplicated(cons []jetstream.Consumer) bool {
	for _, c := range cons {
		ci := c.CachedInfo()
		if ci == nil {
			continue
		}
		if ci.Config.Replicas > 1 || (ci.Cluster != nil && len(ci.Cluster.Replicas) > 0) {
			return true
		}
	}
	return false
}
