package breaker

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/natstest"
)

// The hot path side by side: Allow on a closed breaker (watched cache) vs
// the KV round trip it avoids. Compare ns/op of the two in one run:
//
//	go test -run '^$' -bench . ./policy/breaker/
func BenchmarkHotPath(b *testing.B) {
	srv := natstest.Start(b)
	_, js := srv.Connect(b)
	ctx := context.Background()
	s, err := New(ctx, js, config.Breaker{Failures: 5, Cooldown: time.Second, Probes: 1, TripOn: config.DefaultTripOn}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Record(ctx, "p", "m", "server_error"); err != nil {
		b.Fatal(err)
	}
	b.Run("AllowCached", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if d, _ := s.Allow(ctx, "p", "m"); !d.Allowed {
				b.Fatal("refused")
			}
		}
	})
	b.Run("RecordSuccessHealthy", func(b *testing.B) {
		_ = s.Record(ctx, "p", "m2", "")
		for i := 0; i < b.N; i++ {
			_ = s.Record(ctx, "p", "m2", "")
		}
	})
	b.Run("KVGetRoundTrip", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := s.kv.Get(ctx, "p.m"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
