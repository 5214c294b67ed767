package topology_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
	"github.com/switchboard-llm/switchboard/policy/breaker"
	"github.com/switchboard-llm/switchboard/policy/budget"
	"github.com/switchboard-llm/switchboard/policy/latency"
	"github.com/switchboard-llm/switchboard/topology"
)

// TestEveryBucketAndStreamIsBounded provisions over streams and buckets made
// the old, unbounded way and reads the configs back from the server.
func TestEveryBucketAndStreamIsBounded(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Context(t)
	_, js := srv.Connect(t)
	// As provisioned before: a DLQ and per-model buckets without limits,
	// RESULTS bounded by age alone (holding a Result, which must stay).
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: topology.StreamDLQ, Subjects: []string{"llm.dlq.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: topology.StreamResults, Subjects: []string{topology.ResultsAll}, Storage: jetstream.FileStorage, MaxAge: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, topology.Result("", "0193a4c2-7d1e-7f00-8000-000000000001"), []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{latency.Bucket, breaker.Bucket} {
		if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: b, History: 1}); err != nil {
			t.Fatal(err)
		}
	}

	cfg := &config.Config{Limits: config.Limits{DLQMaxAge: 48 * time.Hour, DLQMaxBytes: 64 << 20, ResultsMaxMsgs: 50_000}}
	if err := topology.Ensure(ctx, js, cfg.Limits); err != nil {
		t.Fatal(err)
	}
	bc := config.Breaker{Cooldown: 15 * time.Second, Window: 30 * time.Second}
	if _, err := breaker.New(ctx, js, bc, breaker.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := latency.Open(ctx, js, config.Routing{}); err != nil {
		t.Fatal(err)
	}
	if _, err := budget.Open(ctx, js, budget.Options{}); err != nil {
		t.Fatal(err)
	}

	info := func(name string) jetstream.StreamConfig {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		i, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return i.Config
	}
	if c := info(topology.StreamDLQ); c.MaxAge != 48*time.Hour || c.MaxBytes != 64<<20 || c.Discard != jetstream.DiscardOld {
		t.Errorf("DLQ: max_age %s max_bytes %d discard %v, want 48h, 64 MiB, old", c.MaxAge, c.MaxBytes, c.Discard)
	}
	if c := info(topology.StreamJobs); c.MaxMsgs <= 0 || c.MaxBytes <= 0 {
		t.Errorf("JOBS: max_msgs %d max_bytes %d", c.MaxMsgs, c.MaxBytes)
	}
	for _, name := range []string{topology.StreamResults, topology.StreamTelemetry} {
		if c := info(name); c.MaxAge <= 0 {
			t.Errorf("%s: no max age", name)
		}
	}
	// RESULTS is also bounded by count (the server keeps an index entry
	// per stored Result in memory) and bytes, dropping the oldest; the
	// Result stored before the update is still there.
	if c := info(topology.StreamResults); c.MaxMsgs != 50_000 || c.MaxBytes != config.DefaultResultsMaxBytes || c.Discard != jetstream.DiscardOld {
		t.Errorf("RESULTS: max_msgs %d max_bytes %d discard %v, want 50000, %d, old", c.MaxMsgs, c.MaxBytes, c.Discard, int64(config.DefaultResultsMaxBytes))
	}
	if s, err := js.Stream(ctx, topology.StreamResults); err != nil {
		t.Fatal(err)
	} else if _, err := s.GetLastMsgForSubject(ctx, topology.ResultByID("0193a4c2-7d1e-7f00-8000-000000000001")); err != nil {
		t.Errorf("the Result stored before the update: %v", err)
	}
	for _, c := range []struct {
		bucket string
		ttl    time.Duration
	}{{"KV_" + latency.Bucket, latency.TTL}, {"KV_" + breaker.Bucket, time.Hour}} {
		if got := info(c.bucket); got.MaxAge != c.ttl || got.SubjectDeleteMarkerTTL <= 0 || !got.AllowMsgTTL {
			t.Errorf("%s: max_age %s (want %s), delete markers %s, per-key TTL %v", c.bucket, got.MaxAge, c.ttl, got.SubjectDeleteMarkerTTL, got.AllowMsgTTL)
		}
	}
	// sb_spend has per-key TTLs (markers and counters each their own).
	if got := info("KV_" + budget.Bucket); !got.AllowMsgTTL || got.SubjectDeleteMarkerTTL <= 0 {
		t.Errorf("sb_spend: per-key TTL %v, delete markers %s", got.AllowMsgTTL, got.SubjectDeleteMarkerTTL)
	}
	if d := budget.MarkerTTL(24 * time.Hour); d != 48*time.Hour {
		t.Errorf("marker TTL for 24h results = %s, want 48h", d)
	}
}
