package trigger

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
)

// Options are what the trigger services (Poller, Scheduler) share.
type Options struct {
	Loop  *loop.Loop
	Store store.Store
	// Owner names this server in the leases of the duties it runs (unique per process).
	Owner  string
	Logger *slog.Logger
	// Now is the clock (time.Now by default); Until returns a channel receiving once Now
	// reaches t (a timer by default). Tests inject both and move them together.
	Now   func() time.Time
	Until func(t time.Time) <-chan time.Time
	// Reload is how often the set of duties is read again from the pipelines, and leases
	// renewed (default 5 s); LeaseTTL how long a lease lasts unrenewed (default 30 s).
	Reload   time.Duration
	LeaseTTL time.Duration
	// PipelineDir is the directory a pipeline's relative repository paths are relative to
	// (nil: the working directory), as for the Git actions.
	PipelineDir func(pipeline string) string
	// Secrets returns the values of a pipeline's secrets, for the credentials of the sources
	// the services read (Git: token, sshKey; S3: accessKeyId, secretAccessKey); nil: a
	// source that names one fails to poll, and a push's changed files are read without
	// them. Values are kept for SecretsTTL (default 10 min) per pipeline version and set of
	// names, and read again after a failure with them (secrets.go).
	Secrets    func(ctx context.Context, pipeline string, names []string) (map[string]string, error)
	SecretsTTL time.Duration

	secrets *secretCache
}

func (o *Options) defaults() {
	o.Logger = cmp.Or(o.Logger, slog.New(slog.DiscardHandler))
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Until == nil {
		now := o.Now
		o.Until = func(t time.Time) <-chan time.Time { return time.After(t.Sub(now())) }
	}
	o.Reload = cmp.Or(o.Reload, 5*time.Second)
	o.LeaseTTL = cmp.Or(o.LeaseTTL, 30*time.Second)
	if o.PipelineDir == nil {
		o.PipelineDir = func(string) string { return "" }
	}
	o.SecretsTTL = cmp.Or(o.SecretsTTL, 10*time.Minute)
	o.secrets = &secretCache{get: o.Secrets, ttl: o.SecretsTTL, now: o.Now}
}

// pipelines returns the latest version of every pipeline.
func (o *Options) pipelines(ctx context.Context) ([]*pipeline.Pipeline, error) {
	pipes, _, err := o.latest(ctx)
	return pipes, err
}

// latest returns the latest version of every pipeline, and the version numbers by name.
func (o *Options) latest(ctx context.Context) ([]*pipeline.Pipeline, map[string]int, error) {
	var list []*store.PipelineVersion
	if err := o.Store.View(ctx, func(r store.Reader) error {
		var err error
		list, err = r.Pipelines(ctx)
		return err
	}); err != nil {
		return nil, nil, fmt.Errorf("list pipelines: %w", err)
	}
	out := make([]*pipeline.Pipeline, 0, len(list))
	versions := make(map[string]int, len(list))
	for _, pv := range list {
		p, err := o.Loop.Pipeline(ctx, pv.Name, pv.Version)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, nil, err
		}
		out = append(out, p)
		versions[pv.Name] = pv.Version
	}
	return out, versions, nil
}

// lease takes or renews the leases of keys for this owner, in one transaction, and returns
// the state of each key held (absent: another owner holds it).
func (o *Options) lease(ctx context.Context, keys []string) (map[string]string, error) {
	held := map[string]string{}
	now := o.Now()
	err := o.Store.Update(ctx, func(tx store.Tx) error {
		clear(held)
		for _, k := range keys {
			l, ok, err := tx.AcquireTriggerLease(ctx, k, o.Owner, now, o.LeaseTTL)
			if err != nil {
				return err
			}
			if ok {
				held[k] = l.State
			}
		}
		return nil
	})
	return held, err
}

// release gives up the leases of keys (at stop, or when a duty is gone).
func (o *Options) release(ctx context.Context, keys []string) {
	if len(keys) == 0 {
		return
	}
	err := o.Store.Update(ctx, func(tx store.Tx) error {
		for _, k := range keys {
			if err := tx.ReleaseTriggerLease(ctx, k, o.Owner); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		o.Logger.Warn("release trigger leases", "err", err)
	}
}

// setState returns a WithTx hook that stores a duty's state, if this owner still holds it.
func (o *Options) setState(ctx context.Context, key, state string) func(tx store.Tx) error {
	return func(tx store.Tx) error { return tx.SetTriggerState(ctx, key, o.Owner, state, o.Now()) }
}

// renew takes or renews the leases of the wanted keys, and drops from owned what is no longer
// wanted, changed, or held by another server (releasing the leases of what is gone). It
// returns the leases held: key to the state stored with it.
func renew[W any, S interface{ same(W) bool }](ctx context.Context, o *Options, want map[string]W, owned map[string]S) (map[string]string, error) {
	held, err := o.lease(ctx, slices.Sorted(maps.Keys(want)))
	if err != nil {
		return nil, err
	}
	var gone []string
	for k, s := range owned {
		w, ok := want[k]
		if !ok {
			gone = append(gone, k)
		}
		if _, h := held[k]; !ok || !h || !s.same(w) {
			delete(owned, k)
		}
	}
	o.release(ctx, gone)
	return held, nil
}

// slot is the scheduling state of one duty a service holds the lease of (runDuties).
type slot struct {
	next    time.Time // when to run it next
	running bool
}

func (s *slot) schedule() *slot { return s }

// runDuties is the loop of the services whose leased duties each run on their own clock
// (Poller, Linker), until ctx is done. Every o.Reload it calls reload, which takes or renews
// the leases and fills owned (dropping what is gone, changed or held elsewhere). A duty whose
// next time has come is run: start, on the loop's goroutine, captures what the run needs, and
// the function it returns runs on a goroutine of its own, at most concurrency at once, so a
// slow duty holds neither the others nor the renewal of the leases. Each result is handed to
// done, on the loop's goroutine, which schedules the duty's next run (a result for a duty
// dropped meanwhile is done's to ignore). At the end it waits for the runs in flight and
// releases the leases of owned.
func runDuties[S interface{ schedule() *slot }, R any](ctx context.Context, o *Options, what string, concurrency int,
	owned map[string]S, reload func(context.Context) error, start func(key string, s S) func(context.Context) R, done func(R)) error {
	results := make(chan R)
	sem := make(chan struct{}, concurrency)
	inflight := 0
	defer func() {
		for ; inflight > 0; inflight-- {
			<-results
		}
		o.release(context.WithoutCancel(ctx), slices.Collect(maps.Keys(owned)))
	}()
	var nextReload time.Time
	for {
		now := o.Now()
		if !now.Before(nextReload) {
			if err := reload(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				o.Logger.Warn("reload "+what, "err", err)
			}
			nextReload = now.Add(o.Reload)
		}
		wake := nextReload
		for key, s := range owned {
			sl := s.schedule()
			if sl.running {
				continue
			}
			if now.Before(sl.next) {
				wake = minTime(wake, sl.next)
				continue
			}
			sl.running = true
			inflight++
			run := start(key, s)
			go func() {
				sem <- struct{}{}
				r := run(ctx)
				<-sem
				results <- r
			}()
		}
		select {
		case <-ctx.Done():
			return nil
		case r := <-results:
			inflight--
			done(r)
		case <-o.Until(wake):
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
