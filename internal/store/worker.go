package store

import (
	"context"
	"time"
)

// --- The workers registry (internal/api, workers.go; internal/job for in-process pools). ---

// WorkerReader reads the workers registry; part of Reader.
type WorkerReader interface {
	// Workers lists every registered worker, by name, with Unseen (by the store's clock: the
	// lease clock, see Tx.LeaseJob) and Running.
	Workers(ctx context.Context) ([]*Worker, error)
}

// WorkerWriter changes the workers registry; part of Tx.
type WorkerWriter interface {
	// RecordWorker records that w polled for a job (or registered) now, by the store's
	// clock: its row, created when missing, takes w's Labels, Providers, Version and Slots.
	RecordWorker(ctx context.Context, w *Worker) error
	// TouchWorker records that the named worker was seen now (a heartbeat of one of its
	// jobs); nothing happens when it has no row.
	TouchWorker(ctx context.Context, name string) error
	// PruneWorkers deletes the workers unseen for longer than olderThan, by the store's
	// clock, and returns how many it deleted.
	PruneWorkers(ctx context.Context, olderThan time.Duration) (deleted int64, err error)
}

// Worker is a row of the workers registry: a process that leases jobs (a remote worker, a
// custom job worker, a server's in-process pool), as it last said it was. Workers record
// themselves when they poll for a job (RecordWorker) and when they heartbeat a job
// (TouchWorker); nothing removes a worker that stops but PruneWorkers, so whether one is live
// is the reader's judgement from Unseen.
type Worker struct {
	Name string // as in its leases (Job.Worker)
	// Labels are what it offers to actions' runOn; Providers the "Category/Provider" keys it
	// runs, none meaning any (as Leaser's).
	Labels    []string
	Providers []string
	Version   string // the worker's build, as it reports it ("" when it does not)
	// Slots is how many jobs it runs at once (0: it does not say).
	Slots    int
	LastSeen time.Time // by the store's clock
	// Unseen is how long before the read the worker was last seen, by the store's clock
	// (set by Workers; callers compare it, not LastSeen, with their own clock).
	Unseen time.Duration
	// Running is how many jobs are leased to it at the read (set by Workers).
	Running int
}

// How the registry is kept: a live worker records itself at least every WorkerPoll (a remote
// worker's long poll ends within it, an in-process pool registers that often, a busy worker
// heartbeats more often); one unseen for WorkerGone is gone; its row is pruned after
// WorkerPrune.
const (
	WorkerPoll  = 30 * time.Second
	WorkerGone  = 3 * WorkerPoll
	WorkerPrune = 24 * time.Hour
)
