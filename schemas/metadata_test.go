package schemas

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// Metadata encodes byte for byte as the map[string]string it replaced,
// inside a struct with omitempty as in Job and Result: sorted keys, HTML
// characters escaped, invalid UTF-8 replaced, nil and empty omitted, and
// more keys than the encoder keeps on its stack.
func TestMetadataEncodesAsAMap(t *testing.T) {
	type asMap struct {
		ID       string            `json:"id"`
		Metadata map[string]string `json:"metadata,omitempty"`
	}
	type asMetadata struct {
		ID       string   `json:"id"`
		Metadata Metadata `json:"metadata,omitempty"`
	}
	many := map[string]string{}
	for i := range 20 {
		many[fmt.Sprintf("k%02d", 19-i)] = strings.Repeat("v", i)
	}
	cases := map[string]map[string]string{
		"nil":     nil,
		"empty":   {},
		"one":     {"tenant": "acme"},
		"escapes": {"custom_id": "r<1>&\"q\"", "z": "\xff\xfe", "b": "\u2028\u2029", "": "empty key", "ctl": "a\x01b"},
		"many":    many,
	}
	for name, m := range cases {
		want, err := json.Marshal(asMap{ID: "x", Metadata: m})
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(asMetadata{ID: "x", Metadata: m})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if string(got) != string(want) {
			t.Errorf("%s: %s\nwant %s", name, got, want)
		}
		var back asMetadata
		if err := json.Unmarshal(got, &back); err != nil || len(back.Metadata) != len(m) {
			t.Errorf("%s: decoded %v (%v)", name, back.Metadata, err)
		}
	}
	// On its own, a nil Metadata is null, as a nil map is.
	if b, _ := json.Marshal(Metadata(nil)); string(b) != "null" {
		t.Errorf("nil Metadata encodes as %s", b)
	}
}

func BenchmarkMarshalResultMetadata(b *testing.B) {
	cost := 0.0001
	res := Result{V: 1, ID: "r1", Status: StatusSucceeded, CostUSD: &cost,
		Metadata: Metadata{MetaTenant: "acme", MetaCustomID: "r123"}, Response: json.RawMessage(`{"choices":[]}`)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(&res); err != nil {
			b.Fatal(err)
		}
	}
}
