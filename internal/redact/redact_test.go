package redact

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClipRedactsBeforeCutting(t *testing.T) {
	const key = "sk-live-0123456789abcdefghijklmn"
	for at := 280; at <= 300; at++ {
		s := strings.Repeat("x", at) + key + strings.Repeat("y", 200)
		got := Clip(s, 300, key)
		if len(got) > 300 {
			t.Fatalf("at %d: %d bytes, want at most 300", at, len(got))
		}
		for i := 0; i+8 <= len(key); i++ {
			if strings.Contains(got, key[i:i+8]) {
				t.Fatalf("key straddling byte 300 (at %d) survives in part: %q in %q", at, key[i:i+8], got)
			}
		}
	}
	if got := Clip("short "+key, 300, key); got != "short "+Placeholder {
		t.Errorf("short text: %q", got)
	}
	if got := Clip("a "+key+" b "+key, 300, "", key); got != "a [redacted] b [redacted]" {
		t.Errorf("every occurrence, empty secrets ignored: %q", got)
	}
}

func TestClipKeepsCharactersWhole(t *testing.T) {
	s := strings.Repeat("é", 200) // 2 bytes each
	for max := 0; max < 20; max++ {
		got := Clip(s, max)
		if !utf8.ValidString(got) || len(got) > max {
			t.Errorf("max %d: %q (%d bytes, valid %v)", max, got, len(got), utf8.ValidString(got))
		}
	}
	got := Clip(s, 300)
	if !utf8.ValidString(got) || !strings.HasSuffix(got, Ellipsis) || len(got) > 300 || len(got) < 297 {
		t.Errorf("%d bytes, valid %v: %q", len(got), utf8.ValidString(got), got)
	}
	if got := Clip("héllo", 300); got != "héllo" {
		t.Errorf("untouched text changed: %q", got)
	}
}
