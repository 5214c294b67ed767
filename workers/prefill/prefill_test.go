package prefill

import (
	"context"
	"errors"
	"testing"
	"time"

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
