// Package breaker implements circuit breakers per provider/model target,
// shared by every worker process through the JetStream KV bucket
// sb_breakers. A breaker opens after N consecutive failures or when the
// error rate within a window crosses a threshold; while open, calls are
// refused (the pool falls back without calling); after a cooldown it lets a
// limited number of probes through (half-open) and closes on a probe's
// success or re-opens on its failure.
//
// State changes use revision-checked KV updates, so concurrent workers never
// lose each other's counts; reads come from a watched in-memory cache, so
// the hot path (Allow on a closed breaker, Record of a success while
// healthy) makes no KV round trip.
package breaker

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/kvstate"
)

// Bucket is the KV bucket holding breaker state.
const Bucket = "sb_breakers"

// TTL returns how long a breaker's state outlives its last change under
// cfg: at least an hour and four times its cooldown plus window, so only a
// breaker long idle (a one-off pinned model) expires — back to closed, which
// it would be by then anyway. Every process's cache drops it with the
// expiry's delete marker.
func TTL(cfg config.Breaker) time.Duration {
	return max(time.Hour, 4*(cfg.Cooldown+cfg.Window))
}

// Breaker states.
const (
	Closed   = "closed"
	Open     = "open"
	HalfOpen = "half_open"
)

// State is one target's shared breaker state (the KV value).
type State struct {
	State       string    `json:"state"`
	Consecutive int       `json:"consecutive"`
	WindowStart time.Time `json:"window_start"`
	Calls       int       `json:"calls"`
	Failures    int       `json:"failures"`
	OpenedAt    time.Time `json:"opened_at,omitempty"`
	Probes      int       `json:"probes,omitempty"`
	ProbeAt     time.Time `json:"probe_at,omitempty"`
}

// Decision is the answer of Allow.
type Decision struct {
	// Allowed says the call may be made.
	Allowed bool
	// Probe marks a half-open trial call.
	Probe bool
	// RetryAt is when a refused target may be tried again.
	RetryAt time.Time
}

// Set holds the breakers of every target.
type Set struct {
	kv    jetstream.KeyValue
	cache *kvstate.Cache
	cfg   atomic.Pointer[config.Breaker]
	now   func() time.Time

	mu        sync.Mutex
	pendingOK map[string]int // successes not yet counted in KV

	// decoded holds each key's state decoded at its cached revision, so
	// the two reads of every call (Allow, Record) do not parse JSON.
	decodedMu sync.Mutex
	decoded   map[string]decodedState
	done      chan struct{}
	onChange  func(provider, model, from, to string)
}

// Options tune a Set.
type Options struct {
	// FlushEvery is how often counted successes are pushed to KV (they are
	// also pushed with every failure); default 1s.
	FlushEvery time.Duration
	// Now is the clock (tests).
	Now func() time.Time
	// OnChange is called when this process moves a breaker to a new state
	// (for logs and metrics).
	OnChange func(provider, model, from, to string)
}

// New opens the shared breakers with cfg until ctx ends.
func New(ctx context.Context, js jetstream.JetStream, cfg config.Breaker, opts Options) (*Set, error) {
	kv, err := kvstate.Bucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:         Bucket,
		Description:    "switchboard: circuit breaker state per provider/model",
		History:        1,
		TTL:            TTL(cfg),
		LimitMarkerTTL: time.Minute,
	})
	if err != nil {
		return nil, err
	}
	cache, err := kvstate.Watch(ctx, kv, "", nil)
	if err != nil {
		return nil, err
	}
	s := &Set{kv: kv, cache: cache, now: opts.Now, pendingOK: map[string]int{}, done: make(chan struct{}), onChange: opts.OnChange}
	if s.now == nil {
		s.now = time.Now
	}
	s.SetConfig(cfg)
	every := opts.FlushEvery
	if every <= 0 {
		every = time.Second
	}
	go s.loop(ctx, every)
	return s, nil
}

// SetConfig swaps the breaker settings (config reload).
func (s *Set) SetConfig(cfg config.Breaker) { s.cfg.Store(&cfg) }

// Done is closed once the background flush loop has stopped (after a last
// flush of the successes counted since the previous one).
func (s *Set) Done() <-chan struct{} { return s.done }

func (s *Set) loop(ctx context.Context, every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// Successes not yet pushed would otherwise be lost, and the
			// error rate other processes see would read high.
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			s.flush(fctx)
			cancel()
			return
		case <-t.C:
			s.flush(ctx)
		}
	}
}

func (s *Set) flush(ctx context.Context) {
	s.mu.Lock()
	batch := s.pendingOK
	s.pendingOK = map[string]int{}
	s.mu.Unlock()
	for k, n := range batch {
		s.modify(ctx, k, func(st *State) bool {
			st.Calls += n
			return true
		})
	}
}

func key(provider, model string) string { return kvstate.Key(provider, model) }

// Get returns the cached state of a target (closed when never recorded).
func (s *Set) Get(provider, model string) State {
	k := key(provider, model)
	e, ok := s.cache.Get(k)
	if !ok {
		return State{State: Closed}
	}
	s.decodedMu.Lock()
	d, ok := s.decoded[k]
	s.decodedMu.Unlock()
	if ok && d.rev == e.Revision {
		return d.st
	}
	var st State
	if err := json.Unmarshal(e.Value, &st); err != nil || st.State == "" {
		st = State{State: Closed}
	}
	s.decodedMu.Lock()
	if s.decoded == nil || len(s.decoded) >= maxDecoded {
		s.decoded = map[string]decodedState{}
	}
	s.decoded[k] = decodedState{rev: e.Revision, st: st}
	s.decodedMu.Unlock()
	return st
}

// decodedState is a key's State decoded from revision rev.
type decodedState struct {
	rev uint64
	st  State
}

// maxDecoded bounds Set.decoded (one entry per target in use).
const maxDecoded = 4096

// Open reports whether the target's breaker is open and still cooling down
// (router.Health): routing puts such targets last. Once the cooldown is over
// it reports false so the target gets traffic again and the pool's Allow
// hands out probes.
func (s *Set) Open(provider, model string) bool {
	cfg := s.cfg.Load()
	if cfg.Disabled {
		return false
	}
	st := s.Get(provider, model)
	switch st.State {
	case Open:
		return s.now().Before(st.OpenedAt.Add(cfg.Cooldown))
	case HalfOpen:
		return st.Probes >= max(cfg.Probes, 1) && s.now().Before(st.ProbeAt.Add(cfg.Cooldown))
	}
	return false
}

// Allow says whether a call to the target may be made now. A closed breaker
// answers from the cache; an open one past its cooldown turns half-open and
// grants up to Probes concurrent probes through a KV update.
func (s *Set) Allow(ctx context.Context, provider, model string) (Decision, error) {
	cfg := s.cfg.Load()
	if cfg.Disabled {
		return Decision{Allowed: true}, nil
	}
	now := s.now()
	st := s.Get(provider, model)
	switch st.State {
	case Closed:
		return Decision{Allowed: true}, nil
	case Open:
		if until := st.OpenedAt.Add(cfg.Cooldown); now.Before(until) {
			return Decision{RetryAt: until}, nil
		}
	case HalfOpen:
		if st.Probes >= max(cfg.Probes, 1) && now.Before(st.ProbeAt.Add(cfg.Cooldown)) {
			return Decision{RetryAt: st.ProbeAt.Add(cfg.Cooldown)}, nil
		}
	}
	var d Decision
	_, err := s.modify(ctx, key(provider, model), func(st *State) bool {
		d = Decision{}
		now := s.now()
		switch st.State {
		case Closed:
			d.Allowed = true
			return false
		case Open:
			if until := st.OpenedAt.Add(cfg.Cooldown); now.Before(until) {
				d.RetryAt = until
				return false
			}
			st.State, st.Probes = HalfOpen, 0
		}
		// Half-open: hand out a probe unless all are taken; a probe whose
		// outcome never came back (crashed worker) expires after a cooldown.
		if st.Probes >= max(cfg.Probes, 1) && now.Before(st.ProbeAt.Add(cfg.Cooldown)) {
			d.RetryAt = st.ProbeAt.Add(cfg.Cooldown)
			return false
		}
		if st.Probes >= max(cfg.Probes, 1) {
			st.Probes = 0
		}
		st.Probes++
		st.ProbeAt = now
		d.Allowed, d.Probe = true, true
		return true
	})
	if err != nil {
		// Shared state unreachable: fail open, the call itself will tell.
		return Decision{Allowed: true}, err
	}
	return d, nil
}

// Outcome classes of a call for the breaker.
const (
	success = iota
	failure
	neutral
)

func (s *Set) classify(errType string, cfg *config.Breaker) int {
	if errType == "" {
		return success
	}
	for _, t := range cfg.TripOn {
		if t == errType {
			return failure
		}
	}
	return neutral
}

// Record counts the outcome of a call: errType "" is a success, a type in
// trip_on a failure, anything else (rate_limited, invalid_request, ...)
// neither. Successes on a healthy breaker are counted locally and pushed in
// batches; everything else updates the shared state at once.
func (s *Set) Record(ctx context.Context, provider, model, errType string) error {
	cfg := s.cfg.Load()
	if cfg.Disabled {
		return nil
	}
	k := key(provider, model)
	class := s.classify(errType, cfg)
	st := s.Get(provider, model)
	switch {
	case class == success && st.State == Closed && st.Consecutive == 0:
		s.mu.Lock()
		s.pendingOK[k]++
		s.mu.Unlock()
		return nil
	case class == neutral && st.State != HalfOpen:
		return nil
	}
	s.mu.Lock()
	pending := s.pendingOK[k]
	delete(s.pendingOK, k)
	s.mu.Unlock()
	var from, to string
	_, err := s.modify(ctx, k, func(st *State) bool {
		from = st.State
		now := s.now()
		st.Calls += pending
		switch class {
		case neutral:
			if st.State == HalfOpen && st.Probes > 0 {
				st.Probes--
			}
		case success:
			st.Calls++
			st.Consecutive = 0
			if st.State == HalfOpen {
				*st = State{State: Closed, WindowStart: now}
			}
		case failure:
			st.Calls++
			st.Failures++
			st.Consecutive++
			switch st.State {
			case HalfOpen:
				st.State, st.OpenedAt, st.Probes = Open, now, 0
			case Closed:
				rateTrip := cfg.ErrorRate > 0 && st.Calls >= max(cfg.MinRequests, 1) &&
					float64(st.Failures)/float64(st.Calls) >= cfg.ErrorRate
				if (cfg.Failures > 0 && st.Consecutive >= cfg.Failures) || rateTrip {
					st.State, st.OpenedAt, st.Probes = Open, now, 0
				}
			}
		}
		to = st.State
		return true
	})
	if err == nil && from != to && s.onChange != nil {
		s.onChange(provider, model, from, to)
	}
	return err
}

// modify applies f to the target's state with a revision-checked update,
// rolling the error-rate window first, and caches the result.
func (s *Set) modify(ctx context.Context, k string, f func(*State) bool) (State, error) {
	cfg := s.cfg.Load()
	var out State
	val, rev, err := kvstate.Modify(ctx, s.kv, k, func(cur []byte, exists bool) ([]byte, bool, error) {
		st := State{State: Closed}
		if exists {
			if err := json.Unmarshal(cur, &st); err != nil || st.State == "" {
				st = State{State: Closed}
			}
		}
		now := s.now()
		if st.WindowStart.IsZero() || (cfg.Window > 0 && now.Sub(st.WindowStart) >= cfg.Window) {
			st.WindowStart, st.Calls, st.Failures = now, 0, 0
		}
		write := f(&st)
		out = st
		if !write {
			return nil, false, nil
		}
		b, err := json.Marshal(st)
		return b, true, err
	})
	if err != nil {
		return out, fmt.Errorf("breaker %s: %w", k, err)
	}
	if val != nil && rev > 0 {
		s.cache.Set(k, val, rev)
	}
	return out, nil
}
