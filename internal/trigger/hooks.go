package trigger

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/conveyorci/conveyor/internal/store"
)

// While a repository's webhooks deliver, polling it is only a safety net for the deliveries
// that get lost: the webhook handler records each valid delivery (signed and matched) in the
// store, in the trigger leases row "hook:REPOSITORY" (NormalizeURL's key; State: the time of
// the last delivery), and the poller, on whichever server owns a source, reads that row of
// the repository of each Git source that has a webhookSecret at each reload. A delivery
// within hookActive slows the source's polling to hookSlowdown times its interval (at most
// hookMaxInterval, never faster than the interval); without one for hookActive, the
// interval is back. A source without a webhookSecret, which deliveries never start, keeps
// its pace.
const (
	hookSlowdown    = 10
	hookMaxInterval = 30 * time.Minute
	hookActive      = time.Hour
	// hookRecordEvery: a server writes a repository's row at most this often, however many
	// deliveries it receives.
	hookRecordEvery = time.Minute
	// hookOwner takes the "hook:" rows, for the moment of one write.
	hookOwner = "webhook"
)

// hookKey is the trigger leases row of the deliveries for repository ("" when it has none).
func hookKey(repository string) string {
	if k := NormalizeURL(repository); k != "" {
		return "hook:" + k
	}
	return ""
}

// pollEvery is how long after a successful poll a source is polled again: its interval, or,
// while its repository's webhooks deliver (lastDelivery within hookActive of now),
// hookSlowdown times that, at most hookMaxInterval.
func pollEvery(interval time.Duration, lastDelivery, now time.Time) time.Duration {
	if lastDelivery.IsZero() || now.Sub(lastDelivery) >= hookActive {
		return interval
	}
	return max(interval, min(interval*hookSlowdown, hookMaxInterval))
}

// Deliveries records the valid webhook deliveries for repositories, so that the pollers of
// every server sharing the store slow down for them. It is safe for concurrent use.
type Deliveries struct {
	st  store.Store
	log *slog.Logger
	now func() time.Time

	mu       sync.Mutex
	recorded map[string]time.Time // key: when this server last wrote it
}

// NewDeliveries returns the recorder of deliveries into st; log tells of a failed write,
// now is the clock (nil: time.Now).
func NewDeliveries(st store.Store, log *slog.Logger, now func() time.Time) *Deliveries {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Deliveries{st: st, log: log, now: now, recorded: map[string]time.Time{}}
}

// Record notes that a valid delivery for the repositories (the configured URLs of the
// source actions it was accepted for: one repository in several spellings) arrived now. A
// write that fails is logged, not returned: the delivery stands, and polling keeps its pace.
func (d *Deliveries) Record(ctx context.Context, repositories ...string) {
	now := d.now()
	due := map[string]bool{}
	d.mu.Lock()
	for _, r := range repositories {
		if k := hookKey(r); k != "" && now.Sub(d.recorded[k]) >= hookRecordEvery {
			due[k] = true
		}
	}
	d.mu.Unlock()
	if len(due) == 0 {
		return
	}
	keys := slices.Sorted(maps.Keys(due))
	state := now.UTC().Format(time.RFC3339Nano)
	err := d.st.Update(ctx, func(tx store.Tx) error {
		for _, k := range keys {
			// The row is leased for the moment of the write and released at once: any
			// server's delivery can write it next.
			_, held, err := tx.AcquireTriggerLease(ctx, k, hookOwner, now, time.Second)
			if err != nil {
				return err
			}
			if !held {
				continue // another server is writing it now
			}
			if err := tx.SetTriggerState(ctx, k, hookOwner, state, now); err != nil {
				return err
			}
			if err := tx.ReleaseTriggerLease(ctx, k, hookOwner); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		d.log.Warn("record webhook delivery; polling keeps its pace", "repositories", keys, "err", err)
		return
	}
	d.mu.Lock()
	for _, k := range keys {
		d.recorded[k] = now
	}
	d.mu.Unlock()
}

// lastDeliveries reads when each of keys last had a delivery (absent: never, or unreadable).
func (o *Options) lastDeliveries(ctx context.Context, keys []string) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	if len(keys) == 0 {
		return out, nil
	}
	err := o.Store.View(ctx, func(r store.Reader) error {
		for _, k := range keys {
			l, err := r.TriggerLease(ctx, k)
			if errors.Is(err, store.ErrNotFound) {
				continue // never
			}
			if err != nil {
				return err
			}
			if t, err := time.Parse(time.RFC3339Nano, l.State); err == nil {
				out[k] = t
			}
		}
		return nil
	})
	return out, err
}
