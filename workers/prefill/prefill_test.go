package prefill

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/switchboard-llm/switchboard/internal/kvstate"
	"github.com/switchboard-llm/switchboard/internal/natstest"
)

func TestLearnIsShared(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	ctx, cancel := context.WithCancel(natstest.Context(t))
	defer cancel()
	a, err := Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(ctx, js) // another worker process
	if err != nil {
		t.Fatal(err)
	}
	if a.Refuses("an", "claude.x") {
		t.Fatal("refuses before anything was learned")
	}
	if err := a.Learn(ctx, "an", "claude.x", "This model does not support assistant message prefill."); err != nil {
		t.Fatal(err)
	}
	if !a.Refuses("an", "claude.x") {
		t.Fatal("the learning process does not see its own write")
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !b.Refuses("an", "claude.x") {
			return errors.New("the other process does not see the refusal yet")
		}
		return nil
	})
	if b.Refuses("an", "claude") || b.Refuses("other", "claude.x") {
		t.Fatal("a refusal leaked to another model")
	}
	var none *Store
	if none.Refuses("an", "claude.x") || none.Learn(ctx, "an", "x", "y") != nil {
		t.Fatal("a nil store must refuse nothing and learn nothing")
	}
}

func TestIsRefusal(t *testing.T) {
	for msg, want := range map[string]bool{
		"This model does not support assistant message prefill. The conversation must end with a user message.": true,
		"Expected last role User or Tool (or Assistant with prefix True) for serving but got assistant":         true,
		"Please ensure that multiturn requests end with a user role or a function response.":                    true,
		"max_tokens: Field required":                     false,
		"prompt is too long: 9000 tokens > 8192 maximum": false,
	} {
		if got := IsRefusal(msg); got != want {
			t.Errorf("IsRefusal(%q) = %v, want %v", msg, got, want)
		}
	}
}

// TestLearnClipsReasonOnACharacter: a long upstream reason is stored cut to
// 200 bytes without splitting a UTF-8 character.
func TestLearnClipsReasonOnACharacter(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	ctx := natstest.Context(t)
	s, err := Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Learn(ctx, "an", "m", "x"+strings.Repeat("é", 200)); err != nil {
		t.Fatal(err)
	}
	kv, err := s.kv.Get(ctx, kvstate.Key("an", "m"))
	if err != nil {
		t.Fatal(err)
	}
	var e entry
	if err := json.Unmarshal(kv.Value(), &e); err != nil {
		t.Fatal(err)
	}
	if len(e.Reason) > 200 || !utf8.ValidString(e.Reason) || !strings.HasPrefix(e.Reason, "xé") {
		t.Errorf("stored reason %q (%d bytes): want at most 200 bytes of whole characters", e.Reason, len(e.Reason))
	}
}
