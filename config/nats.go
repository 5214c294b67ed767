package config

// NATS configures how Switchboard provisions JetStream.
type NATS struct {
	// Replicas is the replica count of every stream (JOBS, RESULTS,
	// TELEMETRY, DLQ), every sb_* KV bucket and every durable consumer
	// (consumers follow their stream). 1 on a single server (the embedded
	// one); 3 recommended on a cluster of 3 or more nodes. Provisioning
	// raises the replicas of existing streams and buckets in place and
	// never lowers them.
	Replicas int `yaml:"replicas"`
}

// DefaultReplicas is nats.replicas when unset.
const DefaultReplicas = 1

// MaxReplicas is the largest replica count JetStream allows.
const MaxReplicas = 5

func (c *Config) applyNATSDefaults() {
	setIfZero(&c.NATS.Replicas, DefaultReplicas)
}

func (c *Config) validateNATS(bad func(path, format string, args ...any)) {
	if r := c.NATS.Replicas; r < 0 || r > MaxReplicas {
		bad("nats.replicas", "must be between 1 and %d, got %d", MaxReplicas, r)
	}
}
