// Package redact keeps secrets out of text that is stored or shown (error
// messages, upstream bodies, dead-letter reasons): it removes each secret
// from the whole text first and only then shortens it, so a secret that
// straddles the cut cannot survive in part, and it never splits a UTF-8
// character.
package redact

import (
	"strings"
	"unicode/utf8"
)

// Placeholder replaces every occurrence of a secret.
const Placeholder = "[redacted]"

// Ellipsis ends a text that Clip shortened.
const Ellipsis = "…"

// Secrets replaces every occurrence of each non-empty secret in s with
// Placeholder.
func Secrets(s string, secrets ...string) string {
	for _, k := range secrets {
		if k != "" && strings.Contains(s, k) {
			s = strings.ReplaceAll(s, k, Placeholder)
		}
	}
	return s
}

// Clip redacts secrets from the whole of s, then shortens it to at most max
// bytes (Ellipsis included) on a character boundary. A max too small for
// Ellipsis cuts without one.
func Clip(s string, max int, secrets ...string) string {
	s = Secrets(s, secrets...)
	if len(s) <= max {
		return s
	}
	end := ""
	if max >= 2*len(Ellipsis) {
		end = Ellipsis
	}
	return Prefix(s, max-len(end)) + end
}

// Prefix is the longest prefix of s of at most n bytes that does not end
// inside a UTF-8 character.
func Prefix(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
