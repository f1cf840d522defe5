package job

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/store"
)

// Caches live in the artifact store: each saved directory is an artifact like any other
// (content-addressed, deduplicated, encrypted when the store is), and a pointer
// (artifact.Store.PutPointer) per scope and key names the current one. A scope is a
// pipeline and a branch; a job reads its branch's cache, else its default branch's, else
// the pipeline's "default" one (a pipeline whose source names no branch), and writes its
// branch's. Nothing else indexes them: no store table, and a remote worker goes through the
// server (the job-token endpoints of workers.go), so every worker shares them.
//
// Each use (a save, or a lookup that finds one) is recorded beside the pointer
// (artifact.Store.TouchPointer), so that EvictCaches can remove the caches unused for long,
// and the least recently used ones when they take too much room (evict.go).

// DefaultScope is the branch of the cache scope of a job whose branch is unknown.
const DefaultScope = "default"

// CacheScopes returns the branches whose caches a job reads, in order; the first is the one
// it writes.
func CacheScopes(j *store.Job) []string {
	scopes := []string{cmp.Or(j.Spec.Branch, DefaultScope)}
	for _, b := range []string{j.Spec.DefaultBranch, DefaultScope} {
		if b != "" && b != scopes[len(scopes)-1] && b != scopes[0] {
			scopes = append(scopes, b)
		}
	}
	return scopes
}

// cachePointer names the pointer of a cache key in a scope. NUL cannot occur in a pipeline
// or branch name, nor in a key.
func cachePointer(pipeline, branch, key string) string {
	return "cache\x00" + pipeline + "\x00" + branch + "\x00" + key
}

// RestoreCache restores the job's cache key from arts into dir (Backend.RestoreCache).
func RestoreCache(ctx context.Context, arts *artifact.Store, j *store.Job, key, dir string) (bool, error) {
	ref, found, err := FindCache(ctx, arts, j, key)
	if err != nil || !found {
		return false, err
	}
	if err := arts.Restore(ctx, ref, dir); errors.Is(err, artifact.ErrNotFound) {
		return false, nil // evicted since FindCache: a miss
	} else if err != nil {
		return false, fmt.Errorf("restore cache: %w", err)
	}
	return true, nil
}

// FindCache returns the artifact the job's cache key names, in the first of its scopes
// that has one, and records the use. A pointer to an artifact no longer stored counts as
// none.
func FindCache(ctx context.Context, arts *artifact.Store, j *store.Job, key string) (artifact.Ref, bool, error) {
	if arts == nil {
		return artifact.Ref{}, false, errors.New("this worker has no artifact store")
	}
	for _, branch := range CacheScopes(j) {
		ref, err := arts.GetPointer(ctx, cachePointer(j.Pipeline, branch, key))
		if errors.Is(err, artifact.ErrNotFound) {
			continue
		}
		if err != nil {
			return artifact.Ref{}, false, fmt.Errorf("find cache: %w", err)
		}
		if ok, err := arts.Has(ctx, ref); err != nil {
			return artifact.Ref{}, false, fmt.Errorf("find cache: %w", err)
		} else if ok {
			if err := arts.TouchPointer(ctx, cachePointer(j.Pipeline, branch, key), time.Now()); err != nil {
				return artifact.Ref{}, false, fmt.Errorf("find cache: %w", err)
			}
			return ref, true, nil
		}
	}
	return artifact.Ref{}, false, nil
}

// SaveCache stores dir in arts as the job's cache key (Backend.SaveCache).
func SaveCache(ctx context.Context, arts *artifact.Store, j *store.Job, key, dir string) error {
	if arts == nil {
		return errors.New("this worker has no artifact store")
	}
	ref, err := arts.Save(ctx, dir, nil)
	if err != nil {
		return fmt.Errorf("save cache: %w", err)
	}
	return PointCache(ctx, arts, j, key, ref)
}

// PointCache makes the job's cache key (in the scope it writes) name ref, a stored artifact,
// and records the use.
func PointCache(ctx context.Context, arts *artifact.Store, j *store.Job, key string, ref artifact.Ref) error {
	name := cachePointer(j.Pipeline, CacheScopes(j)[0], key)
	// The use first: a pointer without one is taken for new by the eviction pass, which
	// would otherwise stamp it itself.
	if err := arts.TouchPointer(ctx, name, time.Now()); err != nil {
		return fmt.Errorf("save cache: %w", err)
	}
	if err := arts.PutPointer(ctx, name, ref); err != nil {
		return fmt.Errorf("save cache: %w", err)
	}
	return nil
}

// jobCache is the action.Cache of one job: the Backend's caches of that job.
type jobCache struct {
	b Backend
	j *store.Job
}

func (c jobCache) Restore(ctx context.Context, key, dir string) (bool, error) {
	return c.b.RestoreCache(ctx, c.j, key, dir)
}

func (c jobCache) Save(ctx context.Context, key, dir string) error {
	return c.b.SaveCache(ctx, c.j, key, dir)
}
