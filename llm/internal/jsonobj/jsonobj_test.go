package jsonobj

import (
	"errors"
	"testing"
)

func TestParseKeepsOrderAndBytes(t *testing.T) {
	in := `{ "model" : "a", "messages":[ {"role":"user", "content":"x"} ],"n":1.50, "model":"b", "k\u00e9":{"z":[1, 2]} }`
	o, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Member{
		{"model", []byte(`"a"`)},
		{"messages", []byte(`[ {"role":"user", "content":"x"} ]`)},
		{"n", []byte(`1.50`)},
		{"model", []byte(`"b"`)},
		{"ké", []byte(`{"z":[1, 2]}`)},
	}
	if len(o.Members) != len(want) {
		t.Fatalf("members = %d, want %d: %+v", len(o.Members), len(want), o.Members)
	}
	for i, m := range o.Members {
		if m.Key != want[i].Key || string(m.Value) != string(want[i].Value) {
			t.Errorf("member %d = %q:%s, want %q:%s", i, m.Key, m.Value, want[i].Key, want[i].Value)
		}
	}
	o.Set("model", []byte(`"c"`))
	o.Delete("n")
	if got, want := string(o.Bytes()), `{"model":"c","messages":[ {"role":"user", "content":"x"} ],"ké":{"z":[1, 2]}}`; got != want {
		t.Errorf("Bytes = %s, want %s", got, want)
	}
	if v, ok := o.Get("model"); !ok || string(v) != `"c"` {
		t.Errorf("Get(model) = %s, %v", v, ok)
	}
}

func TestParseRejects(t *testing.T) {
	for _, in := range []string{``, `null`, `[]`, `"x"`, `{"a":1`, `{"a":1} {}`, `{"a":}`, `{"a" 1}`, `{1:2}`, `{"a":1,}`} {
		if _, err := Parse([]byte(in)); !errors.Is(err, ErrNotObject) {
			t.Errorf("Parse(%q) = %v, want ErrNotObject", in, err)
		}
	}
	if o, err := Parse([]byte(" {}\n")); err != nil || len(o.Members) != 0 {
		t.Errorf("Parse(empty object) = %+v, %v", o, err)
	}
}

func BenchmarkParseBytes(b *testing.B) {
	body := []byte(`{"model":"m1","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello 1"}],"temperature":0.2,"stream":false}`)
	b.ReportAllocs()
	for b.Loop() {
		o, err := Parse(body)
		if err != nil {
			b.Fatal(err)
		}
		o.Set("model", []byte(`"gpt"`))
		o.Delete("stream")
		_ = o.Bytes()
	}
}
