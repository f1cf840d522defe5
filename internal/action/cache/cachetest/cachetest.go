// Package cachetest gives the tests of actions the action.Cache a worker gives a job:
// caches kept in a real artifact store on disk, scoped by job.RestoreCache and
// job.SaveCache as a worker's are.
package cachetest

import (
	"context"
	"testing"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/artifact/fs"
	"github.com/conveyorci/conveyor/internal/job"
	"github.com/conveyorci/conveyor/internal/store"
)

// Cache is the caches of Job in Arts.
type Cache struct {
	Arts *artifact.Store
	Job  *store.Job
}

var _ action.Cache = Cache{}

// New returns the caches of a job of pipeline "p" in a fresh store.
func New(t testing.TB) Cache {
	return Cache{Arts: NewStore(t), Job: &store.Job{Pipeline: "p"}}
}

// NewStore returns an artifact store in a temporary directory.
func NewStore(t testing.TB) *artifact.Store {
	t.Helper()
	blobs, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return artifact.New(blobs, artifact.Options{TempDir: t.TempDir()})
}

// Restore restores the job's cache key into dir, as a worker would.
func (c Cache) Restore(ctx context.Context, key, dir string) (bool, error) {
	return job.RestoreCache(ctx, c.Arts, c.Job, key, dir)
}

// Save stores dir as the job's cache key, as a worker would.
func (c Cache) Save(ctx context.Context, key, dir string) error {
	return job.SaveCache(ctx, c.Arts, c.Job, key, dir)
}
