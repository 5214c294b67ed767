// Package budget enforces tenants' daily and monthly USD budgets. Spend is
// counted from Results' cost_usd into the JetStream KV bucket sb_spend, once
// per job id, by a durable consumer of the RESULTS stream that any number of
// processes may run; routing reads the counters from a watched cache
// (route.Budgets) and reroutes or rejects a tenant over budget.
//
// Keys: s.<tenant>.d.<YYYYMMDD> and s.<tenant>.m.<YYYYMM> hold
// {"usd": total, "ids": [last job ids]} (per-key TTL 49 h and 63 days from
// their last write); j.<job_id> marks a job whose cost was counted, kept as
// long as its Result can be (re)delivered: twice the RESULTS stream's max
// age (per-key TTL). Days and months are UTC.
//
// Counting costs JetStream work per priced Result, so it runs only while
// the config has a budget (Configure): with none, the consumer is not read
// at all. When a budget is added, the durable consumer resumes where it
// stopped, or (created for the first time) counts every Result RESULTS
// still stores (limits.results_max_age), so the day's spend is complete.
package budget

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-llm/switchboard/broker/config"
	"github.com/switchboard-llm/switchboard/broker/streams"
	"github.com/switchboard-llm/switchboard/internal/kvstate"
	"github.com/switchboard-llm/switchboard/internal/supervise"
	"github.com/switchboard-llm/switchboard/schemas"
)

// Bucket is the KV bucket holding spend counters.
const Bucket = "sb_spend"

// Consumer is the durable consumer of RESULTS that counts spend.
const Consumer = "budget-spend"

// recentIDs is how many job ids a counter remembers, to finish a count
// interrupted between its writes without counting twice.
const recentIDs = 64

// MarkerTTL returns how long a counted job id is remembered when RESULTS
// keeps Results for resultsMaxAge: a Result can be redelivered to the
// counter (or replayed to a re-created consumer) only while it is stored,
// and a second Result of the same job (re-run after a worker crash) comes
// minutes after the first; twice the max age covers both.
func MarkerTTL(resultsMaxAge time.Duration) time.Duration {
	if resultsMaxAge <= 0 {
		resultsMaxAge = config.DefaultResultsMaxAge
	}
	return max(2*resultsMaxAge, time.Minute)
}

// Counter TTLs: long enough to read the whole day or month (a UTC day is
// behind a local one by up to a day).
const (
	dayTTL   = 49 * time.Hour
	monthTTL = 63 * 24 * time.Hour
)

const (
	markerPending = "pending"
	markerDone    = "done"
)

// counter is a spend total in nano-USD (integers add up exactly: 0.6 + 0.3
// + 0.1 is 1, not 0.9999999999999999).
type counter struct {
	NanoUSD int64    `json:"nano_usd"`
	IDs     []string `json:"ids,omitempty"`
}

func toNano(usd float64) int64 { return int64(math.Round(usd * 1e9)) }

// pullExpiry bounds one pull request of the counter; its heartbeats (half
// of it) tell a dead server or consumer within twice that.
const pullExpiry = 10 * time.Second

// Tracker counts and reads tenants' spend.
type Tracker struct {
	// Log receives Run's restarts (default slog.Default()); set it before
	// Run.
	Log       *slog.Logger
	js        jetstream.JetStream
	kv        jetstream.KeyValue
	cache     *kvstate.Cache
	now       func() time.Time
	markerTTL atomic.Int64 // time.Duration
	// off is set while the config has no budget (Configure); wake tells
	// Run that it changed.
	off  atomic.Bool
	wake chan struct{}
}

// Open opens the spend bucket and watches its counters until ctx ends.
func Open(ctx context.Context, js jetstream.JetStream, now func() time.Time) (*Tracker, error) {
	kv, err := kvstate.Bucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:         Bucket,
		Description:    "switchboard: USD spend per tenant per day and month",
		History:        1,
		LimitMarkerTTL: time.Minute,
	})
	if err != nil {
		return nil, err
	}
	cache, err := kvstate.Watch(ctx, kv, "s.>", nil)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	t := &Tracker{js: js, kv: kv, cache: cache, now: now, wake: make(chan struct{}, 1)}
	t.markerTTL.Store(int64(MarkerTTL(0)))
	return t, nil
}

func tenantToken(tenant string) string {
	if tenant == "" {
		return "-"
	}
	return tenant
}

func dayKey(tenant string, t time.Time) string {
	return kvstate.Key("s", tenantToken(tenant), "d", t.UTC().Format("20060102"))
}

func monthKey(tenant string, t time.Time) string {
	return kvstate.Key("s", tenantToken(tenant), "m", t.UTC().Format("200601"))
}

// Add counts usd of job jobID for tenant at time at, once: a job id already
// counted (a redelivered or duplicate Result) changes nothing and returns
// false.
func (t *Tracker) Add(ctx context.Context, jobID, tenant string, usd float64, at time.Time) (bool, error) {
	if usd <= 0 {
		return false, nil
	}
	marker := kvstate.Key("j", jobID)
	markerTTL := time.Duration(t.markerTTL.Load())
	if _, err := t.kv.Create(ctx, marker, []byte(markerPending), jetstream.KeyTTL(markerTTL)); err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return false, fmt.Errorf("spend marker %s: %w", jobID, err)
		}
		e, gerr := t.kv.Get(ctx, marker)
		if gerr != nil {
			return false, fmt.Errorf("spend marker %s: %w", jobID, gerr)
		}
		if string(e.Value()) == markerDone {
			return false, nil
		}
		// An earlier count stopped half-way: finish it (the counters'
		// recent ids say which half was done).
	}
	applied := false
	for _, k := range []struct {
		key string
		ttl time.Duration
	}{{dayKey(tenant, at), dayTTL}, {monthKey(tenant, at), monthTTL}} {
		val, rev, err := kvstate.ModifyTTL(ctx, t.js, t.kv, k.key, k.ttl, func(cur []byte, exists bool) ([]byte, bool, error) {
			var c counter
			if exists {
				if err := json.Unmarshal(cur, &c); err != nil {
					c = counter{}
				}
			}
			if slices.Contains(c.IDs, jobID) {
				return nil, false, nil
			}
			c.NanoUSD += toNano(usd)
			c.IDs = append(c.IDs, jobID)
			if len(c.IDs) > recentIDs {
				c.IDs = c.IDs[len(c.IDs)-recentIDs:]
			}
			b, err := json.Marshal(c)
			return b, true, err
		})
		if err != nil {
			return applied, fmt.Errorf("spend of %s: %w", jobID, err)
		}
		if val != nil {
			t.cache.Set(k.key, val, rev)
			applied = true
		}
	}
	if _, err := kvstate.PutTTL(ctx, t.js, t.kv, marker, []byte(markerDone), markerTTL); err != nil {
		return applied, fmt.Errorf("spend marker %s: %w", jobID, err)
	}
	return applied, nil
}

func (t *Tracker) read(key string) float64 {
	e, ok := t.cache.Get(key)
	if !ok {
		return 0
	}
	var c counter
	if json.Unmarshal(e.Value, &c) != nil {
		return 0
	}
	return float64(c.NanoUSD) / 1e9
}

// Spent returns tenant's spend in the UTC day and month holding at.
func (t *Tracker) Spent(tenant string, at time.Time) (day, month float64) {
	return t.read(dayKey(tenant, at)), t.read(monthKey(tenant, at))
}

// Exceeded reports whether tenant is at or over its daily or monthly budget
// under cfg (route.Budgets). Tenants without a budget never are.
func (t *Tracker) Exceeded(cfg *config.Config, tenant string) (string, bool) {
	b, ok := cfg.BudgetFor(tenant)
	if !ok {
		return "", false
	}
	now := t.now()
	day, month := t.Spent(tenant, now)
	if b.DailyUSD > 0 && toNano(day) >= toNano(b.DailyUSD) {
		return fmt.Sprintf("daily budget of $%.2f reached ($%.4f spent today, UTC)", b.DailyUSD, day), true
	}
	if b.MonthlyUSD > 0 && toNano(month) >= toNano(b.MonthlyUSD) {
		return fmt.Sprintf("monthly budget of $%.2f reached ($%.4f spent this month, UTC)", b.MonthlyUSD, month), true
	}
	return "", false
}

// Configure tells the tracker the live config (route.Resolver calls it on
// start and on every reload): spend is counted only while cfg has a
// budget. Until the first call it is counted.
func (t *Tracker) Configure(cfg *config.Config) {
	off := cfg == nil || len(cfg.Budgets) == 0
	if t.off.Swap(off) != off {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}

// Run counts the cost of every Result on the RESULTS stream until ctx ends,
// through the durable consumer budget-spend (shared by every process that
// runs it), while the config has a budget (Configure). A Result is acked
// once its cost is counted. Run returns only when ctx ends: a consumer
// error (a missed heartbeat in a node outage, a deleted consumer, a closed
// iterator) re-creates the consumer after a backoff, logged on t.Log.
func (t *Tracker) Run(ctx context.Context, js jetstream.JetStream) error {
	for {
		for t.off.Load() {
			select {
			case <-ctx.Done():
				return nil
			case <-t.wake:
			}
		}
		// Count until ctx ends or the last budget is removed.
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for !t.off.Load() {
				select {
				case <-runCtx.Done():
					return
				case <-t.wake:
				}
			}
			cancel()
		}()
		supervise.Run(runCtx, t.Log, "budget spend counter", func(ctx context.Context) error {
			return t.consume(ctx, js)
		})
		cancel()
		<-done
		if ctx.Err() != nil {
			return nil
		}
	}
}

// consume counts Results until ctx ends (nil) or the consumer fails.
func (t *Tracker) consume(ctx context.Context, js jetstream.JetStream) error {
	cons, err := js.CreateOrUpdateConsumer(ctx, streams.StreamResults, jetstream.ConsumerConfig{
		Durable:       Consumer,
		Description:   "counts results' cost into tenant budgets",
		FilterSubject: "llm.results.>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 1024,
		MaxDeliver:    -1,
	})
	if err != nil {
		return fmt.Errorf("provision consumer %s: %w", Consumer, err)
	}
	stream, err := js.Stream(ctx, streams.StreamResults)
	if err != nil {
		return fmt.Errorf("results stream: %w", err)
	}
	t.markerTTL.Store(int64(MarkerTTL(stream.CachedInfo().Config.MaxAge)))
	it, err := cons.Messages(jetstream.PullExpiry(pullExpiry))
	if err != nil {
		return fmt.Errorf("consume results: %w", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("consume results: %w", err)
		}
		t.handle(ctx, msg)
	}
}

func (t *Tracker) handle(ctx context.Context, msg jetstream.Msg) {
	res, err := schemas.DecodeResult(msg.Data())
	if err != nil || res.CostUSD == nil || *res.CostUSD <= 0 {
		_ = msg.Ack()
		return
	}
	at := t.now()
	if md, err := msg.Metadata(); err == nil {
		at = md.Timestamp
	}
	tenant := res.Metadata[schemas.MetaTenant]
	if _, err := t.Add(ctx, res.ID, tenant, *res.CostUSD, at); err != nil {
		_ = msg.NakWithDelay(time.Second)
		return
	}
	_ = msg.Ack()
}
