package gemini_test

import (
	"net/http"
	"testing"

	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/llm/conformance"
	"github.com/switchboard-llm/switchboard/llm/gemini"
	"github.com/switchboard-llm/switchboard/llm/mock"
)

func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		Shape: mock.ShapeGemini,
		New: func(url, key string, hc *http.Client) llm.Completer {
			return gemini.New(gemini.Config{Name: "gemini-mock", BaseURL: url, APIKey: key, HTTPClient: hc})
		},
		Model:       "gemini-2.0-flash",
		SystemField: "systemInstruction",
	})
}
