package job

import (
	"context"
	"fmt"
	"time"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/store"
)

// A Backend is what a Pool's workers lease jobs from and report to: the store itself for the
// in-process pool of a server (NewPool), or a Conveyor server over HTTP for `conveyor worker`
// (package job/remote). The protocol is the same: lease, heartbeat under the lease's epoch,
// log chunks, artifacts, one result.
//
// Every call about a job carries the job as leased (its ID and Epoch): a backend refuses a
// call for a lease that is no longer current with an error wrapping store.ErrConflict.
type Backend interface {
	// Lease leases the next job w can run, or returns nil when there is none right now. It
	// may wait a while for one (a long poll).
	Lease(ctx context.Context, w Worker) (*store.Job, error)
	// Wake receives when new jobs may be ready to lease.
	Wake() <-chan struct{}
	// Heartbeat extends the lease; store.ErrConflict means it is lost or the job cancelled.
	Heartbeat(ctx context.Context, j *store.Job) error
	// Started records the process group running the job, where a crash of the process that
	// supervises it can find it; a backend with nowhere to record it ignores it.
	Started(ctx context.Context, j *store.Job, pgid int, start uint64) error
	// AppendLog appends a chunk of the job's output.
	AppendLog(ctx context.Context, j *store.Job, chunk []byte) error
	// Complete reports the job's result with the last chunk of its log. With next, it also
	// leases the next job next can run (nil when none) in the same round trip.
	Complete(ctx context.Context, j *store.Job, ev engine.Event, log []byte, next *Worker) (*store.Job, error)
	// Restore fetches the job's input artifact in, verifies it and unpacks it into dir.
	Restore(ctx context.Context, j *store.Job, in engine.NamedArtifact, dir string) error
	// Save stores the files of root selected by globs as the job's output artifact name.
	Save(ctx context.Context, j *store.Job, name, root string, globs []string) (artifact.Ref, error)
	// Secrets returns the values of the named secrets the job takes.
	Secrets(ctx context.Context, j *store.Job, names []string) (map[string]string, error)
	// RestoreCache unpacks the cache saved under key for the job's pipeline and branch (else
	// its default branch, else the pipeline's "default" scope: CacheScopes) into dir, which
	// must be empty or not exist; found is false when there is none.
	RestoreCache(ctx context.Context, j *store.Job, key, dir string) (found bool, err error)
	// SaveCache stores the files under dir as the cache key of the job's pipeline and branch.
	SaveCache(ctx context.Context, j *store.Job, key, dir string) error
}

// LeaseTeller is a Backend that knows each job's lease length (a server sets its remote
// workers'); the pool heartbeats every third of it instead of Options.Lease.
type LeaseTeller interface {
	LeaseOf(j *store.Job) time.Duration
}

// Registrar is a Backend that keeps the workers registry itself rather than hearing of its
// workers from their lease polls (the in-process backend, whose idle pool does not poll): the
// pool registers its Worker when it starts and every store.WorkerPoll while it leases.
type Registrar interface {
	Register(ctx context.Context, w Worker) error
}

// Worker says who leases a job and what it can run.
type Worker struct {
	ID string
	// Providers are the "Category/Provider" keys the worker runs; empty means any.
	Providers []string
	// Labels are what the worker offers to actions' runOn.
	Labels []string
	// Slots is how many jobs it runs at once; Version its build (for the workers registry).
	Slots   int
	Version string
}

func (w Worker) leaser() store.Leaser {
	return store.Leaser{Worker: w.ID, Providers: w.Providers, Labels: w.Labels}
}

// local is the Backend of a server's in-process workers: the store, the engine loop (the
// Reporter) and the artifact store, with no network between.
type local struct {
	st      store.Store
	rep     Reporter
	art     *artifact.Store
	secrets SecretSource
	lease   time.Duration
	now     func() time.Time
	wake    <-chan struct{}
}

func (b *local) Lease(ctx context.Context, w Worker) (*store.Job, error) {
	var j *store.Job
	err := b.st.Update(ctx, func(tx store.Tx) error {
		var err error
		j, err = tx.LeaseJob(ctx, w.leaser(), b.lease)
		return err
	})
	return j, err
}

func (b *local) Wake() <-chan struct{} { return b.wake }

var _ Registrar = (*local)(nil)

// Register records w in the workers registry and prunes the workers long gone (the pools of
// this server's earlier runs among them: each run has a new ID).
func (b *local) Register(ctx context.Context, w Worker) error {
	return b.st.Update(ctx, func(tx store.Tx) error {
		err := tx.RecordWorker(ctx, &store.Worker{Name: w.ID, Labels: w.Labels, Providers: w.Providers,
			Slots: w.Slots, Version: w.Version})
		if err != nil {
			return err
		}
		_, err = tx.PruneWorkers(ctx, store.WorkerPrune)
		return err
	})
}

func (b *local) Heartbeat(ctx context.Context, j *store.Job) error {
	return b.st.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Heartbeat(ctx, j.ID, j.Epoch, b.lease)
		return err
	})
}

func (b *local) Started(ctx context.Context, j *store.Job, pgid int, start uint64) error {
	return b.st.Update(ctx, func(tx store.Tx) error {
		return tx.SetJobProcess(ctx, j.ID, j.Epoch, pgid, start)
	})
}

func (b *local) AppendLog(ctx context.Context, j *store.Job, chunk []byte) error {
	return b.st.Update(ctx, func(tx store.Tx) error {
		_, err := tx.AppendLog(ctx, j.ID, chunk, b.now())
		return err
	})
}

// Complete records the result through the Reporter. The next job is leased in the
// transaction that records the result: the action this one's end lets start is usually
// that job, and it then costs no transaction of its own.
func (b *local) Complete(ctx context.Context, j *store.Job, ev engine.Event, log []byte, next *Worker) (*store.Job, error) {
	var nj *store.Job
	var then func(tx store.Tx) error
	if next != nil {
		then = func(tx store.Tx) error {
			var err error
			nj, err = tx.LeaseJob(ctx, next.leaser(), b.lease)
			return err
		}
	}
	err := b.rep.Complete(ctx, j.ID, j.Epoch, ev, log, then)
	return nj, err
}

func (b *local) Restore(ctx context.Context, _ *store.Job, in engine.NamedArtifact, dir string) error {
	return b.art.Restore(ctx, in.Ref, dir)
}

func (b *local) Save(ctx context.Context, _ *store.Job, _, root string, globs []string) (artifact.Ref, error) {
	return b.art.Save(ctx, root, globs)
}

func (b *local) RestoreCache(ctx context.Context, j *store.Job, key, dir string) (bool, error) {
	return RestoreCache(ctx, b.art, j, key, dir)
}

func (b *local) SaveCache(ctx context.Context, j *store.Job, key, dir string) error {
	return SaveCache(ctx, b.art, j, key, dir)
}

func (b *local) Secrets(ctx context.Context, j *store.Job, names []string) (map[string]string, error) {
	if b.secrets == nil {
		return nil, fmt.Errorf("this worker has no secret store")
	}
	return b.secrets.Secrets(WithJob(ctx, j), j.Pipeline, names)
}
