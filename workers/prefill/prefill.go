// Package prefill remembers, in shared state, which provider models refused
// an assistant prefill (a conversation ending with the assistant's partial
// answer, sent to continue a stream that broke mid-way). Every worker
// process reads the same JetStream KV bucket, so one refusal teaches them
// all; an entry expires after TTL, when the model is asked again.
package prefill

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/internal/kvstate"
	"github.com/switchboard-llm/switchboard/internal/redact"
)

// Bucket is the KV bucket of learned refusals.
const Bucket = "sb_prefill"

// TTL is how long a learned refusal is kept.
const TTL = 24 * time.Hour

// Store is the shared record of models that refuse a prefill. It is safe
// for concurrent use.
type Store struct {
	kv    jetstream.KeyValue
	cache *kvstate.Cache
}

// Open opens (creating if needed) the bucket and watches it until ctx ends.
func Open(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := kvstate.Bucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "switchboard: provider models that refused an assistant prefill",
		History:     1,
		TTL:         TTL,
	})
	if err != nil {
		return nil, err
	}
	cache, err := kvstate.Watch(ctx, kv, "", nil)
	if err != nil {
		return nil, err
	}
	return &Store{kv: kv, cache: cache}, nil
}

// entry is a stored refusal.
type entry struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// Refuses reports whether provider/model was seen refusing a prefill.
func (s *Store) Refuses(provider, model string) bool {
	if s == nil {
		return false
	}
	e, ok := s.cache.Get(kvstate.Key(provider, model))
	if !ok {
		return false
	}
	// The bucket's TTL drops old entries without telling watchers.
	var en entry
	return json.Unmarshal(e.Value, &en) == nil && time.Since(en.At) < TTL
}

// Learn records that provider/model refused a prefill with reason (the
// upstream's message).
func (s *Store) Learn(ctx context.Context, provider, model, reason string) error {
	if s == nil {
		return nil
	}
	reason = redact.Clip(reason, 200) // never splits a UTF-8 character
	b, err := json.Marshal(entry{At: time.Now().UTC(), Reason: reason})
	if err != nil {
		return err
	}
	key := kvstate.Key(provider, model)
	rev, err := s.kv.Put(ctx, key, b)
	if err != nil {
		return fmt.Errorf("record prefill refusal of %s/%s: %w", provider, model, err)
	}
	s.cache.Set(key, b, rev)
	return nil
}

// refusalPhrases are what vendors say when a conversation may not end with
// an assistant message.
var refusalPhrases = []string{
	"prefill",                      // Anthropic: does not support assistant message prefill
	"must end with a user message", // Anthropic
	"expected last role",           // Mistral: Expected last role User or Tool (or Assistant with prefix True)
	"end with a user role",         // Gemini: multiturn requests end with a user role
	"final assistant message",
	"last message must be",
}

// IsRefusal reports whether an upstream error message says the model
// refuses a conversation ending with the assistant's message.
func IsRefusal(message string) bool {
	m := strings.ToLower(message)
	for _, p := range refusalPhrases {
		if strings.Contains(m, p) {
			return true
		}
	}
	return false
}
