package kvstate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/internal/natstest"
)

func TestModifyConcurrentIncrements(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Context(t)
	var wg sync.WaitGroup
	const workers, each = 4, 25
	kvs := make([]jetstream.KeyValue, workers)
	for i := range kvs {
		_, js := srv.Connect(t)
		kv, err := Bucket(ctx, js, jetstream.KeyValueConfig{Bucket: "sb_test"})
		if err != nil {
			t.Fatal(err)
		}
		kvs[i] = kv
	}
	cache, err := Watch(ctx, kvs[0], "", nil)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, workers*each)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(kv jetstream.KeyValue) {
			defer wg.Done()
			for j := 0; j < each; j++ {
				_, _, err := Modify(ctx, kv, "n", func(cur []byte, exists bool) ([]byte, bool, error) {
					n := 0
					if exists {
						n, _ = strconv.Atoi(string(cur))
					}
					return []byte(strconv.Itoa(n + 1)), true, nil
				})
				if err != nil {
					errs <- err
				}
			}
		}(kvs[i])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		e, ok := cache.Get("n")
		if !ok || string(e.Value) != strconv.Itoa(workers*each) {
			return fmt.Errorf("cached n = %q, want %d", e.Value, workers*each)
		}
		return nil
	})
}

func TestModifyNoWrite(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	ctx := context.Background()
	kv, err := Bucket(ctx, js, jetstream.KeyValueConfig{Bucket: "sb_test"})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = Modify(ctx, kv, "k", func([]byte, bool) ([]byte, bool, error) { return nil, false, nil })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, "k"); err == nil {
		t.Fatal("key written although f said not to")
	}
}

func TestKey(t *testing.T) {
	cases := map[string][]string{
		"openai.gpt-4o-mini":                    {"openai", "gpt-4o-mini"},
		"gemini.gemini-1=2E5":                   {"gemini", "gemini-1.5"},
		"x.a=2Fb=3Dc":                           {"x", "a/b=c"},
		"t.acme_corp.d.2026-01":                 {"t", "acme_corp", "d", "2026-01"},
		"solo":                                  {"solo"},
		"a.=.b":                                 {"a", "", "b"},
		"=":                                     {""},
		"p." + strings.Repeat("m", MaxKeyToken): {"p", strings.Repeat("m", MaxKeyToken)},
		"p.==" + hashed(strings.Repeat("m", MaxKeyToken+1)): {"p", strings.Repeat("m", MaxKeyToken+1)},
	}
	for want, tokens := range cases {
		if got := Key(tokens...); got != want {
			t.Errorf("Key(%q) = %q, want %q", tokens, got, want)
		}
	}
}

// hashed is a long token's key form, computed independently of Key.
func hashed(t string) string {
	sum := sha256.Sum256([]byte(t))
	return hex.EncodeToString(sum[:16])
}

func BenchmarkKey(b *testing.B) {
	for _, tokens := range [][]string{{"openai", "gpt-4o-mini"}, {"gemini", "gemini-1.5"}} {
		b.Run(tokens[1], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = Key(tokens...)
			}
		})
	}
}

// A key built from a hostile value (4,200 bytes, wildcards, spaces, dots)
// stays a short, valid KV key: the write succeeds and the connection stays
// up (an over-long subject used to close it: "maximum control line exceeded").
func TestKeyFromLongValuesStaysValid(t *testing.T) {
	srv := natstest.Start(t)
	nc, js := srv.Connect(t)
	ctx := natstest.Context(t)
	kv, err := Bucket(ctx, js, jetstream.KeyValueConfig{Bucket: "sb_test"})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("m", 4200)
	values := []string{long, long + "x", strings.Repeat("*> .", 1050), "", "é", strings.Repeat("a.b", 43)}
	seen := map[string]string{}
	for _, v := range values {
		k := Key("openai", v)
		if len(k) > 2*(128+1) {
			t.Errorf("Key(openai, %d bytes) is %d bytes", len(v), len(k))
		}
		if other, dup := seen[k]; dup {
			t.Errorf("values %.20q and %.20q share key %q", other, v, k)
		}
		seen[k] = v
		if _, err := kv.Put(ctx, k, []byte("1")); err != nil {
			t.Fatalf("put %.40q (%d bytes): %v", k, len(k), err)
		}
		e, err := kv.Get(ctx, k)
		if err != nil || string(e.Value()) != "1" {
			t.Fatalf("get %.40q: %v", k, err)
		}
	}
	if st := nc.Status(); st != nats.CONNECTED {
		t.Fatalf("connection is %v after the writes", st)
	}
	// Short values keep their readable escaped keys (existing keys stay valid).
	if got := Key("openai", "gpt-4o-mini"); got != "openai.gpt-4o-mini" {
		t.Errorf("short key = %q", got)
	}
}

// TestCacheDropsExpiredKeys: in a bucket with a TTL and delete markers, a key
// that expires leaves every watching cache too (caches stay bounded).
func TestCacheDropsExpiredKeys(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Context(t)
	_, js := srv.Connect(t)
	kv, err := Bucket(ctx, js, jetstream.KeyValueConfig{Bucket: "expiring", History: 1, TTL: time.Second, LimitMarkerTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Watch(ctx, kv, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := kv.Put(ctx, Key("model", fmt.Sprint(i)), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := c.Len(); n != 20 {
			return fmt.Errorf("cached %d keys, want 20", n)
		}
		return nil
	})
	natstest.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		if n := c.Len(); n != 0 {
			return fmt.Errorf("cached %d keys after their TTL, want 0", n)
		}
		return nil
	})
}

// TestWatchReestablishesAndReloads deletes the bucket under a watching
// cache (its watch's consumer goes with it and can't be re-made) and makes
// it again with other keys: the cache re-establishes its watch by itself
// and reloads, dropping the keys that are gone.
func TestWatchReestablishesAndReloads(t *testing.T) {
	srv := natstest.Start(t)
	ctx := natstest.Context(t)
	_, js := srv.Connect(t)
	kvc := jetstream.KeyValueConfig{Bucket: "rewatch", History: 1}
	kv, err := Bucket(ctx, js, kvc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "old", []byte("1")); err != nil {
		t.Fatal(err)
	}
	c, err := Watch(ctx, kv, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get("old"); !ok {
		t.Fatal("initial key not loaded")
	}
	if err := js.DeleteKeyValue(ctx, kvc.Bucket); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		if c.stopped.Load() == 0 {
			return fmt.Errorf("the watch has not noticed its bucket is gone")
		}
		return nil
	})
	kv, err = Bucket(ctx, js, kvc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "new", []byte("2")); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if _, ok := c.Get("new"); !ok {
			return fmt.Errorf("new key not seen (watches: %d)", c.watches.Load())
		}
		if _, ok := c.Get("old"); ok {
			return fmt.Errorf("deleted key still cached")
		}
		return nil
	})
	select {
	case <-c.Done():
		t.Fatal("cache stopped while its context is live")
	default:
	}
}
