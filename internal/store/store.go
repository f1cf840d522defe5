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
	// TopicExecutions: executions were created or changed (on any server: the live event
	// streams of the API read them, ExecutionFilter.UpdatedAfter).
	TopicExecutions
	// TopicStageLocks: stage locks changed (an execution entered or left a stage, a
	// transition was disabled or enabled: the API's streams of a pipeline tell its page).
	TopicStageLocks
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
	// LeaseClock returns the time by the store's clock, the one leases are judged by (see
	// Tx.LeaseJob): what a caller compares a job's LeaseUntil with.
	LeaseClock(ctx context.Context) (time.Time, error)
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

	// --- Users, groups, tokens and grants (authentication and roles; see auth types below). ---

	// TokenByHash returns the token whose SHA-256 is hash, revoked and expired ones included
	// (the caller tells them apart, to say why it refuses one). Tokens are looked up by their
	// hash through an index, never compared byte by byte with a secret, so a timing side
	// channel reveals nothing useful (constant-time comparison is moot).
	TokenByHash(ctx context.Context, hash []byte) (*Token, error)
	// Token returns a token by ID.
	Token(ctx context.Context, id string) (*Token, error)
	// Tokens lists the tokens of a user (of every user when user is ""), oldest first.
	Tokens(ctx context.Context, user string) ([]*Token, error)
	// HasToken reports whether a token with that ID exists.
	HasToken(ctx context.Context, id string) (bool, error)
	// User returns a user with its groups.
	User(ctx context.Context, name string) (*User, error)
	// Users lists every user with its groups, by name.
	Users(ctx context.Context) ([]*User, error)
	// Grants lists every grant: users' then groups', by subject, pipeline and role. A new
	// store holds one: the global admin role of the user admin (the bootstrap's, who exists).
	Grants(ctx context.Context) ([]*Grant, error)
	// GrantsFor returns the grants that apply to a user, its own then its groups', in the
	// order of Grants.
	GrantsFor(ctx context.Context, user string) ([]*Grant, error)
	// --- End of users, groups, tokens and grants. ---

	// --- Audit log (package audit). ---

	// AuditHead returns the seq and hash of the newest audit entry ever appended (0 and an
	// empty hash before the first; pruning does not change it). In a Tx it is the read that
	// serializes appenders: the head is one row, and a PostgreSQL store reads it with
	// SELECT ... FOR UPDATE, so a concurrent appender waits for this transaction and then
	// reads the head it left (SQLite's single writer needs nothing).
	AuditHead(ctx context.Context) (seq int64, hash []byte, err error)
	// AuditEntries lists the audit entries matching f, newest first (oldest first with
	// f.Ascending), each exactly as appended.
	AuditEntries(ctx context.Context, f AuditFilter) ([]*AuditEntry, error)
	// AuditCheckpoints returns up to limit (<= 0: all) audit checkpoints with Seq > afterSeq,
	// oldest first.
	AuditCheckpoints(ctx context.Context, afterSeq int64, limit int) ([]*AuditCheckpoint, error)
	// --- End of audit log. ---

	// --- Secrets (package vault): values are kept sealed, never in the clear. ---

	// Secrets lists the secrets of the given scopes (pipeline names, "" for global; every
	// scope when none is given), by scope then name, without their sealed values.
	Secrets(ctx context.Context, scopes ...string) ([]*Secret, error)
	// SecretValues returns the named secrets as pipeline sees them, by name, with their
	// sealed values: the pipeline's own secret where it has one, else the global one. A name
	// with neither is absent from the map. pipeline "" reads global secrets only.
	SecretValues(ctx context.Context, pipeline string, names []string) (map[string]*Secret, error)
	// --- End of secrets. ---

	// --- Trigger leases (package trigger): single owners of pollers and schedules. ---

	// TriggerLease returns the lease row of a trigger duty (ErrNotFound when never leased).
	TriggerLease(ctx context.Context, key string) (*TriggerLease, error)
	// --- End of trigger leases. ---

	ActionTypeReader // custom action types (actiontype.go)
	WorkerReader     // the workers registry (worker.go)
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

	// --- Users, groups, tokens and grants (authentication and roles). ---

	// PutToken stores hash as the API token with ID name of the user of that name (created,
	// without a password, when missing), replacing that token's previous hash, expiry and
	// revocation: the bootstrap admin token (CONVEYOR_ADMIN_TOKEN) and the known tokens of tests.
	PutToken(ctx context.Context, name string, hash []byte, now time.Time) error
	// CreateToken stores a new token. Its user must exist (ErrNotFound otherwise); an ID or a
	// hash already stored is an error wrapping ErrConflict.
	CreateToken(ctx context.Context, t *Token) error
	// RevokeToken marks a token revoked at now; a token revoked already keeps its first time.
	RevokeToken(ctx context.Context, id string, now time.Time) error
	// TouchToken records that a token was used at now (callers do it at most once a minute).
	TouchToken(ctx context.Context, id string, now time.Time) error
	// CreateUser stores a new user with its groups; a name already taken is ErrConflict.
	CreateUser(ctx context.Context, u *User) error
	// AddGroupMember adds a user to a group (a group exists while it has members or grants);
	// adding a member again changes nothing. The user must exist (ErrNotFound).
	AddGroupMember(ctx context.Context, group, user string) error
	// RemoveGroupMember removes a user from a group; ErrNotFound when not a member.
	RemoveGroupMember(ctx context.Context, group, user string) error
	// PutGrant stores a grant unless the same one exists; it reports whether it was added. A
	// grant to a user needs the user to exist (ErrNotFound).
	PutGrant(ctx context.Context, g *Grant) (added bool, err error)
	// DeleteGrant removes a grant (matched on subject, role and pipeline); ErrNotFound when
	// there is none.
	DeleteGrant(ctx context.Context, g *Grant) error
	// --- End of users, groups, tokens and grants. ---

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
	// ClaimEvent marks an inbox event processed if it is not yet, and reports whether this
	// call did: of several servers dispatching the same pending event, exactly one claims it
	// (the others wait for its transaction and then see it processed). ErrNotFound when the
	// event does not exist.
	ClaimEvent(ctx context.Context, seq int64, now time.Time) (claimed bool, err error)

	// AddJob queues a job; a job with the same ID already present is left as is (added=false).
	AddJob(ctx context.Context, j *Job) (added bool, err error)
	// LeaseJob leases to l.Worker, for ttl from now by the store's clock (Lease clock, below),
	// the oldest queued job that l can take: its Provider in l.Providers (any provider when
	// empty) and every label of its Spec.RunOn in l.Labels. It increments the job's Epoch;
	// nil when there is none.
	//
	// Lease clock: lease deadlines (LeaseJob, Heartbeat) and their expiry (ExpiredJobs) are
	// judged by one clock, the store's, never by the callers': a store that several servers
	// share (PostgreSQL) uses the database's, so a server whose clock runs ahead cannot expire
	// another's live lease. The workers registry (RecordWorker, Workers) uses it too.
	LeaseJob(ctx context.Context, l Leaser, ttl time.Duration) (*Job, error)
	// Heartbeat extends a lease to ttl from now by the store's clock, and records the job's
	// worker as seen (TouchWorker); it fails with ErrConflict when the job is no longer leased
	// with that epoch (finished, cancelled, expired and re-leased). It returns the job so the
	// worker sees a cancellation (State JobCancelled is returned with ErrConflict).
	Heartbeat(ctx context.Context, id string, epoch int64, ttl time.Duration) (*Job, error)
	// SetJobProcess records the process group a leased job runs (epoch-guarded).
	SetJobProcess(ctx context.Context, id string, epoch int64, pgid int, startTime uint64) error
	// FinishJob marks a job done if it is leased with that epoch (ErrConflict otherwise).
	FinishJob(ctx context.Context, id string, epoch int64, now time.Time) error
	// CancelJob marks a queued or leased job cancelled (idempotent; no error if done).
	CancelJob(ctx context.Context, id string, now time.Time) error
	// ExpiredJobs returns leased jobs whose lease ended before now by the store's clock.
	ExpiredJobs(ctx context.Context) ([]*Job, error)
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

	// --- Audit log (package audit). ---

	// AppendAudit inserts e as the new head of the audit log: e.Seq must be the head's seq
	// + 1 (an error wrapping ErrConflict otherwise, and nothing is written). The caller has
	// read the head with AuditHead in the same transaction.
	AppendAudit(ctx context.Context, e *AuditEntry) error
	// PutAuditCheckpoint stores a checkpoint; one already stored at c.Seq is an error
	// wrapping ErrConflict.
	PutAuditCheckpoint(ctx context.Context, c *AuditCheckpoint) error
	// PruneAudit deletes the audit entries with Seq < beforeSeq and the checkpoints with
	// Seq < beforeSeq-1 (one at beforeSeq-1 anchors the first entry kept), and returns how
	// many entries it deleted. Whether pruning is allowed is the caller's decision.
	PruneAudit(ctx context.Context, beforeSeq int64) (deleted int64, err error)
	// --- End of audit log. ---

	// --- Secrets (package vault). ---

	// PutSecret stores s (Scope, Name, Sealed, UpdatedAt, UpdatedBy), replacing the sealed
	// value of the secret of that scope and name, and reports whether the secret is new. A
	// new secret's CreatedAt and CreatedBy are its UpdatedAt and UpdatedBy; a replaced one
	// keeps them.
	PutSecret(ctx context.Context, s *Secret) (created bool, err error)
	// DeleteSecret removes a secret; ErrNotFound when there is none.
	DeleteSecret(ctx context.Context, scope, name string) error
	// ResealSecret replaces the sealed value of a secret by resealed (the same value, its
	// data key rewrapped after a master key rotation) if it still holds old, and keeps its
	// times and authors: ErrNotFound when the secret is gone, ErrConflict when it holds
	// another value.
	ResealSecret(ctx context.Context, scope, name string, old, resealed []byte) error
	// --- End of secrets. ---

	// --- Trigger leases (package trigger). ---

	// AcquireTriggerLease leases the duty key to owner until now+ttl when it is free (no row,
	// released, or its lease ended before now) or owner holds it already (a renewal), and
	// returns the row, State kept. held reports whether owner holds the lease afterwards;
	// when another owner holds it, the row is returned unchanged.
	AcquireTriggerLease(ctx context.Context, key, owner string, now time.Time, ttl time.Duration) (l *TriggerLease, held bool, err error)
	// SetTriggerState stores the State of a duty whose lease owner holds at now; ErrConflict
	// when it does not (expired, taken over, released), ErrNotFound when there is no row.
	SetTriggerState(ctx context.Context, key, owner, state string, now time.Time) error
	// ReleaseTriggerLease ends owner's lease of key at once (State stays); nothing happens
	// when owner does not hold it.
	ReleaseTriggerLease(ctx context.Context, key, owner string) error
	// --- End of trigger leases. ---

	ActionTypeWriter // custom action types (actiontype.go)
	WorkerWriter     // the workers registry (worker.go)
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
	// UpdatedAfter, when set, selects only executions changed after it (UpdatedAt).
	UpdatedAfter time.Time
	Limit        int
}

// Event is a row of the inbox: an event for an execution (or a pipeline), deduplicated by Key.
type Event struct {
	Seq       int64 // assigned by the store, increasing
	Key       string
	Event     engine.Event
	CreatedAt time.Time
	// ProcessedAt, when set, adds the event as processed already: the transaction adding it
	// applies it too (the loop's Apply and Complete), so it is never pending and wakes no
	// dispatcher.
	ProcessedAt time.Time
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

// Leaser is who leases a job (LeaseJob) and what it can take.
type Leaser struct {
	Worker string
	// Providers are the "Category/Provider" keys the worker runs; none means any.
	Providers []string
	// Labels are what the worker offers: a job whose Spec.RunOn names a label not among
	// them is not for it.
	Labels []string
}

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

// Users, groups, tokens and grants. The store keeps them; internal/api decides what they
// allow.

// User is a local account. Its password, if any, is kept as an argon2id hash in the PHC
// string format; a user without one authenticates with tokens only.
type User struct {
	Name         string
	PasswordHash string   // "": no password
	Groups       []string // sorted
	CreatedAt    time.Time
}

// TokenScope is what a token may be used for.
type TokenScope string

const (
	// ScopeAPI: the token acts as its user, with the user's roles.
	ScopeAPI TokenScope = "api"
	// ScopeWorker: the token may only use the worker endpoints (lease and report jobs).
	ScopeWorker TokenScope = "worker"
)

// Token is an API or worker token of a user. Only the SHA-256 of its secret is stored.
type Token struct {
	ID          string // short, shown in lists, names the token to revoke it
	User        string
	Hash        []byte
	Scope       TokenScope
	Description string
	CreatedAt   time.Time
	ExpiresAt   time.Time // zero: never
	RevokedAt   time.Time // zero: not revoked
	LastUsedAt  time.Time // zero: never used (updated at most once a minute)
}

// Grant gives a role to a user or to a group's members, on one pipeline or on all.
type Grant struct {
	User      string // exactly one of User and Group is set
	Group     string
	Role      string
	Pipeline  string // "": every pipeline (a global grant)
	CreatedAt time.Time
}

// --- Audit log (package audit). ---

// AuditEntry is one entry of the audit log, a hash chain (package audit computes Hash). The
// store keeps every field exactly as given, Details byte for byte (TEXT, not a normalising
// JSON type such as JSONB): the hash covers those bytes.
type AuditEntry struct {
	Seq      int64 // 1, 2, ... without gaps: the store checks each is the head's + 1
	Time     time.Time
	Actor    string // user or token name, "system", "worker:ID"
	Source   string // network address the request came from; "" for the system
	Action   string // e.g. "pipeline.put", "auth.refused"
	Target   string // e.g. "pipeline/webapp", "pipeline/webapp/execution/ID"
	Outcome  string // "ok", "denied", "error: ..."
	Details  []byte // a JSON object
	PrevHash []byte
	Hash     []byte
}

// AuditCheckpoint is a signed statement that audit entry Seq had hash Hash, so that entries
// up to Seq may be pruned and the chain still verified from there.
type AuditCheckpoint struct {
	Seq       int64
	Hash      []byte
	Time      time.Time
	Signature []byte
}

// AuditFilter selects audit entries. Zero values select everything.
type AuditFilter struct {
	Since time.Time // entries at or after this time
	Actor string
	// Target selects entries whose target is Target or lies under it (Target + "/...").
	Target    string
	AfterSeq  int64 // only entries with Seq > AfterSeq
	BeforeSeq int64 // only entries with Seq < BeforeSeq
	Ascending bool  // oldest first (default: newest first)
	Limit     int   // <= 0: no limit
}

// --- Secrets (package vault). ---

// Secret is a secret's record. Its value is only ever stored sealed (keyring.Seal, with the
// scope and the name as associated data, so a sealed value copied to another row fails to
// open).
type Secret struct {
	Scope     string // the pipeline the secret belongs to; "": global, for every pipeline
	Name      string
	Sealed    []byte // set by SecretValues only
	CreatedAt time.Time
	CreatedBy string
	UpdatedAt time.Time
	UpdatedBy string
}

// --- Trigger leases (package trigger). ---

// TriggerLease is the lease of a single-owner trigger duty (a Git poller, a schedule), so that
// one server runs it however many share the store, and the state the duty keeps across
// restarts and owners. Package trigger moves leases: an owner takes a free or expired one,
// renews it while it runs the duty, and releases it when it stops.
type TriggerLease struct {
	Key        string // "poll:PIPELINE:STAGE.ACTION", "schedule:PIPELINE:INDEX"
	Owner      string // "" once released
	LeaseUntil time.Time
	// State is what the duty remembers: a poller's last seen commit, a schedule's last fire.
	State     string
	UpdatedAt time.Time
}
