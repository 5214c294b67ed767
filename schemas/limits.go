package schemas

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Identifier limits. Every identifier that can reach a NATS subject, a KV
// key, a header or a ClickHouse column has a maximum length (in bytes) and
// a character set, checked at every entrance (HTTP, llm.submit,
// llm.complete, batch lines, config). Values derived into KV keys are also
// escaped and, when long, hashed (internal/kvstate.Key), so no value can
// form an invalid, over-long or wildcard subject.
const (
	// MaxTokenLen bounds a job id and a batch id: one NATS subject token of
	// printable ASCII without spaces, '.', '*' or '>'.
	MaxTokenLen = 128
	// MaxProviderLen bounds a provider name: [a-z0-9_-], a subject token.
	MaxProviderLen = 64
	// MaxRouteLen bounds a route name: letters, digits and _ - . : @.
	MaxRouteLen = 128
	// MaxModelLen bounds a model name (the model of provider/model, and
	// models and targets in the config): printable ASCII without spaces.
	MaxModelLen = 256
	// MaxLabelLen bounds tenant, tier and task: UTF-8 without control
	// characters.
	MaxLabelLen = 128
	// MaxMetaKeyLen bounds a metadata key: 1 or more bytes of UTF-8
	// without control characters.
	MaxMetaKeyLen = 64
	// MaxMetaValueLen bounds any other metadata value, custom_id included:
	// UTF-8 without control characters.
	MaxMetaValueLen = 512
	// MaxMetaPairs bounds how many metadata entries a job carries.
	MaxMetaPairs = 32
)

// Character sets of the limits above, as the error messages name them.
const (
	charsToken    = "printable ASCII without spaces, '.', '*' or '>'"
	charsProvider = "lowercase letters, digits, '_' and '-'"
	charsRoute    = "letters, digits, '_', '-', '.', ':' and '@'"
	charsModel    = "printable ASCII without spaces"
	charsText     = "UTF-8 without control characters"
)

// limitError is the *FieldError of a value over an identifier limit.
func limitError(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...), Err: ErrLimit}
}

// checkLen reports a value longer than max (or empty, when required).
func checkLen(field, v string, max int, required bool, chars string) error {
	switch {
	case v == "" && required:
		return limitError(field, "is required (1 to %d bytes of %s)", max, chars)
	case len(v) > max:
		return limitError(field, "is %d bytes, over the limit of %d (%s)", len(v), max, chars)
	}
	return nil
}

func badChars(field string, max int, chars string) error {
	return limitError(field, "must be 1 to %d bytes of %s", max, chars)
}

// ValidToken reports whether s can be one NATS subject token as a job or
// batch id: 1 to MaxTokenLen bytes of printable ASCII without spaces, '.',
// '*' or '>'.
func ValidToken(s string) bool { return CheckToken("id", s) == nil }

// CheckToken checks a job or batch id (see MaxTokenLen).
func CheckToken(field, s string) error {
	if err := checkLen(field, s, MaxTokenLen, true, charsToken); err != nil {
		return err
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '.' || c == '*' || c == '>' {
			return badChars(field, MaxTokenLen, charsToken)
		}
	}
	return nil
}

// CheckProvider checks a provider name (see MaxProviderLen).
func CheckProvider(field, s string) error {
	if err := checkLen(field, s, MaxProviderLen, true, charsProvider); err != nil {
		return err
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return badChars(field, MaxProviderLen, charsProvider)
		}
	}
	return nil
}

// CheckRoute checks a route name (see MaxRouteLen).
func CheckRoute(field, s string) error {
	if err := checkLen(field, s, MaxRouteLen, true, charsRoute); err != nil {
		return err
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_-.:@", c) >= 0) {
			return badChars(field, MaxRouteLen, charsRoute)
		}
	}
	return nil
}

// CheckModel checks a model name, without its provider (see MaxModelLen).
func CheckModel(field, s string) error {
	if err := checkLen(field, s, MaxModelLen, true, charsModel); err != nil {
		return err
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return badChars(field, MaxModelLen, charsModel)
		}
	}
	return nil
}

// CheckPinned checks a pinned "provider/model" (the provider part is a
// provider name, the rest a model name). An empty part is left to routing,
// which names the missing half.
func CheckPinned(field, s string) error {
	provider, model, ok := strings.Cut(s, "/")
	if !ok {
		return &FieldError{Field: field, Msg: fmt.Sprintf("%s must be provider/model", Quote(s))}
	}
	if provider == "" || model == "" {
		return nil
	}
	var fe *FieldError
	if err := CheckProvider(field, provider); errors.As(err, &fe) {
		fe.Msg = "provider " + fe.Msg
		return fe
	} else if err != nil {
		return err
	}
	if err := CheckModel(field, model); errors.As(err, &fe) {
		fe.Msg = "model name " + fe.Msg
		return fe
	} else if err != nil {
		return err
	}
	return nil
}

// CheckText checks free text of at most max bytes: valid UTF-8 without
// control characters (tenant, tier, task, metadata keys and values).
func CheckText(field, s string, max int, required bool) error {
	if err := checkLen(field, s, max, required, charsText); err != nil {
		return err
	}
	if !utf8.ValidString(s) {
		return badChars(field, max, charsText)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return badChars(field, max, charsText)
		}
	}
	return nil
}

// CheckLabel checks a tenant, tier or task (see MaxLabelLen).
func CheckLabel(field, s string) error { return CheckText(field, s, MaxLabelLen, false) }

// CheckMetadata checks a job's metadata: at most MaxMetaPairs entries,
// keys of at most MaxMetaKeyLen bytes, tenant, tier and task of at most
// MaxLabelLen, any other value (custom_id included) of at most
// MaxMetaValueLen; all UTF-8 without control characters. Keys are checked
// in sorted order, so the first bad one named is stable.
func CheckMetadata(meta map[string]string) error {
	if len(meta) > MaxMetaPairs {
		return limitError("metadata", "has %d entries, over the limit of %d", len(meta), MaxMetaPairs)
	}
	// The error names the first failing key in sorted order; the field names
	// are built only for it.
	bad, failed := "", false
	for k, v := range meta {
		if checkMetaPair(k, v, false) != nil && (!failed || k < bad) {
			bad, failed = k, true
		}
	}
	if failed {
		return checkMetaPair(bad, meta[bad], true)
	}
	return nil
}

// checkMetaPair checks one metadata entry; named says whether its error
// names the key (building the field names costs allocations).
func checkMetaPair(k, v string, named bool) error {
	keyField, valueField := "", ""
	if named {
		keyField, valueField = "metadata key "+Quote(k), "metadata."+k
	}
	if err := CheckText(keyField, k, MaxMetaKeyLen, true); err != nil {
		return err
	}
	switch k {
	case MetaTenant, MetaTier, MetaTask:
		return CheckLabel(valueField, v)
	}
	return CheckText(valueField, v, MaxMetaValueLen, false)
}

// CheckIdentifiers checks every identifier of a job against its limit: id,
// batch, route, model and metadata. Errors are *FieldError naming the field
// and the limit, matching both ErrInvalid and ErrLimit.
func (j *Job) CheckIdentifiers() error {
	if j.ID != "" {
		if err := CheckToken("id", j.ID); err != nil {
			return err
		}
	}
	if j.Batch != "" {
		if err := CheckToken("batch", j.Batch); err != nil {
			return err
		}
	}
	if j.Route != "" {
		if err := CheckRoute("route", j.Route); err != nil {
			return err
		}
	}
	if j.Model != "" && strings.Contains(j.Model, "/") {
		if err := CheckPinned("model", j.Model); err != nil {
			return err
		}
	}
	return CheckMetadata(j.Metadata)
}

// Quote renders a value for an error message: quoted, and cut to its first
// 64 bytes (with its length) when longer, so messages, logs and dead-letter
// headers never carry an over-long value.
func Quote(s string) string {
	const show = 64
	if len(s) <= show {
		return fmt.Sprintf("%q", s)
	}
	cut := show
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q... (%d bytes)", s[:cut], len(s))
}
