package backoff

import (
	"testing"
	"time"
)

func TestExp(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		base, max time.Duration
		n         int
		want      time.Duration
	}{
		{10 * ms, 80 * ms, 0, 10 * ms},
		{10 * ms, 80 * ms, 1, 20 * ms},
		{10 * ms, 80 * ms, 3, 80 * ms},
		{10 * ms, 80 * ms, 10, 80 * ms},
		{10 * ms, 80 * ms, 1 << 30, 80 * ms},   // no overflow however many tries
		{10 * ms, 5 * ms, 4, 10 * ms},          // max below base: base
		{0, 0, 3, 1},                           // base at least 1ns
		{time.Hour, 1 << 62, 100, 1 << 62},     // doubling stops at the cap
		{time.Hour, 1<<63 - 1, 100, 1<<63 - 1}, // and never overflows
	}
	for _, tc := range cases {
		if got := Exp(tc.base, tc.max, tc.n); got != tc.want {
			t.Errorf("Exp(%v, %v, %d) = %v, want %v", tc.base, tc.max, tc.n, got, tc.want)
		}
	}
}

func TestJitterStaysInRangeAndSpreads(t *testing.T) {
	lo, hi := 10*time.Millisecond, 20*time.Millisecond
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := Jitter(lo, hi)
		if d < lo || d > hi {
			t.Fatalf("Jitter = %v outside [%v, %v]", d, lo, hi)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Errorf("1000 draws gave %d distinct waits: not jittered", len(seen))
	}
	if d := Jitter(hi, lo); d != hi {
		t.Errorf("empty range gave %v, want %v", d, hi)
	}
}

func TestEqual(t *testing.T) {
	base, max := 10*time.Millisecond, 80*time.Millisecond
	for n := range 6 {
		d := Exp(base, max, n)
		for range 200 {
			if w := Equal(base, max, n); w < d/2 || w > d {
				t.Fatalf("Equal(n=%d) = %v outside [%v, %v]", n, w, d/2, d)
			}
		}
	}
}
