package oai

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchboard-llm/switchboard/internal/redact"
)

const testKey = "sk-test-abcdefghijklmnopqrstuvwxyz"

func TestReadErrorBodyRedactsAcrossTheLimit(t *testing.T) {
	for _, at := range []int{MaxErrorBody - 20, MaxErrorBody - 1, MaxErrorBody - len(testKey)} {
		body := strings.Repeat("x", at) + testKey + strings.Repeat("y", 100)
		got := string(ReadErrorBody(strings.NewReader(body), testKey))
		if len(got) > MaxErrorBody {
			t.Errorf("key at %d: read %d bytes, want at most %d", at, len(got), MaxErrorBody)
		}
		for i := 0; i+8 <= len(testKey); i++ {
			if strings.Contains(got, testKey[i:i+8]) {
				t.Fatalf("key at %d straddling the read limit survives in part (%q)", at, testKey[i:i+8])
			}
		}
	}
	small := "oops " + testKey + " oops"
	if got := string(ReadErrorBody(strings.NewReader(small), testKey)); got != "oops "+redact.Placeholder+" oops" {
		t.Errorf("small body: %q", got)
	}
	long := strings.Repeat("é", MaxErrorBody) // no key; cut on a character boundary
	if got := ReadErrorBody(strings.NewReader(long), testKey); len(got) > MaxErrorBody || !utf8.Valid(got) {
		t.Errorf("long body: %d bytes, valid UTF-8 %v", len(got), utf8.Valid(got))
	}
}

func TestSnippet(t *testing.T) {
	if got := Snippet([]byte("  \n"), testKey); got != "empty body" {
		t.Errorf("blank body: %q", got)
	}
	body := strings.Repeat("é", 145) + testKey + "tail"
	got := Snippet([]byte(body), testKey)
	if len(got) > SnippetLen || !utf8.ValidString(got) || strings.Contains(got, testKey[:8]) {
		t.Errorf("snippet %q (%d bytes)", got, len(got))
	}
}

func TestReadBodyWhateverTheDeclaredLength(t *testing.T) {
	const limit = 4096
	body := strings.Repeat("a", 1500)
	tests := []struct {
		name     string
		body     string
		declared int64
		wantErr  bool
	}{
		{"exact", body, int64(len(body)), false},
		{"unknown", body, -1, false},
		{"declared shorter", body, 10, false},
		{"declared longer", body, 3000, false},
		{"declared over the limit", body, limit * 2, false},
		{"declared over the presize cap", body, presizeMax + 1, false},
		{"empty", "", 0, false},
		{"at the limit", strings.Repeat("b", limit), limit, false},
		{"over the limit", strings.Repeat("b", limit+1), limit + 1, true},
		{"over the limit, declared small", strings.Repeat("b", limit+600), 100, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: 200, ContentLength: tt.declared, Body: io.NopCloser(strings.NewReader(tt.body))}
			got, err := ReadBody(context.Background(), "p", resp, limit)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "over 4096 bytes") {
					t.Fatalf("err %v, want the size error", err)
				}
				return
			}
			if err != nil || string(got) != tt.body {
				t.Fatalf("read %d bytes (err %v), want the %d sent", len(got), err, len(tt.body))
			}
		})
	}
}

func BenchmarkReadBody(b *testing.B) {
	body := strings.Repeat("x", 700)
	for _, declared := range []int64{-1, int64(len(body))} {
		b.Run(fmt.Sprintf("declared=%d", declared), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				resp := &http.Response{ContentLength: declared, Body: io.NopCloser(strings.NewReader(body))}
				if _, err := ReadBody(context.Background(), "p", resp, MaxBody); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
