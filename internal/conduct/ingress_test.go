package conduct_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/switchboard-llm/switchboard/config"
	"github.com/switchboard-llm/switchboard/llm/mock"
)

func (s *stack) anthropic() anthropic.Client {
	return anthropic.NewClient(aoption.WithBaseURL(s.url), aoption.WithAPIKey("unused"), aoption.WithMaxRetries(0))
}

func promptParams() anthropic.MessageNewParams {
	return anthropic.MessageNewParams{Model: "chat", MaxTokens: 200,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(prompt))}}
}

// POST /v1/messages gets the conduct of chat completions, with the same
// ClickHouse rows: failover across kinds before the first event, and a
// stream cut mid-answer continued on the next target, the Anthropic SDK
// seeing one whole message.
func TestMessagesConduct(t *testing.T) {
	for _, tc := range []struct {
		name         string
		first, next  string
		faults       mock.Faults
		stream       bool
		firstErrType string
	}{
		{"sync, anthropic fails, gemini answers", config.KindAnthropic, config.KindGemini, mock.Faults{FailFirst: 1 << 30, ErrorStatus: 529}, false, "server_error"},
		{"sync, openai fails, anthropic answers", config.KindMock, config.KindAnthropic, mock.Faults{FailFirst: 1 << 30, ErrorStatus: 503}, false, "server_error"},
		{"stream cut mid-answer, gemini continues", config.KindAnthropic, config.KindGemini, mock.Faults{CutAfterChunks: 10}, true, "connection"},
		{"stream error event mid-answer, anthropic continues", config.KindMock, config.KindAnthropic, mock.Faults{ErrorAfterChunks: 7}, true, "server_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, "retries: 0\nstream_idle_timeout: 300ms",
				target{name: "a", kind: tc.first, faults: tc.faults},
				target{name: "b", kind: tc.next})
			client := s.anthropic()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var resp *http.Response
			var msg anthropic.Message
			if tc.stream {
				st := client.Messages.NewStreaming(ctx, promptParams(), aoption.WithResponseInto(&resp))
				for st.Next() {
					if err := msg.Accumulate(st.Current()); err != nil {
						t.Fatal(err)
					}
				}
				if err := st.Err(); err != nil {
					t.Fatalf("stream: %v", err)
				}
			} else {
				m, err := client.Messages.New(ctx, promptParams(), aoption.WithResponseInto(&resp))
				if err != nil {
					t.Fatal(err)
				}
				msg = *m
			}
			if len(msg.Content) != 1 || msg.Content[0].Text != canonical || msg.StopReason != anthropic.StopReasonEndTurn {
				t.Fatalf("message %+v", msg)
			}
			if msg.Usage.OutputTokens != 23 {
				t.Errorf("usage %+v, want the whole answer's 23 output tokens", msg.Usage)
			}
			if s.calls("a") != 1 || s.calls("b") != 1 {
				t.Errorf("calls a=%d b=%d, want 1 and 1", s.calls("a"), s.calls("b"))
			}
			c, atts := s.rows(resp.Header.Get("X-Switchboard-Job-Id"), 2)
			if c.Status != "succeeded" || c.Provider != "b" || c.Fallback != 1 || c.Attempts != 2 || c.OutputTokens != 23 {
				t.Errorf("completion row %+v", c)
			}
			if atts[0].Provider != "a" || atts[0].ErrorType != tc.firstErrType || atts[0].Outcome != "fallback" || atts[1].Outcome != "ok" || atts[1].Provider != "b" {
				t.Errorf("attempt rows %v", atts)
			}
		})
	}
}

// Embeddings get the same failover and ClickHouse rows: the OpenAI-shaped
// first target fails, Gemini answers; input tokens are recorded.
func TestEmbeddingsConduct(t *testing.T) {
	s := start(t, "retries: 0",
		target{name: "a", kind: config.KindMock, faults: mock.Faults{FailFirst: 1 << 30, ErrorStatus: 503}},
		target{name: "b", kind: config.KindGemini})
	client := openai.NewClient(option.WithBaseURL(s.url+"/v1"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var resp *http.Response
	r, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "chat",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"sixteen bytes...", "x"}}}, option.WithResponseInto(&resp))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Data) != 2 || len(r.Data[0].Embedding) != mock.DefaultDimensions || resp.Header.Get("X-Switchboard-Provider") != "b" {
		t.Fatalf("embeddings %+v headers %v", r, resp.Header)
	}
	c, atts := s.rows(resp.Header.Get("X-Switchboard-Job-Id"), 2)
	if c.Status != "succeeded" || c.Provider != "b" || c.Fallback != 1 || c.Attempts != 2 {
		t.Errorf("completion row %+v", c)
	}
	// Gemini reports no tokens: estimated as bytes / 4, rounded up (4 + 1).
	if atts[0].Outcome != "fallback" || atts[1].Outcome != "ok" || atts[1].InputTokens != 5 || atts[1].OutputTokens != 0 {
		t.Errorf("attempt rows %v", atts)
	}
}
