package providers

import (
	"context"
	"encoding/json"
	"os"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/schemas"
)

// UnsetKeyEnvs lists p's API key variables (api_key_env, api_key_envs) that
// are named in the config but empty in the environment. Calls made without
// a key fail with auth errors; callers warn at start naming them.
func UnsetKeyEnvs(p config.Provider) []string {
	var out []string
	for _, env := range p.KeyEnvNames() {
		if os.Getenv(env) == "" {
			out = append(out, env)
		}
	}
	return out
}

// withKeyHint makes auth failures of an adapter built without a key name
// the variable that should hold it.
func withKeyHint(c llm.Completer, env string) llm.Completer {
	h := keyHint{c: c, env: env}
	if s, ok := c.(llm.Streamer); ok {
		return streamingKeyHint{keyHint: h, s: s}
	}
	return h
}

type keyHint struct {
	c   llm.Completer
	env string
}

func (h keyHint) Complete(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	resp, err := h.c.Complete(ctx, req)
	return resp, h.hint(err)
}

func (h keyHint) hint(err error) error {
	if pe, ok := llm.AsProviderError(err); ok && pe.Type == schemas.ErrAuth {
		pe.Message += " (no API key was sent: the environment variable " + h.env + ", the provider's api_key_env, is not set)"
	}
	return err
}

type streamingKeyHint struct {
	keyHint
	s llm.Streamer
}

func (h streamingKeyHint) Stream(ctx context.Context, req *llm.Request, emit func(json.RawMessage) error) (*llm.Response, error) {
	resp, err := h.s.Stream(ctx, req, emit)
	return resp, h.hint(err)
}
