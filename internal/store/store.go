// Package store is Conveyor's persistence seam: one interface, implemented by store/sqlite
// (embedded, the default) and later store/postgres, both held to the same behaviour by the
// conformance suite in store/storetest.
//
// Everything that changes state goes through Update, one transaction per call. The engine
// loop relies on that: the new state of an execution, the jobs, timers and inbox rows that
// follow from it, and the "processed" mark of the event that caused it commit together or
// not at all, so a crash at any moment loses nothing and applies nothing twice.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/conveyorci/conveyor/internal/engine"
)

// ErrNotFound is returned (wrapped) when a row does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned (wrapped) when a guarded write finds the row in another state
// than expected: a stale lease epoch, an execution changed since it was read.
var ErrConflict = errors.New("conflict")

// Store is a transactional store.
//
// Update runs fn in one write transaction and commits it when fn returns nil; an error from
// fn rolls back everything fn did and is returned as is. fn must only touch the store
// through tx and must not block on anything else (implementations may run it on a single
// writer goroutine, batched with other callers' functions: group commit). fn may be run at
// most once. View runs fn on a consistent read snapshot. Both are safe for concurrent use.
//
// Notify subscribes to changes of the given topics: every call returns a new channel
// (buffer 1) that receives, without blocking the sender and coalesced, after every committed
// Update that changed one of them, so that loops waiting for work (the engine loop's inbox,
// timer and outbox loops, each worker) wake at once instead of polling, and only for their
// own kind of work. Channels live as long as the store.
type Store interface {
	Update(ctx context.Context, fn func(tx Tx) error) error
	View(ctx context.Context, fn func(r Reader) error) error
	Notify(topics Topic) <-chan struct{}
	Close() error
}

// Topic is a kind of change that Notify subscribers wait for; topics combine with |.
type Topic uint8

const (
	// TopicEvents: inbox events were added.
	TopicEvents Topic = 1 << iota
	// TopicJobs: jobs were added, requeued or cancelled.
	TopicJobs
	// TopicTimers: timers were added.
	TopicTimers
	// TopicOutbox: outbox messages were added.
	TopicOutbox
	// TopicLogs: log chunks were appended.
	TopicLogs
)

// Reader reads state. Methods return an error wrapping ErrNotFound for a missing row.
type Reader interface {
	// PipelineVersion returns one stored version of a pipeline; version 0 means the latest.
	PipelineVersion(ctx context.Context, name string, version int) (*PipelineVersion, error)
	// Pipelines returns the latest version of every pipeline, by name, without Definition.
	Pipelines(ctx context.Context) ([]*PipelineVersion, error)
	// PipelineVersions returns every version of a pipeline, oldest first, without Definition
	// (none when the pipeline does not exist).
	PipelineVersions(ctx context.Context, name string) ([]*PipelineVersion, error)
	Execution(ctx context.Context, id string) (*engine.Execution, error)
	// Executions lists executions, newest first (by Seq within a pipeline, by creation across
	// pipelines), filtered by f.
	Executions(ctx context.Context, f ExecutionFilter) ([]*engine.Execution, error)
	// StageLocks returns the pipeline's stage locks by stage name (a stage without a row is
	// absent from the map: free, enabled).
	StageLocks(ctx context.Context, pipeline string) (map[string]*engine.StageLock, error)
	// CountExecutions counts the pipeline's executions in the given statuses (every status
	// when none), through an index: the engine asks it on every start of a capped pipeline.
	CountExecutions(ctx context.Context, pipeline string, statuses ...engine.ExecutionStatus) (int, error)
	// NamedLocks returns the named locks (global, shared by every pipeline) among names, by
	// name; a lock without a row is absent from the map: free, nobody waiting.
	NamedLocks(ctx context.Context, names ...string) (map[string]*engine.NamedLock, error)
	Job(ctx context.Context, id string) (*Job, error)
	// Jobs lists jobs in the given states (all states when none), oldest first.
	Jobs(ctx context.Context, states ...JobState) ([]*Job, error)
	// NextTimer returns the due time of the earliest pending timer, or ok=false when none.
	NextTimer(ctx context.Context) (due time.Time, ok bool, err error)
	// EventByKey returns the inbox event recorded under key (processed or not).
	EventByKey(ctx context.Context, key string) (*Event, error)
	// PendingEvents returns up to limit unprocessed inbox events, oldest first.
	PendingEvents(ctx context.Context, limit int) ([]*Event, error)
	// DueTimers returns up to limit timers due at or before now, earliest first.
	DueTimers(ctx context.Context, now time.Time, limit int) ([]*engine.Timer, error)
	// PendingOutbox returns up to limit undelivered outbox messages, oldest first.
	PendingOutbox(ctx context.Context, limit int) ([]*OutboxMessage, error)
	// Log returns the chunks of a job's log after afterSeq (0: from the start), in order, up
	// to limit chunks (limit <= 0: all).
	Log(ctx context.Context, jobID string, afterSeq int64, limit int) ([]LogChunk, error)
	// TokenByHash returns the name of the API token whose SHA-256 is hash. Tokens are looked
	// up by their hash through an index, never compared byte by byte with a secret, so a
	// timing side channel reveals nothing useful (constant-time comparison is moot).
	TokenByHash(ctx context.Context, hash []byte) (name string, err error)
	// HasToken reports whether an API token with that name exists.
	HasToken(ctx context.Context, name string) (bool, error)
}

// Tx is a write transaction.
type Tx interface {
	Reader

	// PutPipelineVersion stores a new version of a pipeline when its definition differs from
	// the latest one (byte-equal Definition), and returns the version number either way.
	PutPipelineVersion(ctx context.Context, name string, definition []byte, now time.Time) (version int, err error)
	// DeletePipeline removes every version of a pipeline with its stage locks and its
	// executions (and their jobs, logs and timers); ErrNotFound when it has no version. The
	// caller checks that no execution still runs.
	DeletePipeline(ctx context.Context, name string) error

	// PutToken stores an API token's hash under name, replacing the name's previous token.
	PutToken(ctx context.Context, name string, hash []byte, now time.Time) error

	// CreateExecution inserts a new execution, assigning e.Seq (1 + the pipeline's highest).
	// An execution with the same ID already present is an error wrapping ErrConflict.
	CreateExecution(ctx context.Context, e *engine.Execution) error
	// PutExecution updates an existing execution (the whole document and its indexed columns).
	PutExecution(ctx context.Context, e *engine.Execution) error
	// PutStageLock inserts or replaces a stage lock row.
	PutStageLock(ctx context.Context, l *engine.StageLock) error
	// PutNamedLock inserts or replaces a named lock row.
	PutNamedLock(ctx context.Context, l *engine.NamedLock) error

	// AddEvent records an incoming event in the inbox unless an event with the same Key was
	// ever recorded (processed or not); it reports whether it was added.
	AddEvent(ctx context.Context, ev *Event) (added bool, err error)
	// MarkEventProcessed marks an inbox event processed (it stays as a dedup record).
	MarkEventProcessed(ctx context.Context, seq int64, now time.Time) error

	// AddJob queues a job; a job with the same ID already present is left as is (added=false).
	AddJob(ctx context.Context, j *Job) (added bool, err error)
	// LeaseJob leases the oldest queued job whose Provider is in providers (any provider when
	// providers is empty) to worker until now+ttl, incrementing its Epoch; nil when none.
	LeaseJob(ctx context.Context, worker string, providers []string, now time.Time, ttl time.Duration) (*Job, error)
	// Heartbeat extends a lease; it fails with ErrConflict when the job is no longer leased
	// with that epoch (finished, cancelled, expired and re-leased). It returns the job so the
	// worker sees a cancellation (State JobCancelled is returned with ErrConflict).
	Heartbeat(ctx context.Context, id string, epoch int64, now time.Time, ttl time.Duration) (*Job, error)
	// SetJobProcess records the process group a leased job runs (epoch-guarded).
	SetJobProcess(ctx context.Context, id string, epoch int64, pgid int, startTime uint64) error
	// FinishJob marks a job done if it is leased with that epoch (ErrConflict otherwise).
	FinishJob(ctx context.Context, id string, epoch int64, now time.Time) error
	// CancelJob marks a queued or leased job cancelled (idempotent; no error if done).
	CancelJob(ctx context.Context, id string, now time.Time) error
	// ExpiredJobs returns leased jobs whose lease ended before now.
	ExpiredJobs(ctx context.Context, now time.Time) ([]*Job, error)
	// RequeueJob puts a leased job back in the queue (epoch-guarded), for a retry policy.
	RequeueJob(ctx context.Context, id string, epoch int64) error

	// AddTimer inserts a timer unless one with the same ID exists.
	AddTimer(ctx context.Context, t *engine.Timer) error
	// DeleteTimer removes a timer (no error if absent).
	DeleteTimer(ctx context.Context, id string) error

	// AppendLog appends a chunk to a job's log and returns its sequence number (1, 2, ...).
	AppendLog(ctx context.Context, jobID string, data []byte, now time.Time) (seq int64, err error)

	// AddOutbox records an effect to deliver outside the store (at least once).
	AddOutbox(ctx context.Context, m *OutboxMessage) error
	// DeleteOutbox removes a delivered message (no error if absent).
	DeleteOutbox(ctx context.Context, seq int64) error
}

// PipelineVersion is one stored version of a pipeline declaration.
type PipelineVersion struct {
	Name       string
	Version    int
	Definition []byte // the declaration as JSON
	CreatedAt  time.Time
}

// ExecutionFilter selects executions. Zero values select everything.
type ExecutionFilter struct {
	Pipeline string
	Statuses []engine.ExecutionStatus
	// SucceededInStage, when set, selects only executions whose stage of that name is
	// Succeeded (the filter applies before Limit: a page holds up to Limit matching ones).
	SucceededInStage string
	// BeforeSeq pages: only executions with Seq < BeforeSeq (needs Pipeline).
	BeforeSeq int64
	Limit     int
}

// Event is a row of the inbox: an event for an execution (or a pipeline), deduplicated by Key.
type Event struct {
	Seq       int64 // assigned by the store, increasing
	Key       string
	Event     engine.Event
	CreatedAt time.Time
}

// JobState is where a job row stands. The engine loop queues jobs (Queued); workers move
// them to Leased (LeaseJob), keep them there (Heartbeat) and finish them (Done); the loop
// cancels them when an action is abandoned (Cancelled) and fails or requeues expired leases.
type JobState string

const (
	JobQueued    JobState = "queued"
	JobLeased    JobState = "leased"
	JobDone      JobState = "done"
	JobCancelled JobState = "cancelled"
)

// Job is one action attempt waiting for, or held by, a worker.
type Job struct {
	ID          string
	ExecutionID string
	Pipeline    string
	Provider    string // "Category/Provider", e.g. "Build/Commands"
	Spec        engine.JobSpec
	State       JobState
	Worker      string
	Epoch       int64
	LeaseUntil  time.Time
	Pgid        int
	PStart      uint64
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// LogChunk is a piece of a job's output, in the order it was written.
type LogChunk struct {
	Seq  int64
	Data []byte
}

// OutboxMessage is an effect to deliver outside the store.
type OutboxMessage struct {
	Seq       int64
	Key       string // idempotency key for the receiver
	Kind      string
	Payload   []byte
	CreatedAt time.Time
}
