// Package stats answers `switchboard stats`: requests, success and fallback
// rates, latency percentiles, tokens and cost grouped by provider, model,
// route, tenant or status, read from the per-minute rollups.
package stats

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ErrInvalid wraps bad stats options.
var ErrInvalid = errors.New("invalid stats options")

// Groupings.
const (
	ByProvider = "provider"
	ByModel    = "model"
	ByRoute    = "route"
	ByTenant   = "tenant"
	ByStatus   = "status"
)

// Formats.
const (
	FormatTable = "table"
	FormatJSON  = "json"
	FormatCSV   = "csv"
)

// Options select what Query reports.
type Options struct {
	// Since is how far back to look (rounded down to whole minutes).
	Since time.Duration
	// By is provider, model, route, tenant or status.
	By string
	// Now is the end of the window (default time.Now()).
	Now time.Time
}

// Validate checks the options.
func (o Options) Validate() error {
	if o.Since <= 0 {
		return fmt.Errorf("%w: --since must be positive, got %s", ErrInvalid, o.Since)
	}
	switch o.By {
	case ByProvider, ByModel, ByRoute, ByTenant, ByStatus:
	default:
		return fmt.Errorf("%w: --by %q must be provider, model, route, tenant or status", ErrInvalid, o.By)
	}
	return nil
}

// Row is one group's figures. By provider and model, a request is one
// provider call (attempts: retries and fallbacks included, cost is what was
// spent); by route, tenant and status, a request is one job outcome
// (completions; a job replayed from the DLQ counts once per run).
type Row struct {
	Key          string  `json:"key"`
	Requests     uint64  `json:"requests"`
	Succeeded    uint64  `json:"succeeded"`
	SuccessRate  float64 `json:"success_rate"`
	Fallbacks    uint64  `json:"fallbacks"`
	FallbackRate float64 `json:"fallback_rate"`
	P50MS        float64 `json:"p50_ms"`
	P95MS        float64 `json:"p95_ms"`
	P99MS        float64 `json:"p99_ms"`
	InputTokens  uint64  `json:"input_tokens"`
	OutputTokens uint64  `json:"output_tokens"`
	// CostUSD sums the rows whose price is known; UnknownCost counts the
	// rows whose price is unknown (their cost is not in CostUSD).
	CostUSD     float64 `json:"cost_usd"`
	UnknownCost uint64  `json:"unknown_cost_rows"`
}

// Query reads the rollups for the window [now-since, now].
func Query(ctx context.Context, conn driver.Conn, o Options) ([]Row, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	from := now.Add(-o.Since).UTC().Truncate(time.Minute)
	rows, err := conn.Query(ctx, SQL(o.By), from, now.UTC())
	if err != nil {
		return nil, fmt.Errorf("stats query: %w", err)
	}
	defer rows.Close()
	var out []Row
	for rows.Next() {
		var r Row
		var q []float64
		if err := rows.Scan(&r.Key, &r.Requests, &r.Succeeded, &r.Fallbacks, &q, &r.InputTokens, &r.OutputTokens, &r.CostUSD, &r.UnknownCost); err != nil {
			return nil, fmt.Errorf("stats query: %w", err)
		}
		if len(q) == 3 {
			r.P50MS, r.P95MS, r.P99MS = q[0], q[1], q[2]
		}
		if r.Requests > 0 {
			r.SuccessRate = float64(r.Succeeded) / float64(r.Requests)
			r.FallbackRate = float64(r.Fallbacks) / float64(r.Requests)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// SQL is the rollup query of a grouping; parameters are the window's start
// and end. It runs on ClickHouse 18.16 and current releases.
func SQL(by string) string {
	key, table, req, ok, fb := by, "completions_1m", "requests", "succeeded", "fallbacks"
	switch by {
	case ByProvider, ByModel:
		table, req, ok, fb = "attempts_1m", "calls", "ok_calls", "fallback_calls"
		if by == ByModel {
			key = "concat(provider, '/', model)"
		}
	}
	return fmt.Sprintf(`SELECT %s AS key,
	countMerge(%s) AS requests,
	sumMerge(%s) AS ok,
	sumMerge(%s) AS fb,
	quantilesMerge(0.5, 0.95, 0.99)(latency) AS q,
	sumMerge(in_tokens) AS tin,
	sumMerge(out_tokens) AS tout,
	sumMerge(cost) AS usd,
	sumMerge(unknown_cost) AS unknown
FROM %s
WHERE minute >= ? AND minute <= ?
GROUP BY key
ORDER BY requests DESC, key`, key, req, ok, fb, table)
}

var header = []string{"requests", "success_rate", "fallback_rate", "p50_ms", "p95_ms", "p99_ms", "input_tokens", "output_tokens", "cost_usd", "unknown_cost_rows"}

// Write renders rows as a table, JSON or CSV; by names the key column.
func Write(w io.Writer, rows []Row, by, format string) error {
	switch format {
	case FormatJSON:
		if rows == nil {
			rows = []Row{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	case FormatCSV:
		cw := csv.NewWriter(w)
		if err := cw.Write(append([]string{by}, header...)); err != nil {
			return err
		}
		for _, r := range rows {
			if err := cw.Write(fields(r, false)); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	case FormatTable, "":
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, strings.ToUpper(by)+"\t"+strings.ToUpper(strings.Join(header, "\t"))+"\t")
		var unknown uint64
		for _, r := range rows {
			fmt.Fprintln(tw, strings.Join(fields(r, true), "\t")+"\t")
			unknown += r.UnknownCost
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(rows) == 0 {
			_, err := fmt.Fprintln(w, "no telemetry in this window")
			return err
		}
		if unknown > 0 {
			_, err := fmt.Fprintf(w, "* %d rows have no known price; their cost is not included (add them under models: or analytics.prices_file)\n", unknown)
			return err
		}
		return nil
	}
	return fmt.Errorf("%w: --format %q must be table, json or csv", ErrInvalid, format)
}

func fields(r Row, human bool) []string {
	key := r.Key
	if human && key == "" {
		key = "(none)"
	}
	f := func(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }
	cost := f(r.CostUSD, 6)
	if human && r.UnknownCost > 0 {
		cost += "*"
	}
	rate := func(v float64) string {
		if human {
			return f(v*100, 1) + "%"
		}
		return f(v, 4)
	}
	return []string{key, strconv.FormatUint(r.Requests, 10), rate(r.SuccessRate), rate(r.FallbackRate),
		f(r.P50MS, 1), f(r.P95MS, 1), f(r.P99MS, 1),
		strconv.FormatUint(r.InputTokens, 10), strconv.FormatUint(r.OutputTokens, 10), cost,
		strconv.FormatUint(r.UnknownCost, 10)}
}
