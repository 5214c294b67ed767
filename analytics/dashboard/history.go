package dashboard

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/switchboard-llm/switchboard/analytics/stats"
	"github.com/switchboard-llm/switchboard/config"
)

// Analytics says whether ClickHouse answered; when it did not, telemetry
// waits in the NATS stream TELEMETRY (Buffered messages not yet loaded).
type Analytics struct {
	Available bool   `json:"available"`
	Message   string `json:"message,omitempty"`
	// Buffered counts telemetry messages not yet loaded into ClickHouse
	// (-1 when NATS could not tell).
	Buffered int64 `json:"buffered"`
}

// Window is the time range of an answer.
type Window struct {
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	SinceS int64     `json:"since_s"`
}

// analytics connects to ClickHouse, or describes why it cannot.
func (d *Dashboard) analytics(ctx context.Context) (driver.Conn, Analytics) {
	buffered := d.telemetryBacklog(ctx)
	conn, err := d.ch.get(ctx)
	if err != nil {
		return nil, Analytics{Buffered: buffered, Message: fmt.Sprintf("analytics is buffering: ClickHouse is not reachable (%v); telemetry waits in the NATS stream TELEMETRY and is loaded once an ingester reaches ClickHouse", err)}
	}
	return conn, Analytics{Available: true, Buffered: buffered}
}

// unavailable turns a failed query into the answer's analytics status.
func unavailable(a Analytics, err error) Analytics {
	a.Available = false
	a.Message = fmt.Sprintf("analytics is buffering: the ClickHouse query failed (%v); telemetry waits in the NATS stream TELEMETRY", err)
	return a
}

func window(q query) Window {
	return Window{From: q.from, To: q.to, SinceS: int64(q.since / time.Second)}
}

// finite maps NaN and ±Inf (quantiles of nothing) to 0 so JSON can carry it.
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// Totals are the window's job outcomes (completions).
type Totals struct {
	Requests     uint64  `json:"requests"`
	Succeeded    uint64  `json:"succeeded"`
	Failed       uint64  `json:"failed"`
	Fallbacks    uint64  `json:"fallbacks"`
	SuccessRate  float64 `json:"success_rate"`
	FallbackRate float64 `json:"fallback_rate"`
	ErrorRate    float64 `json:"error_rate"`
	RPS          float64 `json:"requests_per_s"`
	P50MS        float64 `json:"p50_ms"`
	P95MS        float64 `json:"p95_ms"`
	P99MS        float64 `json:"p99_ms"`
	InputTokens  uint64  `json:"input_tokens"`
	OutputTokens uint64  `json:"output_tokens"`
	CostUSD      float64 `json:"cost_usd"`
	UnknownCost  uint64  `json:"unknown_cost_rows"`
	Attempts     uint64  `json:"attempts"`
}

// Point is one bucket of the overview's time series.
type Point struct {
	T         time.Time `json:"t"`
	Requests  uint64    `json:"requests"`
	Succeeded uint64    `json:"succeeded"`
	Failed    uint64    `json:"failed"`
	Fallbacks uint64    `json:"fallbacks"`
	P50MS     float64   `json:"p50_ms"`
	P95MS     float64   `json:"p95_ms"`
	P99MS     float64   `json:"p99_ms"`
	TTFTP50MS float64   `json:"ttft_p50_ms"`
	TTFTP95MS float64   `json:"ttft_p95_ms"`
	CostUSD   float64   `json:"cost_usd"`
}

// Overview is GET /api/overview.
type Overview struct {
	Analytics Analytics `json:"analytics"`
	Window    Window    `json:"window"`
	BucketS   int64     `json:"bucket_s"`
	Totals    Totals    `json:"totals"`
	Series    []Point   `json:"series"`
}

// bucketFor picks a bucket (whole minutes) giving at most ~60 points.
func bucketFor(since time.Duration) int64 {
	mins := int64(since/time.Minute+59) / 60
	for _, m := range []int64{1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440} {
		if m >= mins {
			return m * 60
		}
	}
	return 1440 * 60
}

const sqlTotals = `SELECT countMerge(requests), sumMerge(succeeded), sumMerge(fallbacks),
	quantilesMerge(0.5, 0.95, 0.99)(latency), sumMerge(in_tokens), sumMerge(out_tokens),
	sumMerge(cost), sumMerge(unknown_cost)
FROM completions_1m WHERE minute >= ? AND minute <= ?`

const sqlAttemptCount = `SELECT countMerge(calls) FROM attempts_1m WHERE minute >= ? AND minute <= ?`

// sqlSeries and sqlTTFT take the bucket size in seconds as a literal.
const sqlSeries = `SELECT toUInt64(intDiv(toUInt32(minute), %d) * %d) AS b, countMerge(requests), sumMerge(succeeded),
	sumMerge(fallbacks), quantilesMerge(0.5, 0.95, 0.99)(latency), sumMerge(cost)
FROM completions_1m WHERE minute >= ? AND minute <= ? GROUP BY b ORDER BY b`

const sqlTTFT = `SELECT toUInt64(intDiv(toUInt32(ts), %d) * %d) AS b, quantiles(0.5, 0.95)(ttft_ms)
FROM completions FINAL WHERE ts >= ? AND ts <= ? AND ttft_ms > 0 GROUP BY b ORDER BY b`

func (d *Dashboard) overview(ctx context.Context, q query) (any, error) {
	conn, a := d.analytics(ctx)
	out := &Overview{Analytics: a, Window: window(q), BucketS: bucketFor(q.since), Series: []Point{}}
	if conn == nil {
		return out, nil
	}
	if err := d.fillOverview(ctx, conn, q, out); err != nil {
		out.Analytics = unavailable(a, err)
	}
	return out, nil
}

func (d *Dashboard) fillOverview(ctx context.Context, conn driver.Conn, q query, out *Overview) error {
	t := &out.Totals
	var quant []float64
	if err := conn.QueryRow(ctx, sqlTotals, q.from, q.to).Scan(&t.Requests, &t.Succeeded, &t.Fallbacks, &quant,
		&t.InputTokens, &t.OutputTokens, &t.CostUSD, &t.UnknownCost); err != nil {
		return fmt.Errorf("totals: %w", err)
	}
	if len(quant) == 3 {
		t.P50MS, t.P95MS, t.P99MS = finite(quant[0]), finite(quant[1]), finite(quant[2])
	}
	if err := conn.QueryRow(ctx, sqlAttemptCount, q.from, q.to).Scan(&t.Attempts); err != nil {
		return fmt.Errorf("attempts: %w", err)
	}
	t.Failed = t.Requests - t.Succeeded
	if t.Requests > 0 {
		n := float64(t.Requests)
		t.SuccessRate, t.FallbackRate, t.ErrorRate = float64(t.Succeeded)/n, float64(t.Fallbacks)/n, float64(t.Failed)/n
	}
	t.RPS = float64(t.Requests) / q.since.Seconds()

	step := out.BucketS
	points := map[int64]*Point{}
	first := q.from.Unix() / step * step
	for b := first; b <= q.to.Unix(); b += step {
		points[b] = &Point{T: time.Unix(b, 0).UTC()}
	}
	rows, err := conn.Query(ctx, fmt.Sprintf(sqlSeries, step, step), q.from, q.to)
	if err != nil {
		return fmt.Errorf("series: %w", err)
	}
	for rows.Next() {
		var b uint64
		var p Point
		var quant []float64
		if err := rows.Scan(&b, &p.Requests, &p.Succeeded, &p.Fallbacks, &quant, &p.CostUSD); err != nil {
			rows.Close()
			return fmt.Errorf("series: %w", err)
		}
		if pt, ok := points[int64(b)]; ok {
			pt.Requests, pt.Succeeded, pt.Fallbacks, pt.CostUSD = p.Requests, p.Succeeded, p.Fallbacks, p.CostUSD
			pt.Failed = p.Requests - p.Succeeded
			if len(quant) == 3 {
				pt.P50MS, pt.P95MS, pt.P99MS = finite(quant[0]), finite(quant[1]), finite(quant[2])
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("series: %w", err)
	}
	rows, err = conn.Query(ctx, fmt.Sprintf(sqlTTFT, step, step), q.from, q.to)
	if err != nil {
		return fmt.Errorf("ttft series: %w", err)
	}
	for rows.Next() {
		var b uint64
		var quant []float64
		if err := rows.Scan(&b, &quant); err != nil {
			rows.Close()
			return fmt.Errorf("ttft series: %w", err)
		}
		if pt, ok := points[int64(b)]; ok && len(quant) == 2 {
			pt.TTFTP50MS, pt.TTFTP95MS = finite(quant[0]), finite(quant[1])
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("ttft series: %w", err)
	}
	for b := first; b <= q.to.Unix(); b += step {
		out.Series = append(out.Series, *points[b])
	}
	return nil
}

// statsRows runs analytics/stats for the window.
func statsRows(ctx context.Context, conn driver.Conn, q query, by string) ([]stats.Row, error) {
	rows, err := stats.Query(ctx, conn, stats.Options{Since: q.since, By: by, Now: q.to})
	if err != nil {
		return nil, err
	}
	for i := range rows {
		r := &rows[i]
		r.P50MS, r.P95MS, r.P99MS = finite(r.P50MS), finite(r.P95MS), finite(r.P99MS)
	}
	if rows == nil {
		rows = []stats.Row{}
	}
	return rows, nil
}

// ModelRow is one provider/model's calls with its breaker state.
type ModelRow struct {
	stats.Row
	Provider string `json:"provider"`
	Model    string `json:"model"`
	Breaker  string `json:"breaker,omitempty"`
}

// ErrorRow counts failed calls by status code and error type.
type ErrorRow struct {
	Provider   string `json:"provider"`
	Model      string `json:"model"`
	StatusCode uint16 `json:"status_code"`
	ErrorType  string `json:"error_type"`
	Calls      uint64 `json:"calls"`
}

// Providers is GET /api/providers: per provider call (attempts).
type Providers struct {
	Analytics Analytics   `json:"analytics"`
	Window    Window      `json:"window"`
	Providers []stats.Row `json:"providers"`
	Models    []ModelRow  `json:"models"`
	Errors    []ErrorRow  `json:"errors"`
}

const sqlErrors = `SELECT provider, model, status_code, error_type, countMerge(calls) AS n
FROM attempt_errors_1m WHERE minute >= ? AND minute <= ?
GROUP BY provider, model, status_code, error_type ORDER BY n DESC, provider, model, status_code, error_type`

const sqlModels = `SELECT provider, model FROM attempts_1m WHERE minute >= ? AND minute <= ?
GROUP BY provider, model`

func (d *Dashboard) providers(ctx context.Context, q query) (any, error) {
	conn, a := d.analytics(ctx)
	out := &Providers{Analytics: a, Window: window(q), Providers: []stats.Row{}, Models: []ModelRow{}, Errors: []ErrorRow{}}
	if conn == nil {
		// Live breaker states still show.
		for _, pm := range configTargets(d.opts.Config()) {
			out.Models = append(out.Models, ModelRow{Row: stats.Row{Key: pm[0] + "/" + pm[1]}, Provider: pm[0], Model: pm[1], Breaker: d.breaker(pm[0], pm[1])})
		}
		return out, nil
	}
	if err := d.fillProviders(ctx, conn, q, out); err != nil {
		out.Analytics = unavailable(a, err)
	}
	return out, nil
}

func (d *Dashboard) fillProviders(ctx context.Context, conn driver.Conn, q query, out *Providers) error {
	var err error
	if out.Providers, err = statsRows(ctx, conn, q, stats.ByProvider); err != nil {
		return err
	}
	models, err := statsRows(ctx, conn, q, stats.ByModel)
	if err != nil {
		return err
	}
	// The model key is provider/model; split it with the pair itself.
	pairs := map[string][2]string{}
	rows, err := conn.Query(ctx, sqlModels, q.from, q.to)
	if err != nil {
		return fmt.Errorf("models: %w", err)
	}
	for rows.Next() {
		var p, m string
		if err := rows.Scan(&p, &m); err != nil {
			rows.Close()
			return fmt.Errorf("models: %w", err)
		}
		pairs[p+"/"+m] = [2]string{p, m}
	}
	rows.Close()
	seen := map[string]bool{}
	for _, r := range models {
		pm := pairs[r.Key]
		seen[r.Key] = true
		out.Models = append(out.Models, ModelRow{Row: r, Provider: pm[0], Model: pm[1], Breaker: d.breaker(pm[0], pm[1])})
	}
	for _, pm := range configTargets(d.opts.Config()) {
		if k := pm[0] + "/" + pm[1]; !seen[k] {
			out.Models = append(out.Models, ModelRow{Row: stats.Row{Key: k}, Provider: pm[0], Model: pm[1], Breaker: d.breaker(pm[0], pm[1])})
		}
	}
	rows, err = conn.Query(ctx, sqlErrors, q.from, q.to)
	if err != nil {
		return fmt.Errorf("errors: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e ErrorRow
		if err := rows.Scan(&e.Provider, &e.Model, &e.StatusCode, &e.ErrorType, &e.Calls); err != nil {
			return fmt.Errorf("errors: %w", err)
		}
		out.Errors = append(out.Errors, e)
	}
	return rows.Err()
}

func (d *Dashboard) breaker(provider, model string) string {
	if d.opts.Breakers == nil || provider == "" {
		return ""
	}
	return d.opts.Breakers(provider, model)
}

// configTargets lists the provider/model pairs the config routes to.
func configTargets(cfg *config.Config) [][2]string {
	seen := map[[2]string]bool{}
	var out [][2]string
	for _, r := range cfg.Routes {
		for _, t := range r.Targets {
			pm := [2]string{t.Provider, t.Model}
			if !seen[pm] {
				seen[pm] = true
				out = append(out, pm)
			}
		}
	}
	return out
}

// Served counts a route's jobs by the target that finished them.
type Served struct {
	Provider string `json:"provider"`
	Model    string `json:"model"`
	Jobs     uint64 `json:"jobs"`
}

// RouteRow is one route: its config and its jobs (completions).
type RouteRow struct {
	stats.Row
	Name     string   `json:"name"`
	Strategy string   `json:"strategy,omitempty"`
	Targets  []string `json:"targets"`
	Served   []Served `json:"served"`
}

// Routes is GET /api/routes.
type Routes struct {
	Analytics Analytics  `json:"analytics"`
	Window    Window     `json:"window"`
	Routes    []RouteRow `json:"routes"`
}

const sqlServed = `SELECT route, provider, model, countMerge(requests) AS n
FROM completions_1m WHERE minute >= ? AND minute <= ?
GROUP BY route, provider, model ORDER BY route, n DESC, provider, model`

func (d *Dashboard) routes(ctx context.Context, q query) (any, error) {
	conn, a := d.analytics(ctx)
	out := &Routes{Analytics: a, Window: window(q), Routes: []RouteRow{}}
	cfg := d.opts.Config()
	byName := map[string]*RouteRow{}
	add := func(name string) *RouteRow {
		if r, ok := byName[name]; ok {
			return r
		}
		out.Routes = append(out.Routes, RouteRow{Row: stats.Row{Key: name}, Name: name, Targets: []string{}, Served: []Served{}})
		r := &out.Routes[len(out.Routes)-1]
		byName[name] = r
		return r
	}
	out.Routes = make([]RouteRow, 0, len(cfg.Routes)+8)
	for _, rt := range cfg.Routes {
		r := add(rt.Name)
		r.Strategy = rt.Strategy
		if r.Strategy == "" {
			r.Strategy = "ordered"
		}
		for _, t := range rt.Targets {
			r.Targets = append(r.Targets, t.Provider+"/"+t.Model)
		}
	}
	if conn == nil {
		return out, nil
	}
	if err := d.fillRoutes(ctx, conn, q, add); err != nil {
		out.Analytics = unavailable(a, err)
	}
	return out, nil
}

func (d *Dashboard) fillRoutes(ctx context.Context, conn driver.Conn, q query, add func(string) *RouteRow) error {
	rows, err := statsRows(ctx, conn, q, stats.ByRoute)
	if err != nil {
		return err
	}
	for _, r := range rows {
		rr := add(r.Key)
		rr.Row = r
	}
	res, err := conn.Query(ctx, sqlServed, q.from, q.to)
	if err != nil {
		return fmt.Errorf("served: %w", err)
	}
	defer res.Close()
	for res.Next() {
		var route string
		var s Served
		if err := res.Scan(&route, &s.Provider, &s.Model, &s.Jobs); err != nil {
			return fmt.Errorf("served: %w", err)
		}
		rr := add(route)
		rr.Served = append(rr.Served, s)
	}
	return res.Err()
}

// TenantRow is one tenant's jobs and spend against its budget. Spend
// (SpentDayUSD, SpentMonthUSD) is the budget counters' view, the one
// budgets are enforced on; CostUSD is ClickHouse's figure for the window.
type TenantRow struct {
	stats.Row
	Tenant        string  `json:"tenant"`
	SpentDayUSD   float64 `json:"spent_day_usd"`
	SpentMonthUSD float64 `json:"spent_month_usd"`
	DailyUSD      float64 `json:"daily_budget_usd"`
	MonthlyUSD    float64 `json:"monthly_budget_usd"`
	// Budget names the budget entry that applies ("" none, "*" the default).
	Budget string `json:"budget,omitempty"`
}

// Tenants is GET /api/tenants.
type Tenants struct {
	Analytics Analytics   `json:"analytics"`
	Window    Window      `json:"window"`
	Tenants   []TenantRow `json:"tenants"`
}

func (d *Dashboard) tenants(ctx context.Context, q query) (any, error) {
	conn, a := d.analytics(ctx)
	out := &Tenants{Analytics: a, Window: window(q), Tenants: []TenantRow{}}
	var rows []stats.Row
	if conn != nil {
		var err error
		if rows, err = statsRows(ctx, conn, q, stats.ByTenant); err != nil {
			out.Analytics = unavailable(a, err)
		}
	}
	cfg := d.opts.Config()
	seen := map[string]bool{}
	for _, r := range rows {
		seen[r.Key] = true
	}
	for _, b := range cfg.Budgets {
		if b.Tenant != "*" && !seen[b.Tenant] {
			rows = append(rows, stats.Row{Key: b.Tenant})
			seen[b.Tenant] = true
		}
	}
	for _, r := range rows {
		t := TenantRow{Row: r, Tenant: r.Key}
		if b, ok := cfg.BudgetFor(r.Key); ok {
			t.DailyUSD, t.MonthlyUSD, t.Budget = b.DailyUSD, b.MonthlyUSD, b.Tenant
		}
		if d.opts.Spend != nil {
			t.SpentDayUSD, t.SpentMonthUSD = d.opts.Spend(r.Key, q.to)
		}
		out.Tenants = append(out.Tenants, t)
	}
	sort.SliceStable(out.Tenants, func(i, j int) bool { return out.Tenants[i].CostUSD > out.Tenants[j].CostUSD })
	return out, nil
}
