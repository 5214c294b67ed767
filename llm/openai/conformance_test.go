package openai_test

import (
	"net/http"
	"testing"

	"github.com/switchboard-llm/switchboard/llm"
	"github.com/switchboard-llm/switchboard/llm/conformance"
	"github.com/switchboard-llm/switchboard/llm/mock"
	"github.com/switchboard-llm/switchboard/llm/openai"
)

func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		Shape: mock.ShapeOpenAI,
		New: func(url, key string, hc *http.Client) llm.Completer {
			return openai.New(openai.Config{Name: "openai-mock", BaseURL: url + "/v1", APIKey: key, HTTPClient: hc})
		},
		Model:       "gpt-4o-mini",
		SystemField: "messages",
	})
}
