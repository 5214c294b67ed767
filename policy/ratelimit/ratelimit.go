// Package ratelimit enforces each provider's rpm and tpm across every worker
// process together. Usage is counted in fixed windows (default one minute,
// aligned on the Unix epoch) in the JetStream KV bucket sb_ratelimits, one
// key per provider and window, incremented with revision-checked updates so
// concurrent processes never exceed the limit together.
//
// A job over the limit is not failed: Reserve returns the time the window
// resets and the pool NAKs the job with that delay (it waits in the queue),
// unless its deadline forbids waiting, in which case it falls back.
package ratelimit

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/internal/kvstate"
)

// Bucket is the KV bucket holding the usage counters.
const Bucket = "sb_ratelimits"

// usage is the value of one provider's window.
type usage struct {
	Requests int `json:"requests"`
	Tokens   int `json:"tokens"`
}

// Reservation is the answer of Reserve.
type Reservation struct {
	// OK says the call may go ahead; its request and tokens are counted.
	OK bool
	// RetryAt is when the provider's window resets (when !OK).
	RetryAt time.Time
	// Window identifies the counting window (for Commit).
	Window int64
	// CallBy is the end of that window (when OK): the call must start
	// before it, or it would be counted in a window that is already over
	// while it lands in the next one.
	CallBy time.Time
	// Tokens is how many tokens were reserved.
	Tokens int
}

// Limiter counts provider usage in shared fixed windows.
type Limiter struct {
	kv     jetstream.KeyValue
	window atomic.Int64 // time.Duration
	now    func() time.Time
}

// Options tune a Limiter; every field is optional.
type Options struct {
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// New opens the shared limiter with the given config.
func New(ctx context.Context, js jetstream.JetStream, rl config.RateLimits, opts Options) (*Limiter, error) {
	w := rl.Window
	if w <= 0 {
		w = config.DefaultRateWindow
	}
	kv, err := kvstate.Bucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "switchboard: provider rpm/tpm usage per window",
		History:     1,
		TTL:         max(10*time.Minute, 3*w),
	})
	if err != nil {
		return nil, err
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	l := &Limiter{kv: kv, now: now}
	l.SetConfig(rl)
	return l, nil
}

// SetConfig swaps the window length (config reload).
func (l *Limiter) SetConfig(rl config.RateLimits) {
	w := rl.Window
	if w <= 0 {
		w = config.DefaultRateWindow
	}
	l.window.Store(int64(w))
}

// Limits returns the per-window request and token caps of p (0 = none).
func (l *Limiter) Limits(p config.Provider) (requests, tokens int) {
	w := time.Duration(l.window.Load())
	scale := func(perMin int) int {
		if perMin <= 0 {
			return 0
		}
		return max(1, int(math.Floor(float64(perMin)*float64(w)/float64(time.Minute))))
	}
	return scale(p.RPM), scale(p.TPM)
}

func (l *Limiter) windowOf(t time.Time) (idx int64, end time.Time) {
	w := l.window.Load()
	idx = t.UnixNano() / w
	return idx, time.Unix(0, (idx+1)*w)
}

func key(provider string, idx int64) string {
	return kvstate.Key(provider, strconv.FormatInt(idx, 10))
}

// Reserve counts one request of about tokens tokens against p's rpm and tpm
// in the current window, or reports when the window resets. A provider
// without rpm/tpm always gets OK without a KV round trip. A single request
// larger than the whole tpm window passes when the window is otherwise
// empty (it could never pass otherwise).
//
// A reservation is only granted when its count was stored before its
// window ended: under load the KV round trips (and conflict retries) can
// outlast the window, and a count written into a window that is over would
// let the call join the next window's full quota. Such a late count is
// given back and the request is counted in the current window instead.
func (l *Limiter) Reserve(ctx context.Context, p config.Provider, tokens int) (Reservation, error) {
	maxReq, maxTok := l.Limits(p)
	if maxReq == 0 && maxTok == 0 {
		return Reservation{OK: true}, nil
	}
	for {
		res, err := l.reserveIn(ctx, p, tokens, maxReq, maxTok)
		if err != nil {
			return Reservation{}, fmt.Errorf("rate limit %s: %w", p.Name, err)
		}
		if !res.OK || l.now().Before(res.CallBy) {
			return res, nil
		}
		// Counted too late: the window ended during the update.
		if err := l.release(ctx, p.Name, res); err != nil {
			return Reservation{}, fmt.Errorf("rate limit %s: %w", p.Name, err)
		}
	}
}

// reserveIn counts one request in the window holding now.
func (l *Limiter) reserveIn(ctx context.Context, p config.Provider, tokens, maxReq, maxTok int) (Reservation, error) {
	idx, end := l.windowOf(l.now())
	res := Reservation{Window: idx, Tokens: tokens}
	_, _, err := kvstate.Modify(ctx, l.kv, key(p.Name, idx), func(cur []byte, exists bool) ([]byte, bool, error) {
		var u usage
		if exists {
			_ = json.Unmarshal(cur, &u)
		}
		res.OK = true
		if maxReq > 0 && u.Requests+1 > maxReq {
			res.OK = false
		}
		if maxTok > 0 && u.Tokens > 0 && u.Tokens+tokens > maxTok {
			res.OK = false
		}
		if !res.OK {
			res.RetryAt = end
			return nil, false, nil
		}
		u.Requests++
		u.Tokens += tokens
		b, err := json.Marshal(u)
		return b, true, err
	})
	if err != nil {
		return Reservation{}, err
	}
	if res.OK {
		res.CallBy = end
	}
	return res, nil
}

// release takes a granted reservation's request and tokens back out of its
// window's count (the call was never made).
func (l *Limiter) release(ctx context.Context, provider string, res Reservation) error {
	_, _, err := kvstate.Modify(ctx, l.kv, key(provider, res.Window), func(cur []byte, exists bool) ([]byte, bool, error) {
		if !exists {
			return nil, false, nil
		}
		var u usage
		_ = json.Unmarshal(cur, &u)
		u.Requests = max(0, u.Requests-1)
		u.Tokens = max(0, u.Tokens-res.Tokens)
		b, err := json.Marshal(u)
		return b, true, err
	})
	return err
}

// Release gives back a granted reservation whose call was not made (e.g. it
// could not start before the reservation's window ended).
func (l *Limiter) Release(ctx context.Context, p config.Provider, res Reservation) error {
	if !res.OK || res.CallBy.IsZero() {
		return nil
	}
	if err := l.release(ctx, p.Name, res); err != nil {
		return fmt.Errorf("rate limit %s: %w", p.Name, err)
	}
	return nil
}

// Commit corrects a reservation's tokens to the usage the provider
// reported, so tpm counts real tokens. It is a no-op without tpm.
func (l *Limiter) Commit(ctx context.Context, p config.Provider, res Reservation, actualTokens int) error {
	if _, maxTok := l.Limits(p); maxTok == 0 || !res.OK || actualTokens == res.Tokens {
		return nil
	}
	delta := actualTokens - res.Tokens
	_, _, err := kvstate.Modify(ctx, l.kv, key(p.Name, res.Window), func(cur []byte, exists bool) ([]byte, bool, error) {
		var u usage
		if exists {
			_ = json.Unmarshal(cur, &u)
		}
		u.Tokens = max(0, u.Tokens+delta)
		b, err := json.Marshal(u)
		return b, true, err
	})
	return err
}

// Usage returns p's counted requests and tokens in the window holding t.
func (l *Limiter) Usage(ctx context.Context, provider string, t time.Time) (requests, tokens int, err error) {
	idx, _ := l.windowOf(t)
	e, err := l.kv.Get(ctx, key(provider, idx))
	if err != nil {
		if err == jetstream.ErrKeyNotFound {
			return 0, 0, nil
		}
		return 0, 0, err
	}
	var u usage
	if err := json.Unmarshal(e.Value(), &u); err != nil {
		return 0, 0, err
	}
	return u.Requests, u.Tokens, nil
}

// Delay is how long a job refused until retryAt should wait in the queue,
// and whether it may: false when waiting (plus need, the expected call
// time) would miss the job's deadline (nil = none), so it must fall back.
func Delay(retryAt, now time.Time, deadline *time.Time, need time.Duration) (time.Duration, bool) {
	d := retryAt.Sub(now)
	if d < 0 {
		d = 0
	}
	if deadline != nil && now.Add(d).Add(need).After(*deadline) {
		return d, false
	}
	return d, true
}
