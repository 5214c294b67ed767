// Package kvstate holds the small JetStream KV helpers the shared-state
// policies (breakers, rate limits, spend, latency) build on: bucket
// provisioning, optimistic read-modify-write with revisions, and a watched
// in-memory cache so hot paths read without a KV round trip.
package kvstate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/internal/backoff"
	"github.com/switchboard-llm/switchboard/internal/supervise"
)

// ErrConflict means a read-modify-write lost every race it retried.
var ErrConflict = errors.New("kv update conflicted too often")

// Bucket creates the bucket (or updates it to cfg) and returns it.
func Bucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("kv bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// ModifyFunc computes a key's new value from its current one (cur is nil
// and exists false when the key is absent). Returning write=false leaves the
// key as it is.
type ModifyFunc func(cur []byte, exists bool) (next []byte, write bool, err error)

// maxTries bounds a read-modify-write under contention.
const maxTries = 64

// Modify applies f to key atomically: it reads the latest revision, writes
// with Create (absent key) or Update (that revision), and retries on a
// concurrent change. It returns the value now stored and its revision.
func Modify(ctx context.Context, kv jetstream.KeyValue, key string, f ModifyFunc, opts ...jetstream.KVCreateOpt) ([]byte, uint64, error) {
	return modify(ctx, kv, key, f, func(next []byte, rev uint64) (uint64, error) {
		if rev == 0 {
			return kv.Create(ctx, key, next, opts...)
		}
		return kv.Update(ctx, key, next, rev)
	})
}

// ModifyTTL is Modify where every write, updates included, gives the key a
// fresh per-key TTL (KV Update alone would make the key permanent). The
// bucket must allow per-key TTLs (LimitMarkerTTL set).
func ModifyTTL(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, key string, ttl time.Duration, f ModifyFunc) ([]byte, uint64, error) {
	return modify(ctx, kv, key, f, func(next []byte, rev uint64) (uint64, error) {
		if rev == 0 {
			return kv.Create(ctx, key, next, jetstream.KeyTTL(ttl))
		}
		return write(ctx, js, kv, key, next, ttl, jetstream.WithExpectLastSequencePerSubject(rev))
	})
}

// write publishes a KV value with a TTL on the bucket's subject for key (the
// KV API's Put and Update take no TTL).
func write(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, key string, value []byte, ttl time.Duration, opts ...jetstream.PublishOpt) (uint64, error) {
	msg := &nats.Msg{Subject: "$KV." + kv.Bucket() + "." + key, Data: value}
	ack, err := js.PublishMsg(ctx, msg, append(opts, jetstream.WithMsgTTL(ttl))...)
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			return 0, fmt.Errorf("kv write %s: %w", key, jetstream.ErrKeyRevisionMismatch)
		}
		return 0, fmt.Errorf("kv write %s: %w", key, err)
	}
	return ack.Sequence, nil
}

// modify is the read-modify-write loop; put writes next after revision rev
// (0: the key is absent).
func modify(ctx context.Context, kv jetstream.KeyValue, key string, f ModifyFunc, put func(next []byte, rev uint64) (uint64, error)) ([]byte, uint64, error) {
	for try := 0; try < maxTries; try++ {
		var cur []byte
		var rev uint64
		exists := false
		e, err := kv.Get(ctx, key)
		switch {
		case err == nil:
			cur, rev, exists = e.Value(), e.Revision(), true
		case errors.Is(err, jetstream.ErrKeyNotFound):
		default:
			return nil, 0, fmt.Errorf("kv get %s: %w", key, err)
		}
		next, write, err := f(cur, exists)
		if err != nil {
			return nil, 0, err
		}
		if !write {
			return cur, rev, nil
		}
		nrev, err := put(next, rev)
		if err == nil {
			return next, nrev, nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, 0, fmt.Errorf("kv write %s: %w", key, err)
		}
		// Lost a race: back off a little (jittered) and re-read.
		d := backoff.Jitter(0, time.Duration(min(try, 8))*200*time.Microsecond)
		if d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, 0, ctx.Err()
			case <-t.C:
			}
		}
	}
	return nil, 0, fmt.Errorf("kv key %s: %w", key, ErrConflict)
}

// Entry is one cached value.
type Entry struct {
	Value    []byte
	Revision uint64
}

// cached is an Entry and the watch (gen) that last wrote it.
type cached struct {
	Entry
	gen uint64
}

// Cache mirrors a bucket's keys in memory by watching it. Reads never touch
// the server; writes made through Modify can be applied locally at once with
// Set, so a process sees its own writes before the watch echoes them. A
// watch that stops (its consumer lost in an outage) is re-established and
// the keys reloaded, until the context ends.
type Cache struct {
	mu      sync.RWMutex
	m       map[string]cached
	gen     uint64 // the current watch's number
	onEvent func(key string, e Entry, deleted bool)
	done    chan struct{}
	watches atomic.Int64 // watches established
	stopped atomic.Int64 // watches that ended while ctx was live
}

// Watch starts mirroring the keys of kv matching filter ("" = all) until ctx
// ends; it returns once the initial values are loaded. onEvent, if not nil,
// is called (serially) for every change after it is cached. Restarts of the
// watch are logged on slog.Default().
func Watch(ctx context.Context, kv jetstream.KeyValue, filter string, onEvent func(key string, e Entry, deleted bool)) (*Cache, error) {
	first, err := watch(ctx, kv, filter)
	if err != nil {
		return nil, err
	}
	c := &Cache{m: map[string]cached{}, onEvent: onEvent, done: make(chan struct{})}
	ready := make(chan struct{})
	wctx, cancel := context.WithCancel(ctx)
	go func() {
		defer close(c.done)
		defer cancel()
		loaded := false
		supervise.Run(wctx, nil, "kv watch "+kv.Bucket(), func(ctx context.Context) error {
			w := first
			first = nil
			if w == nil {
				var err error
				if w, err = watch(ctx, kv, filter); err != nil {
					return err
				}
			}
			var signal chan struct{}
			if !loaded {
				signal = ready
			}
			ok, err := c.follow(ctx, w, signal)
			if !loaded && !ok {
				cancel() // the first load failed: Watch reports it
				return nil
			}
			loaded = true
			if err == nil && ctx.Err() == nil {
				err = errWatchStopped
			}
			return err
		})
	}()
	select {
	case <-ready:
		return c, nil
	case <-c.done:
		return nil, fmt.Errorf("watch kv %s: stopped before loading", kv.Bucket())
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func watch(ctx context.Context, kv jetstream.KeyValue, filter string) (jetstream.KeyWatcher, error) {
	var w jetstream.KeyWatcher
	var err error
	if filter == "" {
		w, err = kv.WatchAll(ctx)
	} else {
		w, err = kv.Watch(ctx, filter)
	}
	if err != nil {
		return nil, fmt.Errorf("watch kv %s: %w", kv.Bucket(), err)
	}
	return w, nil
}

// follow applies w's updates until ctx ends (nil) or the watch stops
// (errWatchStopped). Once the initial values are in it drops the cached
// keys the load did not deliver (deleted or expired while a previous watch
// was down) and closes ready (if not nil); loaded reports whether that
// point was reached.
func (c *Cache) follow(ctx context.Context, w jetstream.KeyWatcher, ready chan struct{}) (loaded bool, err error) {
	defer w.Stop()
	c.watches.Add(1)
	c.mu.Lock()
	c.gen++
	c.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return loaded, nil
		case u, ok := <-w.Updates():
			if !ok {
				c.stopped.Add(1)
				return loaded, errWatchStopped
			}
			if u == nil {
				if !loaded {
					loaded = true
					c.dropStale()
					if ready != nil {
						close(ready)
					}
				}
				continue
			}
			deleted := u.Operation() != jetstream.KeyValuePut
			c.apply(u.Key(), Entry{Value: u.Value(), Revision: u.Revision()}, deleted)
		}
	}
}

// errWatchStopped means a KV watch ended while its context was live.
var errWatchStopped = errors.New("kv watch stopped")

// dropStale removes the cached keys neither the current watch's load nor a
// local Set since it began has written.
func (c *Cache) dropStale() {
	var gone []string
	c.mu.Lock()
	for k, e := range c.m {
		if e.gen < c.gen {
			delete(c.m, k)
			gone = append(gone, k)
		}
	}
	c.mu.Unlock()
	if c.onEvent != nil {
		for _, k := range gone {
			c.onEvent(k, Entry{}, true)
		}
	}
}

// Len returns the number of cached keys.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

func (c *Cache) apply(key string, e Entry, deleted bool) {
	c.mu.Lock()
	old, ok := c.m[key]
	if ok && old.gen == c.gen && old.Revision > e.Revision {
		c.mu.Unlock()
		return // a newer local write already landed
	}
	if deleted {
		delete(c.m, key)
	} else {
		c.m[key] = cached{Entry: e, gen: c.gen}
	}
	c.mu.Unlock()
	if c.onEvent != nil {
		c.onEvent(key, e, deleted)
	}
}

// Set records a value this process just wrote (newer revisions win).
func (c *Cache) Set(key string, value []byte, rev uint64) {
	c.apply(key, Entry{Value: value, Revision: rev}, false)
}

// Get returns the cached value of key.
func (c *Cache) Get(key string) (Entry, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.m[key]
	return e.Entry, ok
}

// Done is closed when the watch has stopped for good (its context ended).
func (c *Cache) Done() <-chan struct{} { return c.done }

// MaxKeyToken bounds one token of a Key, escaped. A longer one is replaced
// by its hash, so a key built from user values (a tenant, a pinned model)
// stays a valid, short subject however long or strange the value is.
const MaxKeyToken = 128

// Key joins key tokens with '.', escaping every byte outside [A-Za-z0-9_-]
// as =HH, so distinct tokens never collide (model names may contain dots).
// An escaped token longer than MaxKeyToken becomes "==" and the first 128
// bits of its SHA-256 in hex; an empty token becomes "=". Neither form can
// come out of escaping ('=' is always followed by two uppercase hex
// digits), so they never collide with an escaped token either. Every key
// is thus valid for JetStream KV, free of wildcards, and at most
// len(tokens)*(MaxKeyToken+1) bytes.
func Key(tokens ...string) string {
	if len(tokens) == 1 {
		return keyToken(tokens[0])
	}
	size := 0
	for _, t := range tokens {
		size += min(len(t), MaxKeyToken) + 1 // a plain token's room; escaping may grow it
	}
	var b strings.Builder
	b.Grow(size)
	for i, t := range tokens {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(keyToken(t))
	}
	return b.String()
}

// plainToken reports whether t is its own escaped form: not empty, within
// MaxKeyToken, and only [A-Za-z0-9_-].
func plainToken(t string) bool {
	if t == "" || len(t) > MaxKeyToken {
		return false
	}
	for j := 0; j < len(t); j++ {
		if !plainByte(t[j]) {
			return false
		}
	}
	return true
}

// plainByte reports whether ch stands for itself in a key token.
func plainByte(ch byte) bool {
	return ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_'
}

// keyToken is t escaped; a plain token is returned as it is.
func keyToken(t string) string {
	if plainToken(t) {
		return t
	}
	if t == "" {
		return "="
	}
	b := make([]byte, 0, len(t))
	for j := 0; j < len(t); j++ {
		ch := t[j]
		switch {
		case plainByte(ch):
			b = append(b, ch)
		default:
			const digits = "0123456789ABCDEF"
			b = append(b, '=', digits[ch>>4], digits[ch&15])
		}
		if len(b) > MaxKeyToken {
			sum := sha256.Sum256([]byte(t))
			return "==" + hex.EncodeToString(sum[:16])
		}
	}
	return string(b)
}
