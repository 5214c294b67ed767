package topology_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/policy/breaker"
	"github.com/switchboard-llm/switchboard/topology"
)

// TestProvisionRaisesReplicasInPlace provisions an R1 deployment on a real
// 3-node cluster, stores jobs, results, KV entries and consumer progress,
// then provisions again with nats.replicas 3: every stream, bucket and
// consumer is R3 and every message is still there.
func TestProvisionRaisesReplicasInPlace(t *testing.T) {
	cl := natstest.StartCluster(t, 3)
	ctx := natstest.Context(t)
	_, raw := cl.Connect(t)
	cfg := &config.Config{Providers: []config.Provider{{Name: "p", Concurrency: 4, Timeout: time.Second}}}

	r1 := topology.Replicated(raw, 1)
	changes, err := topology.ProvisionAll(ctx, r1, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 5 || changes[0].From != 0 || changes[0].To != 1 {
		t.Fatalf("first provisioning changes = %v, want 5 streams created with 1 replica", changes)
	}
	if lanes, err := topology.EnsureLaneConsumers(ctx, r1, cfg.Providers[0]); err != nil {
		t.Fatal(err)
	} else if topology.AnyReplicated(lanes) {
		t.Fatal("R1 lane consumers reported as replicated")
	}
	if _, err := breaker.New(ctx, r1, config.Breaker{Cooldown: time.Second, Window: time.Second}, breaker.Options{}); err != nil {
		t.Fatal(err)
	}
	const jobs, results = 300, 200
	for i := range jobs {
		if _, err := r1.Publish(ctx, topology.Jobs("p"), []byte(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range results {
		if _, err := r1.Publish(ctx, topology.Result("b", fmt.Sprintf("j%d", i)), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	// Consumer progress: 10 jobs delivered and acked.
	cons, err := raw.Consumer(ctx, topology.StreamJobs, topology.WorkerConsumer("p"))
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(10)
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	kv, err := raw.KeyValue(ctx, "sb_breakers")
	if err != nil {
		t.Fatalf("breaker bucket: %v", err)
	}
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}

	// A process configured with the default (1) does not shrink anything,
	// and a plain js neither.
	r3 := topology.Replicated(raw, 3)
	changes, err = topology.ProvisionAll(ctx, r3, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]topology.Change{}
	for _, c := range changes {
		t.Log(c)
		got[c.Stream] = c
	}
	for _, name := range []string{topology.StreamJobs, topology.StreamResults, topology.StreamTelemetry, topology.StreamDLQ, topology.StreamSlots, "KV_sb_breakers"} {
		if c := got[name]; c.From != 1 || c.To != 3 {
			t.Errorf("change of %s = %+v, want 1 -> 3", name, c)
		}
	}
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		want := map[string]uint64{topology.StreamJobs: jobs - 10, topology.StreamResults: results, "KV_sb_breakers": 1}
		for _, name := range []string{topology.StreamJobs, topology.StreamResults, topology.StreamTelemetry, topology.StreamDLQ, "KV_sb_breakers"} {
			s, err := raw.Stream(ctx, name)
			if err != nil {
				return err
			}
			info, err := s.Info(ctx)
			if err != nil {
				return err
			}
			if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
				return fmt.Errorf("%s: config replicas %d, cluster %+v", name, info.Config.Replicas, info.Cluster)
			}
			for _, r := range info.Cluster.Replicas {
				if !r.Current {
					return fmt.Errorf("%s: replica %s not current yet", name, r.Name)
				}
			}
			if info.State.Msgs != want[name] {
				return fmt.Errorf("%s holds %d messages, want %d", name, info.State.Msgs, want[name])
			}
		}
		for _, prio := range topology.Priorities {
			c, err := raw.Consumer(ctx, topology.StreamJobs, topology.LaneConsumer("p", prio))
			if err != nil {
				return err
			}
			info, err := c.Info(ctx)
			if err != nil {
				return err
			}
			if info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
				return fmt.Errorf("consumer %s: cluster %+v, want 2 replicas beside the leader", info.Name, info.Cluster)
			}
			if prio == "normal" && (info.AckFloor.Consumer != 10 || info.NumPending != jobs-10) {
				return fmt.Errorf("consumer %s: ack floor %d, pending %d; want 10, %d", info.Name, info.AckFloor.Consumer, info.NumPending, jobs-10)
			}
		}
		return nil
	})
	// A process configured with one replica sees that the lanes are
	// replicated (its workers then confirm their acks).
	if lanes, err := topology.EnsureLaneConsumers(ctx, raw, cfg.Providers[0]); err != nil {
		t.Fatal(err)
	} else if !topology.AnyReplicated(lanes) {
		t.Fatal("R3 lane consumers not reported as replicated")
	}
	if _, err := topology.ProvisionAll(ctx, raw, cfg); err != nil {
		t.Fatal(err)
	}
	if changes, err := topology.ProvisionAll(ctx, topology.Replicated(raw, 1), cfg); err != nil || len(changes) != 0 {
		t.Fatalf("provisioning with 1 over R3 changed %v, %v; want nothing", changes, err)
	}

	if v, err := kv.Get(ctx, "k"); err != nil || string(v.Value()) != "v" {
		t.Fatalf("kv k after raising replicas: %v, %v", v, err)
	}

	// A bucket created now, through the wrapper, is R3 from the start.
	nkv, err := r3.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "sb_new"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := nkv.Status(ctx)
	if err != nil || st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas != 3 {
		t.Fatalf("new bucket status %v, %v; want 3 replicas", st, err)
	}
}

// TestReplicasOnSingleServerIsAClearError: nats.replicas 3 against one
// server names the setting.
func TestReplicasOnSingleServerIsAClearError(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Context(t)
	_, js := srv.Connect(t)
	err := topology.Ensure(ctx, topology.Replicated(js, 3), config.Limits{})
	if err == nil || !strings.Contains(err.Error(), "nats.replicas is 3") {
		t.Fatalf("err = %v, want one naming nats.replicas", err)
	}
}
