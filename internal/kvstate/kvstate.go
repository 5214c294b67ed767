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
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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
		var nrev uint64
		if exists {
			nrev, err = kv.Update(ctx, key, next, rev)
		} else {
			nrev, err = kv.Create(ctx, key, next, opts...)
		}
		if err == nil {
			return next, nrev, nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, 0, fmt.Errorf("kv write %s: %w", key, err)
		}
		// Lost a race: back off a little (jittered) and re-read.
		d := time.Duration(rand.IntN(1+min(try, 8))) * 200 * time.Microsecond
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

// Cache mirrors a bucket's keys in memory by watching it. Reads never touch
// the server; writes made through Modify can be applied locally at once with
// Set, so a process sees its own writes before the watch echoes them.
type Cache struct {
	mu      sync.RWMutex
	m       map[string]Entry
	onEvent func(key string, e Entry, deleted bool)
	done    chan struct{}
}

// Watch starts mirroring the keys of kv matching filter ("" = all) until ctx
// ends; it returns once the initial values are loaded. onEvent, if not nil,
// is called (serially) for every change after it is cached.
func Watch(ctx context.Context, kv jetstream.KeyValue, filter string, onEvent func(key string, e Entry, deleted bool)) (*Cache, error) {
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
	c := &Cache{m: map[string]Entry{}, onEvent: onEvent, done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		defer close(c.done)
		defer w.Stop()
		initial := true
		for {
			select {
			case <-ctx.Done():
				return
			case u, ok := <-w.Updates():
				if !ok {
					return
				}
				if u == nil {
					if initial {
						initial = false
						close(ready)
					}
					continue
				}
				deleted := u.Operation() != jetstream.KeyValuePut
				c.apply(u.Key(), Entry{Value: u.Value(), Revision: u.Revision()}, deleted)
			}
		}
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

func (c *Cache) apply(key string, e Entry, deleted bool) {
	c.mu.Lock()
	old, ok := c.m[key]
	if ok && old.Revision > e.Revision {
		c.mu.Unlock()
		return // a newer local write already landed
	}
	if deleted {
		delete(c.m, key)
	} else {
		c.m[key] = e
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
	return e, ok
}

// Done is closed when the watch has stopped (its context ended).
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
	var b strings.Builder
	for i, t := range tokens {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(keyToken(t))
	}
	return b.String()
}

func keyToken(t string) string {
	if t == "" {
		return "="
	}
	b := make([]byte, 0, len(t))
	for j := 0; j < len(t); j++ {
		ch := t[j]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9', ch == '-', ch == '_':
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
