package anthropic_test

import (
	"net/http"
	"testing"

	"github.com/switchboard-llm/switchboard/workers"
	"github.com/switchboard-llm/switchboard/workers/mock"
	"github.com/switchboard-llm/switchboard/workers/providers/anthropic"
	"github.com/switchboard-llm/switchboard/workers/providers/conformance"
)

func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		Shape: mock.ShapeAnthropic,
		New: func(url, key string, hc *http.Client) workers.Completer {
			return anthropic.New(anthropic.Config{Name: "anthropic-mock", BaseURL: url, APIKey: key, HTTPClient: hc})
		},
		Model:       "claude-3-5-haiku-latest",
		SystemField: "system",
	})
}
