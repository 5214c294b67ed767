package anthropic_test

import (
	"net/http"
	"testing"

	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/llm/anthropic"
	"github.com/switchboard-llm/switchboard/llm/conformance"
	"github.com/switchboard-llm/switchboard/llm/mock"
)

func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		Shape: mock.ShapeAnthropic,
		New: func(url, key string, hc *http.Client) llm.Completer {
			return anthropic.New(anthropic.Config{Name: "anthropic-mock", BaseURL: url, APIKey: key, HTTPClient: hc})
		},
		Model:       "claude-3-5-haiku-latest",
		SystemField: "system",
	})
}
