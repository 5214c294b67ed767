package mock_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboard-llm/switchboard/llm/mock"
)

// chatBody is the request `switchboard bench` sends.
const chatBody = `{"model":"m1","messages":[{"role":"user","content":"hi"}]}`

// sinkWriter is a reusable http.ResponseWriter that discards the body, so
// BenchmarkServeHTTPChat measures the handler alone.
type sinkWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *sinkWriter) Header() http.Header         { return w.h }
func (w *sinkWriter) WriteHeader(status int)      { w.status = status }
func (w *sinkWriter) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }

// BenchmarkServeHTTPChat is the handler's cost of one fault-free OpenAI
// chat completion, without net/http.
func BenchmarkServeHTTPChat(b *testing.B) {
	srv := mock.New(mock.Options{})
	w := &sinkWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(chatBody))
		r.Header.Set("Content-Type", "application/json")
		clear(w.h)
		srv.ServeHTTP(w, r)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
}

// BenchmarkLoopbackChat is one fault-free OpenAI chat completion over real
// HTTP on loopback (client and server in this process), from 8 callers.
func BenchmarkLoopbackChat(b *testing.B) {
	srv, err := mock.Listen("127.0.0.1:0", mock.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = srv.Close() }()
	url := srv.URL() + "/v1/chat/completions"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(url, "application/json", bytes.NewReader([]byte(chatBody)))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
