package oai

import (
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
