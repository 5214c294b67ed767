package ingest

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-llm/switchboard/schemas"
)

// parseTSFast gives time.ParseInLocation's result, Location included, for
// every time it parses, whatever the local zone; parseTS gives
// time.Parse's result and error for any input.
func TestParseTSMatchesTime(t *testing.T) {
	locs := []*time.Location{time.UTC, time.Local, time.FixedZone("CET", 3600), time.FixedZone("", -(5*3600 + 30*60))}
	for _, name := range []string{"Europe/Berlin", "America/St_Johns", "Asia/Kolkata"} {
		if loc, err := time.LoadLocation(name); err == nil {
			locs = append(locs, loc)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	num := func(width, max int) string { return fmt.Sprintf("%0*d", width, r.IntN(max+1)) }
	fast := 0
	const n = 20000
	for range n {
		var s string
		if r.IntN(10) == 0 { // anything near the layout
			s = pick("", "2025-01-01", "2025-01-01T00:00:00", "2025-1-01T00:00:00Z", "2025-01-01 00:00:00Z",
				"2025-01-01T00:00:00,5Z", "2025-01-01T00:00:00.Z", "2025-01-01T00:00:00z", "2025-01-01T00:00:00+0100",
				"2025-01-01T00:00:00+01", "2025-01-01T00:00:60Z", "2025-01-01T24:00:00Z", "2025-02-29T00:00:00Z",
				"2024-02-29T00:00:00Z", "2025-04-31T00:00:00Z", "2025-01-01T00:00:00+24:00", "2025-01-01T00:00:00-00:60",
				"+2025-01-01T00:00:00Z", "2025-01-01T00:00:00.1234567891234Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999-23:59",
				"2025-01-01T00:00:00.5+05:30", "2025-01-01t00:00:00Z", "２025-01-01T00:00:00Z", "2025-01-01T00:00:00ZZ")
		} else {
			s = pick(num(4, 9999), "1970", "2000", "2024", "1600", "0000") + "-" + pick(num(2, 12), num(2, 99)) + "-" +
				pick(num(2, 28), num(2, 31), "29", "30", "31", "00") + "T" + pick(num(2, 23), num(2, 24)) + ":" +
				num(2, 59) + ":" + pick(num(2, 59), "60") +
				pick("", "", "."+num(1, 9), "."+num(3, 999), "."+num(6, 999999), "."+num(9, 999999999), ".1234567890123", ".", ",5") +
				pick("Z", "Z", "+00:00", "-00:00", "+01:00", "+02:00", "-05:30", "+05:30", "-03:30", "+"+num(2, 24)+":"+num(2, 60), "")
		}
		for _, loc := range locs {
			got, ok := parseTSFast(s, loc)
			if !ok {
				continue
			}
			want, err := time.ParseInLocation(time.RFC3339Nano, s, loc)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("parseTSFast(%q) in %v = %v (%#v), ParseInLocation = %v (%#v), %v", s, loc, got, got.Location(), want, want.Location(), err)
			}
		}
		got, err := parseTS(s)
		want, wantErr := time.Parse(time.RFC3339Nano, s)
		if !reflect.DeepEqual(got, want) || fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Fatalf("parseTS(%q) = %v, %v; time.Parse = %v, %v", s, got, err, want, wantErr)
		}
		if _, ok := parseTSFast(s, time.Local); ok {
			fast++
		}
	}
	if fast < n/10 {
		t.Fatalf("only %d of %d times took the fast path", fast, n)
	}
}

// notPlain finds the first byte of a word that strPlain does not mark.
func TestNotPlain(t *testing.T) {
	first := func(w [8]byte) int {
		for i, c := range w {
			if !strPlain[c] {
				return i
			}
		}
		return 8
	}
	check := func(w [8]byte) {
		x := binary.LittleEndian.Uint64(w[:])
		got := 8
		if m := notPlain(x); m != 0 {
			got = bits.TrailingZeros64(m) / 8
		}
		if want := first(w); got != want {
			t.Fatalf("notPlain(%q): first at %d, want %d", w, got, want)
		}
	}
	for p := range 8 {
		for c := range 256 {
			w := [8]byte{'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a'}
			w[p] = byte(c)
			check(w)
		}
	}
	r := rand.New(rand.NewPCG(9, 10))
	alphabet := []byte{0, 0x1f, ' ', '!', '"', '#', '[', '\\', ']', 0x7f, 0x80, 0xff, 'a', 'z', 0x21, 0x5b, 0x5d}
	for range 100000 {
		var w [8]byte
		for i := range w {
			if r.IntN(2) == 0 {
				w[i] = alphabet[r.IntN(len(alphabet))]
			} else {
				w[i] = byte(r.IntN(256))
			}
		}
		check(w)
	}
}

// The decoder knows every field of schemas.Event, in encoding/json's order
// (the order it reads fastest): a field added to the schema fails here
// until Decode reads it.
func TestFieldNamesMatchSchema(t *testing.T) {
	var keys []string
	typ := reflect.TypeFor[schemas.Event]()
	for i := range typ.NumField() {
		keys = append(keys, strings.Split(typ.Field(i).Tag.Get("json"), ",")[0])
	}
	if !slices.Equal(keys, fieldNames[:]) {
		t.Fatalf("schemas.Event keys %q\ndecoder fields   %q", keys, fieldNames)
	}
	var ev schemas.Event
	for k := range fieldNames {
		if kind, sp, ip, lp := slot(&ev, k); kind == slotNone ||
			(kind == slotString) != (sp != nil) || (kind == slotInt) != (ip != nil) || (kind == slotInt64) != (lp != nil) {
			t.Fatalf("field %s has no slot", fieldNames[k])
		}
	}
}
