package workers

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-llm/switchboard/config"
)

// Fleet runs one Pool per provider of the live config and follows its
// reloads: a provider added gets a pool, one removed is drained and
// stopped, one whose settings changed (concurrency, timeout, endpoint,
// keys) is drained and started again with them (its consumers are
// provisioned anew, so a new concurrency takes effect on them); the others
// get SetConfig.
type Fleet struct {
	build func(ctx context.Context, cfg *config.Config, p config.Provider) (*Pool, error)
	log   *slog.Logger
	only  string // Only

	mu      sync.Mutex
	ctx     context.Context
	pending *config.Config // applied before Run started
	pools   map[string]*fleetPool
	wg      sync.WaitGroup
	errs    chan error
}

type fleetPool struct {
	pool   *Pool
	prov   config.Provider
	cancel context.CancelFunc
	done   chan struct{}
}

// NewFleet returns a Fleet building pools with build.
func NewFleet(build func(ctx context.Context, cfg *config.Config, p config.Provider) (*Pool, error), log *slog.Logger) *Fleet {
	return &Fleet{build: build, log: log, pools: map[string]*fleetPool{}, errs: make(chan error, 1)}
}

// Only makes the fleet serve provider name alone (`worker --provider`):
// its pool still follows the provider's settings; while the config lacks
// it, the fleet runs no pool and waits for it to come back. Call it before
// Run.
func (f *Fleet) Only(name string) { f.only = name }

// Run starts the pools of cfg and runs until ctx ends (then every pool
// drains) or a pool fails, whose error it returns.
func (f *Fleet) Run(ctx context.Context, cfg *config.Config) error {
	f.mu.Lock()
	f.ctx = ctx
	if f.pending != nil {
		cfg = f.pending
	}
	f.mu.Unlock()
	if err := f.apply(cfg); err != nil {
		return err
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-f.errs:
	}
	f.mu.Lock()
	for _, fp := range f.pools {
		fp.cancel()
	}
	f.mu.Unlock()
	f.wg.Wait()
	return err
}

// Apply follows a reloaded config (see Fleet). A pool that cannot be
// built is logged and the others go on.
func (f *Fleet) Apply(cfg *config.Config) {
	if err := f.apply(cfg); err != nil {
		f.log.Error("worker pools after config reload", "err", err)
	}
}

func (f *Fleet) apply(cfg *config.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ctx == nil {
		f.pending = cfg
		return nil
	}
	if f.ctx.Err() != nil {
		return nil
	}
	want := map[string]config.Provider{}
	for _, p := range cfg.Providers {
		if f.only == "" || p.Name == f.only {
			want[p.Name] = p
		}
	}
	if _, ok := want[f.only]; f.only != "" && !ok {
		f.log.Warn("the config has no provider "+f.only+": this worker runs no pool until it has", "provider", f.only)
	}
	var errs []error
	for name, fp := range f.pools {
		p, ok := want[name]
		if ok && reflect.DeepEqual(p, fp.prov) {
			fp.pool.SetConfig(cfg)
			continue
		}
		if ok {
			f.log.Info("provider changed: restarting its worker pool", "provider", name)
		} else {
			f.log.Info("provider removed: draining its worker pool", "provider", name)
		}
		fp.cancel()
		delete(f.pools, name)
		if ok {
			old := fp.done
			errs = append(errs, f.start(cfg, p, old))
		}
	}
	for name, p := range want {
		if _, ok := f.pools[name]; !ok {
			errs = append(errs, f.start(cfg, p, nil))
		}
	}
	return errors.Join(errs...)
}

// start builds and runs p's pool (after the pool it replaces, after, has
// drained); f.mu is held.
func (f *Fleet) start(cfg *config.Config, p config.Provider, after <-chan struct{}) error {
	pool, err := f.build(f.ctx, cfg, p)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(f.ctx)
	fp := &fleetPool{pool: pool, prov: p, cancel: cancel, done: make(chan struct{})}
	f.pools[p.Name] = fp
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer close(fp.done)
		if after != nil {
			select {
			case <-after:
			case <-ctx.Done():
				return
			}
		}
		if err := pool.Run(ctx); err != nil {
			select {
			case f.errs <- err:
			default:
			}
		}
	}()
	return nil
}

// Collector exports the metrics of every pool the fleet runs at scrape
// time. The set of pools follows the config, so it is an unchecked
// collector (Describe sends nothing); each pool's metrics carry its
// provider label.
func (f *Fleet) Collector() prometheus.Collector { return fleetCollector{f} }

type fleetCollector struct{ f *Fleet }

// Describe implements prometheus.Collector (unchecked: describes nothing).
func (fleetCollector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (c fleetCollector) Collect(ch chan<- prometheus.Metric) {
	c.f.mu.Lock()
	pools := make([]*Pool, 0, len(c.f.pools))
	for _, fp := range c.f.pools {
		pools = append(pools, fp.pool)
	}
	c.f.mu.Unlock()
	for _, p := range pools {
		p.Collector().Collect(ch)
	}
}
