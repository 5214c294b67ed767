// Package memlimit keeps a process's soft memory limit (debug.SetMemoryLimit)
// following its live heap, so a high GOGC bought for throughput does not
// multiply a large live heap.
//
// With GOGC=200 the collector lets the heap grow to 3× what survived the last
// collection. That is cheap while the live heap is small, but `switchboard up`
// embeds a nats-server whose live state grows with the load (the streams'
// duplicate windows, the per-subject index of RESULTS, block caches), and 3×
// of it is what the process's RSS becomes. Run sets the limit to
// max(floor, live×(1+Headroom) + the runtime's non-heap memory): below the
// floor GOGC alone decides; above it the heap goal is Headroom over live (1.0
// is Go's default, GOGC=100). The limit always leaves Headroom above the live
// heap, so it never makes the collector run back to back.
package memlimit

import (
	"context"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Options configures Run.
type Options struct {
	// Floor is the lowest limit set, in bytes: the process may use this
	// much before the limit tightens the heap goal GOGC gives.
	Floor uint64
	// Headroom is the heap the limit leaves above the live heap, as a
	// fraction of it (1.0 = GOGC 100). Default 1.0.
	Headroom float64
	// Interval is how often the live heap is read. Default 1s.
	Interval time.Duration
}

// Limit is the memory limit for a live heap of live bytes and other bytes
// of non-heap runtime memory (stacks, GC metadata, ...).
func Limit(live, other uint64, o Options) uint64 {
	h := o.Headroom
	if h <= 0 {
		h = 1
	}
	l := uint64(math.Ceil(float64(live)*(1+h))) + other
	return max(l, o.Floor)
}

// Run sets the limit now and after every collection, until ctx ends; then
// it restores the limit the process had before.
func Run(ctx context.Context, o Options) {
	interval := o.Interval
	if interval <= 0 {
		interval = time.Second
	}
	before := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(before)
	r := newReader()
	var cycles uint64 = math.MaxUint64
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if c, live, other := r.read(); c != cycles {
			cycles = c
			debug.SetMemoryLimit(int64(min(Limit(live, other, o), math.MaxInt64)))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// The runtime/metrics read by reader.
const (
	mCycles   = "/gc/cycles/total:gc-cycles"
	mLive     = "/gc/heap/live:bytes"
	mTotal    = "/memory/classes/total:bytes"
	mObjects  = "/memory/classes/heap/objects:bytes"
	mUnused   = "/memory/classes/heap/unused:bytes"
	mFree     = "/memory/classes/heap/free:bytes"
	mReleased = "/memory/classes/heap/released:bytes"
)

type reader struct{ s []metrics.Sample }

func newReader() *reader {
	names := []string{mCycles, mLive, mTotal, mObjects, mUnused, mFree, mReleased}
	r := &reader{s: make([]metrics.Sample, len(names))}
	for i, n := range names {
		r.s[i].Name = n
	}
	return r
}

// read returns the number of completed collections, the live heap and the
// runtime's memory outside the heap.
func (r *reader) read() (cycles, live, other uint64) {
	metrics.Read(r.s)
	v := func(i int) uint64 {
		if r.s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return r.s[i].Value.Uint64()
	}
	heap := v(3) + v(4) + v(5) + v(6)
	if total := v(2); total > heap {
		other = total - heap
	}
	return v(0), v(1), other
}
