// Package latency keeps each target's latency average, shared by every
// process through KV sb_latency: the least-latency strategy ranks targets
// with it, and workers feed it.
package latency

import (
	"context"
	"encoding/json"
	"math"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/kvstate"
)

// Bucket is the KV bucket holding each target's latency EWMA.
const Bucket = "sb_latency"

// TTL is how long a target's average outlives its last update: a
// model not called for that long (a one-off pinned model) loses its key,
// and every process's cache drops it with the expiry's delete marker.
const TTL = 24 * time.Hour

// latencyValue is one target's shared moving average.
type latencyValue struct {
	EWMAMS  float64   `json:"ewma_ms"`
	Samples int64     `json:"samples"`
	At      time.Time `json:"at"`
}

type pendingLatency struct {
	sum float64
	n   int
}

// Store keeps an EWMA of observed latency per provider/model, shared
// by every process through the sb_latency KV bucket. Workers Observe calls
// (cheap, in memory); a flush loop merges each process's batch into the
// shared value with a revision-checked update; readers use a watched cache.
type Store struct {
	kv    jetstream.KeyValue
	cache *kvstate.Cache
	alpha float64

	mu      sync.Mutex
	pending map[string]*pendingLatency
	done    chan struct{}
}

// Open opens the shared latency store and, when flush > 0, flushes
// observations every flush until ctx ends.
func Open(ctx context.Context, js jetstream.JetStream, rc config.Routing) (*Store, error) {
	kv, err := kvstate.Bucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:         Bucket,
		Description:    "switchboard: latency EWMA per provider/model",
		History:        1,
		TTL:            TTL,
		LimitMarkerTTL: time.Minute,
	})
	if err != nil {
		return nil, err
	}
	cache, err := kvstate.Watch(ctx, kv, "", nil)
	if err != nil {
		return nil, err
	}
	alpha := rc.EWMAAlpha
	if alpha <= 0 || alpha > 1 {
		alpha = config.DefaultEWMAAlpha
	}
	s := &Store{kv: kv, cache: cache, alpha: alpha, pending: map[string]*pendingLatency{}, done: make(chan struct{})}
	go s.loop(ctx, rc.LatencyFlush)
	return s, nil
}

func (s *Store) loop(ctx context.Context, every time.Duration) {
	defer close(s.done)
	if every <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = s.Flush(fctx)
			cancel()
			return
		case <-t.C:
			_ = s.Flush(ctx)
		}
	}
}

// Done is closed when the flush loop has stopped (after a last flush).
func (s *Store) Done() <-chan struct{} { return s.done }

func latencyKey(provider, model string) string { return kvstate.Key(provider, model) }

// Observe records one call's latency; it is shared at the next flush.
func (s *Store) Observe(provider, model string, d time.Duration) {
	if d < 0 {
		return
	}
	k := latencyKey(provider, model)
	s.mu.Lock()
	p := s.pending[k]
	if p == nil {
		p = &pendingLatency{}
		s.pending[k] = p
	}
	p.sum += float64(d) / float64(time.Millisecond)
	p.n++
	s.mu.Unlock()
}

// Flush merges pending observations into the shared averages: a batch of n
// samples with mean m moves the EWMA by 1-(1-alpha)^n toward m.
func (s *Store) Flush(ctx context.Context) error {
	s.mu.Lock()
	batch := s.pending
	s.pending = map[string]*pendingLatency{}
	s.mu.Unlock()
	var first error
	for k, p := range batch {
		mean := p.sum / float64(p.n)
		w := 1 - math.Pow(1-s.alpha, float64(p.n))
		val, rev, err := kvstate.Modify(ctx, s.kv, k, func(cur []byte, exists bool) ([]byte, bool, error) {
			v := latencyValue{EWMAMS: mean}
			if exists {
				if json.Unmarshal(cur, &v) == nil && v.Samples > 0 {
					v.EWMAMS += w * (mean - v.EWMAMS)
				} else {
					v.EWMAMS = mean
				}
			}
			v.Samples += int64(p.n)
			v.At = time.Now().UTC()
			b, err := json.Marshal(v)
			return b, true, err
		})
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		s.cache.Set(k, val, rev)
	}
	return first
}

// Latency returns the shared EWMA of provider/model; before the first flush
// anywhere it falls back to this process's pending mean.
func (s *Store) Latency(provider, model string) (time.Duration, bool) {
	k := latencyKey(provider, model)
	if e, ok := s.cache.Get(k); ok {
		var v latencyValue
		if json.Unmarshal(e.Value, &v) == nil && v.Samples > 0 {
			return time.Duration(v.EWMAMS * float64(time.Millisecond)), true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.pending[k]; p != nil && p.n > 0 {
		return time.Duration(p.sum / float64(p.n) * float64(time.Millisecond)), true
	}
	return 0, false
}
