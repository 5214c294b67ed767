package gemini_test

import (
	"net/http"
	"testing"

	"github.com/switchboard-llm/switchboard/workers"
	"github.com/switchboard-llm/switchboard/workers/mock"
	"github.com/switchboard-llm/switchboard/workers/providers/conformance"
	"github.com/switchboard-llm/switchboard/workers/providers/gemini"
)

func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		Shape: mock.ShapeGemini,
		New: func(url, key string, hc *http.Client) workers.Completer {
			return gemini.New(gemini.Config{Name: "gemini-mock", BaseURL: url, APIKey: key, HTTPClient: hc})
		},
		Model:       "gemini-2.0-flash",
		SystemField: "systemInstruction",
	})
}
