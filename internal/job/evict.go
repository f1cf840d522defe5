package job

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/store"
)

// Cache eviction: caches unused for longer than a maximum age are removed, and when the
// caches' artifacts take more room than a maximum size, the least recently used go until
// they fit. The last use of each cache is recorded beside its pointer (FindCache and
// PointCache); the artifacts are content-addressed, so one may be named by several caches
// and by executions: an artifact is deleted only once no pointer and no execution refers to
// it. A job restoring a cache that an eviction removes meanwhile gets a miss.

// CachePolicy bounds what the caches keep. A zero field bounds nothing.
type CachePolicy struct {
	// MaxAge: a cache not used (restored or saved) for longer is evicted.
	MaxAge time.Duration
	// MaxSize is the room, in stored bytes, the caches' artifacts may take, not counting
	// the artifacts executions refer to too (evicting their caches would free nothing).
	MaxSize int64
}

// Why a cache is evicted.
const (
	EvictedAge  = "age"  // unused for longer than CachePolicy.MaxAge
	EvictedSize = "size" // among the least recently used when the caches took too much room
	// EvictedMissing: its artifact is no longer stored, so the pointer makes only misses.
	EvictedMissing = "missing"
)

// CacheEntry is one cache as an eviction pass sees it.
type CacheEntry struct {
	Pipeline, Branch, Key string
	Ref                   artifact.Ref
	Used                  time.Time // its last use
	// Size is what its artifact takes in the store; -1 when it is no longer stored.
	Size int64
}

func (c CacheEntry) pointer() string { return cachePointer(c.Pipeline, c.Branch, c.Key) }

// Eviction is a cache an eviction pass removes.
type Eviction struct {
	CacheEntry
	Reason string // EvictedAge, EvictedSize or EvictedMissing
	// Freed is the room its artifact took, once deleted (0 when something else still refers
	// to it, or when it is counted with another eviction of the same artifact).
	Freed int64
}

// ChooseEvictions decides which caches go under p at now, doing no I/O. inUse holds the
// digests of the artifacts executions refer to. Every cache unused for longer than MaxAge
// goes, and every one whose artifact is gone. Then, while the artifacts the remaining
// caches alone keep take more than MaxSize, the least recently used artifact goes with every
// cache naming it (an artifact's last use is its caches' latest).
func ChooseEvictions(caches []CacheEntry, inUse map[string]bool, p CachePolicy, now time.Time) []Eviction {
	var out []Eviction
	kept := map[string][]CacheEntry{} // by digest
	for _, c := range caches {
		switch {
		case c.Size < 0:
			out = append(out, Eviction{CacheEntry: c, Reason: EvictedMissing})
		case p.MaxAge > 0 && now.Sub(c.Used) > p.MaxAge:
			out = append(out, Eviction{CacheEntry: c, Reason: EvictedAge})
		default:
			kept[c.Ref.Digest] = append(kept[c.Ref.Digest], c)
		}
	}
	if p.MaxSize <= 0 {
		return out
	}
	type blob struct {
		digest string
		used   time.Time
		size   int64
	}
	var blobs []blob
	var total int64
	for d, cs := range kept {
		if inUse[d] {
			continue
		}
		b := blob{digest: d, size: cs[0].Size}
		for _, c := range cs {
			if c.Used.After(b.used) {
				b.used = c.Used
			}
		}
		blobs = append(blobs, b)
		total += b.size
	}
	slices.SortFunc(blobs, func(a, b blob) int { return cmp.Or(a.used.Compare(b.used), strings.Compare(a.digest, b.digest)) })
	for _, b := range blobs {
		if total <= p.MaxSize {
			break
		}
		total -= b.size
		for _, c := range kept[b.digest] {
			out = append(out, Eviction{CacheEntry: c, Reason: EvictedSize})
		}
	}
	return out
}

// ReuseGrace is how long after a Save found an artifact's content stored already (as a
// cache's, say) cache eviction keeps its blob, for the execution of the job that saved it to
// refer to it: longer than any job runs between saving its outputs and completing.
const ReuseGrace = 24 * time.Hour

// EvictCaches runs one eviction pass over the caches in arts at now, and returns what it
// evicted. inUse returns the digests of the artifacts executions refer to (ArtifactsInUse);
// it is asked again after the pointers are deleted, just before the artifacts, as the
// pointers are listed again then: an artifact something named meanwhile is kept. A cache
// whose use was never recorded (saved before uses were) is taken as used now.
func EvictCaches(ctx context.Context, arts *artifact.Store, p CachePolicy, now time.Time,
	inUse func(context.Context) (map[string]bool, error)) ([]Eviction, error) {
	ptrs, err := arts.Pointers(ctx, "cache\x00")
	if err != nil {
		return nil, fmt.Errorf("evict caches: %w", err)
	}
	sizes := map[string]int64{}
	var caches []CacheEntry
	for _, ptr := range ptrs {
		parts := strings.SplitN(ptr.Name, "\x00", 4)
		if len(parts) != 4 {
			continue // not a cache's
		}
		c := CacheEntry{Pipeline: parts[1], Branch: parts[2], Key: parts[3], Ref: ptr.Ref, Used: ptr.Used}
		if c.Used.IsZero() {
			if err := arts.TouchPointer(ctx, ptr.Name, now); err != nil {
				return nil, fmt.Errorf("evict caches: %w", err)
			}
			c.Used = now
		}
		size, ok := sizes[c.Ref.Digest]
		if !ok {
			size, err = arts.StoredSize(ctx, c.Ref)
			if errors.Is(err, artifact.ErrNotFound) {
				size, err = -1, nil
			}
			if err != nil {
				return nil, fmt.Errorf("evict caches: %w", err)
			}
			sizes[c.Ref.Digest] = size
		}
		c.Size = size
		caches = append(caches, c)
	}
	used, err := inUse(ctx)
	if err != nil {
		return nil, fmt.Errorf("evict caches: %w", err)
	}
	evictions := ChooseEvictions(caches, used, p, now)
	if len(evictions) == 0 {
		return nil, nil
	}
	for i, e := range evictions {
		if err := arts.DeletePointer(ctx, e.pointer()); err != nil {
			return evictions[:i], fmt.Errorf("evict caches: %w", err)
		}
	}

	// What still refers to the artifacts, read after the pointers are gone.
	ptrs, err = arts.Pointers(ctx, "")
	if err != nil {
		return evictions, fmt.Errorf("evict caches: %w", err)
	}
	referred := map[string]bool{}
	for _, ptr := range ptrs {
		referred[ptr.Ref.Digest] = true
	}
	if used, err = inUse(ctx); err != nil {
		return evictions, fmt.Errorf("evict caches: %w", err)
	}
	for i, e := range evictions {
		d := e.Ref.Digest
		if e.Size < 0 || referred[d] || used[d] {
			continue
		}
		// A job saved this content lately: its execution will refer to it once the job
		// completes, which is not yet.
		reused, err := arts.Reused(ctx, e.Ref)
		if err != nil {
			return evictions, fmt.Errorf("evict caches: %w", err)
		}
		if !reused.IsZero() && now.Sub(reused) < ReuseGrace {
			continue
		}
		referred[d] = true // deleted once
		if err := arts.Delete(ctx, e.Ref); err != nil {
			return evictions, fmt.Errorf("evict caches: %w", err)
		}
		evictions[i].Freed = e.Size
	}
	return evictions, nil
}

// ArtifactsInUse returns the digests of the artifacts the executions in st refer to, read
// one pipeline and one page at a time.
func ArtifactsInUse(ctx context.Context, st store.Store) (map[string]bool, error) {
	var pipelines []*store.PipelineVersion
	if err := st.View(ctx, func(r store.Reader) (err error) {
		pipelines, err = r.Pipelines(ctx)
		return err
	}); err != nil {
		return nil, fmt.Errorf("list artifacts in use: %w", err)
	}
	const page = 200
	out := map[string]bool{}
	for _, p := range pipelines {
		var before int64
		for {
			var list []*engine.Execution
			if err := st.View(ctx, func(r store.Reader) error {
				es, err := r.Executions(ctx, store.ExecutionFilter{Pipeline: p.Name, BeforeSeq: before, Limit: page})
				list = es
				return err
			}); err != nil {
				return nil, fmt.Errorf("list artifacts in use: %w", err)
			}
			for _, e := range list {
				for _, ref := range e.Artifacts {
					out[ref.Digest] = true
				}
				before = e.Seq
			}
			if len(list) < page {
				break
			}
		}
	}
	return out, nil
}

// CacheEvictor runs EvictCaches periodically: at start, then every Interval. With a store
// several servers share, one of them runs each pass: the duty is leased through the store
// (key "cache-eviction"), which remembers when the last pass ended.
type CacheEvictor struct {
	Artifacts *artifact.Store
	Store     store.Store
	Policy    CachePolicy
	// Interval between passes (default 1 h).
	Interval time.Duration
	// Owner names this server in the lease (unique per process).
	Owner  string
	Logger *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Evicted, when set, is told of each eviction (for metrics).
	Evicted func(Eviction)
}

// evictionLease is the store's lease key of the eviction duty.
const evictionLease = "cache-eviction"

// Run passes until ctx is done. A failed pass is logged and tried again at the next check.
func (c *CacheEvictor) Run(ctx context.Context) error {
	interval := cmp.Or(c.Interval, time.Hour)
	log := cmp.Or(c.Logger, slog.New(slog.DiscardHandler))
	// Checks are more frequent than passes: the replica whose check comes first after the
	// interval runs the next pass.
	tick := time.NewTicker(max(interval/4, time.Second))
	defer tick.Stop()
	for {
		if err := c.Pass(ctx, interval); err != nil && ctx.Err() == nil {
			log.Error("cache eviction pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Pass runs an eviction pass if none ran in the last interval and no other server runs
// one, and logs what it evicted.
func (c *CacheEvictor) Pass(ctx context.Context, interval time.Duration) error {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	log := cmp.Or(c.Logger, slog.New(slog.DiscardHandler))
	start := now()
	due := false
	if err := c.Store.Update(ctx, func(tx store.Tx) error {
		l, held, err := tx.AcquireTriggerLease(ctx, evictionLease, c.Owner, start, 15*time.Minute)
		if err != nil || !held {
			return err
		}
		last, perr := time.Parse(time.RFC3339Nano, l.State)
		due = perr != nil || start.Sub(last) >= interval
		return nil
	}); err != nil {
		return fmt.Errorf("lease cache eviction: %w", err)
	}
	if !due {
		return nil
	}
	defer func() {
		// Released even when ctx is done (a server stopping): another can take the duty at once.
		rctx := context.WithoutCancel(ctx)
		if err := c.Store.Update(rctx, func(tx store.Tx) error {
			return tx.ReleaseTriggerLease(rctx, evictionLease, c.Owner)
		}); err != nil {
			log.Warn("release the cache eviction lease", "err", err)
		}
	}()
	evictions, err := EvictCaches(ctx, c.Artifacts, c.Policy, start, func(ctx context.Context) (map[string]bool, error) {
		return ArtifactsInUse(ctx, c.Store)
	})
	var freed int64
	for _, e := range evictions {
		log.Info("cache evicted", "pipeline", e.Pipeline, "branch", e.Branch, "key", e.Key, "reason", e.Reason,
			"lastUsed", e.Used, "size", e.Size, "freed", e.Freed)
		freed += e.Freed
		if c.Evicted != nil {
			c.Evicted(e)
		}
	}
	if err != nil {
		return err
	}
	log.Info("cache eviction pass", "evicted", len(evictions), "freed", freed, "took", now().Sub(start).Round(time.Millisecond),
		"maxAge", c.Policy.MaxAge, "maxSize", c.Policy.MaxSize)
	return c.Store.Update(ctx, func(tx store.Tx) error {
		return tx.SetTriggerState(ctx, evictionLease, c.Owner, start.UTC().Format(time.RFC3339Nano), now())
	})
}
