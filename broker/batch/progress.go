package batch

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress draws a one-line bar on a terminal; a nil writer draws nothing.
type progress struct {
	w     io.Writer
	total int
	start time.Time
	last  time.Time
}

func newProgress(w io.Writer, total int) *progress {
	return &progress{w: w, total: total, start: time.Now()}
}

func (p *progress) update(done int, sum *Summary) {
	if p.w == nil || (time.Since(p.last) < 100*time.Millisecond && done < p.total) {
		return
	}
	p.last = time.Now()
	const width = 30
	filled := 0
	if p.total > 0 {
		filled = done * width / p.total
	}
	rate := float64(done-sum.Resumed) / time.Since(p.start).Seconds()
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d  ok %d  failed %d  invalid %d  %.0f/s ",
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled),
		done, p.total, sum.Succeeded, sum.Failed, sum.Invalid, rate)
}

func (p *progress) finish() {
	if p.w != nil {
		fmt.Fprintln(p.w)
	}
}
