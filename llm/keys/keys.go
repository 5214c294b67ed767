// Package keys rotates a provider's API keys. A Rotator wraps one adapter
// per key (each built with its key, so keys never travel in requests or
// errors) and is itself a llm.Completer (and Streamer when the adapters
// stream): calls go round-robin over the usable keys; a key answered with
// 429 rests until its Retry-After (default 1s) while the others carry on; a
// key answered with 401/403 leaves the rotation for good. Keys are never
// logged: a key is named by its position only (key #2).
//
// The Rotator makes no call of its own: one Complete is one HTTP attempt on
// one key. When another key is usable it marks a 429's error as retryable
// without Retry-After and a 401's as retryable, so the pool's next attempt
// (its only retry loop) goes straight to the next key.
package keys

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/schemas"
)

// ErrNoKeys means the provider has no key left in rotation.
var ErrNoKeys = errors.New("no usable API key")

// DefaultRest is how long a rate-limited key rests without Retry-After.
const DefaultRest = time.Second

type key struct {
	c         llm.Completer
	s         llm.Streamer
	restUntil time.Time
	revoked   bool
}

// Rotator spreads calls over several keys of one provider.
type Rotator struct {
	provider string
	now      func() time.Time

	mu   sync.Mutex
	keys []*key
	next int
}

// New returns a Rotator over one adapter per key, in key order.
func New(provider string, adapters []llm.Completer) *Rotator {
	r := &Rotator{provider: provider, now: time.Now}
	for _, c := range adapters {
		k := &key{c: c}
		k.s, _ = c.(llm.Streamer)
		r.keys = append(r.keys, k)
	}
	return r
}

// Build makes p's adapter. With several keys (api_key_env, then
// api_key_envs; unset and duplicate values skipped: config.Provider.KeyEnvs) it builds one adapter
// per key — newAdapter gets a copy of p whose APIKeyEnv names that key's
// variable, e.g. providers.New — and wraps them in a Rotator. With one key
// or none it returns newAdapter(p): no rotation needed.
func Build(p config.Provider, newAdapter func(config.Provider) (llm.Completer, error)) (llm.Completer, error) {
	envs := p.KeyEnvs()
	if len(envs) <= 1 {
		return newAdapter(p)
	}
	adapters := make([]llm.Completer, 0, len(envs))
	for _, env := range envs {
		q := p
		q.APIKeyEnv, q.APIKeyEnvs = env, nil
		c, err := newAdapter(q)
		if err != nil {
			return nil, err
		}
		adapters = append(adapters, c)
	}
	r := New(p.Name, adapters)
	if r.keys[0].s != nil {
		return &StreamingRotator{r}, nil
	}
	return r, nil
}

// Status reports, per key position, whether it is usable now.
func (r *Rotator) Status() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	out := make([]string, len(r.keys))
	for i, k := range r.keys {
		switch {
		case k.revoked:
			out[i] = "revoked"
		case now.Before(k.restUntil):
			out[i] = "resting"
		default:
			out[i] = "ok"
		}
	}
	return out
}

// pick returns the next usable key, or when all rest, the one free soonest.
func (r *Rotator) pick() (int, *key, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	soonest := -1
	for n := 0; n < len(r.keys); n++ {
		i := (r.next + n) % len(r.keys)
		k := r.keys[i]
		if k.revoked {
			continue
		}
		if !now.Before(k.restUntil) {
			r.next = (i + 1) % len(r.keys)
			return i, k, nil
		}
		if soonest < 0 || k.restUntil.Before(r.keys[soonest].restUntil) {
			soonest = i
		}
	}
	if soonest < 0 {
		return -1, nil, ErrNoKeys
	}
	return soonest, r.keys[soonest], nil
}

// usableBesides reports whether a key other than i can take a call now.
func (r *Rotator) usableBesides(i int) bool {
	now := r.now()
	for j, k := range r.keys {
		if j != i && !k.revoked && !now.Before(k.restUntil) {
			return true
		}
	}
	return false
}

// observe updates key i after a call and rewrites err for the pool.
func (r *Rotator) observe(i int, err error) error {
	pe, ok := llm.AsProviderError(err)
	if !ok {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := r.keys[i]
	switch pe.Type {
	case schemas.ErrRateLimited:
		rest := pe.RetryAfter
		if rest <= 0 {
			rest = DefaultRest
		}
		k.restUntil = r.now().Add(rest)
		if r.usableBesides(i) {
			cp := *pe
			cp.RetryAfter, cp.Retryable = 0, true
			cp.Message = "key #" + strconv.Itoa(i+1) + " rate limited, rotating: " + pe.Message
			return &cp
		}
	case schemas.ErrAuth:
		k.revoked = true
		if r.usableBesides(i) {
			cp := *pe
			cp.Retryable = true
			cp.Message = "key #" + strconv.Itoa(i+1) + " rejected and taken out of rotation: " + pe.Message
			return &cp
		}
	}
	return err
}

// Complete calls the provider with the next usable key.
func (r *Rotator) Complete(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	i, k, err := r.pick()
	if err != nil {
		return nil, &llm.ProviderError{Provider: r.provider, Type: schemas.ErrAuth, Message: "every API key was rejected (401/403)"}
	}
	resp, err := k.c.Complete(ctx, req)
	return resp, r.observe(i, err)
}

// StreamingRotator is a Rotator over adapters that stream.
type StreamingRotator struct{ *Rotator }

// Stream streams with the next usable key.
func (r *StreamingRotator) Stream(ctx context.Context, req *llm.Request, emit func(json.RawMessage) error) (*llm.Response, error) {
	i, k, err := r.pick()
	if err != nil {
		return nil, &llm.ProviderError{Provider: r.provider, Type: schemas.ErrAuth, Message: "every API key was rejected (401/403)"}
	}
	if k.s == nil {
		resp, err := k.c.Complete(ctx, req)
		return resp, r.observe(i, err)
	}
	resp, err := k.s.Stream(ctx, req, emit)
	return resp, r.observe(i, err)
}

var (
	_ llm.Completer = (*Rotator)(nil)
	_ llm.Streamer  = (*StreamingRotator)(nil)
)
