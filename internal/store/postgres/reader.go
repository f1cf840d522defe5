package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/store"
)

// reader implements store.Reader inside a transaction: an Update's (for a Tx, which then
// sees its own writes and locks what it reads to change it) or a View's.
type reader struct {
	q pgx.Tx
	// write: the transaction is an Update's, whose reads of rows it may change lock them.
	write bool
	// done is set when the function the reader was given to has returned; a reader kept
	// beyond that is refused instead of running SQL on a connection back in the pool.
	done atomic.Bool
}

var errTxDone = errors.New("transaction already finished")

// check returns why not to run SQL, if so.
func (r *reader) check(ctx context.Context) error {
	if r.done.Load() {
		return errTxDone
	}
	return ctx.Err()
}

// forUpdate is the locking clause of a read that an Update may act on.
func (r *reader) forUpdate() string {
	if r.write {
		return " FOR UPDATE"
	}
	return ""
}

var nanos, fromNanos = store.Nanos, store.FromNanos

func encode(what string, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", what, err)
	}
	return string(b), nil
}

func decode(what, doc string, v any) error {
	if err := json.Unmarshal([]byte(doc), v); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	return nil
}

// strs converts a list of string-typed values for a text[] parameter (= ANY($n)).
func strs[S ~string](vs []S) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// limitArg maps "no limit" (limit <= 0) to LIMIT NULL (LIMIT ALL).
func limitArg(limit int) any {
	if limit <= 0 {
		return nil
	}
	return limit
}

// collect reads every row of rows with scan.
func collect[T any](rows pgx.Rows, scan func(row pgx.Rows) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func (r *reader) PipelineVersion(ctx context.Context, name string, version int) (*store.PipelineVersion, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	pv := &store.PipelineVersion{Name: name}
	var created int64
	var err error
	if version == 0 {
		err = r.q.QueryRow(ctx, `SELECT version, definition, created_at FROM pipeline_versions
			WHERE name = $1 ORDER BY version DESC LIMIT 1`, name).Scan(&pv.Version, &pv.Definition, &created)
	} else {
		err = r.q.QueryRow(ctx, `SELECT version, definition, created_at FROM pipeline_versions
			WHERE name = $1 AND version = $2`, name, version).Scan(&pv.Version, &pv.Definition, &created)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get pipeline %s version %d: %w", name, version, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get pipeline %s version %d: %w", name, version, err)
	}
	pv.CreatedAt = fromNanos(created)
	return pv, nil
}

func (r *reader) Pipelines(ctx context.Context) ([]*store.PipelineVersion, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	rows, err := r.q.Query(ctx, `SELECT DISTINCT ON (name) name, version, created_at FROM pipeline_versions
		ORDER BY name, version DESC`)
	if err != nil {
		return nil, fmt.Errorf("list pipelines: %w", err)
	}
	out, err := collect(rows, scanVersion)
	if err != nil {
		return nil, fmt.Errorf("list pipelines: %w", err)
	}
	return out, nil
}

func (r *reader) PipelineVersions(ctx context.Context, name string) ([]*store.PipelineVersion, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	rows, err := r.q.Query(ctx, `SELECT name, version, created_at FROM pipeline_versions
		WHERE name = $1 ORDER BY version`, name)
	if err != nil {
		return nil, fmt.Errorf("list versions of pipeline %s: %w", name, err)
	}
	out, err := collect(rows, scanVersion)
	if err != nil {
		return nil, fmt.Errorf("list versions of pipeline %s: %w", name, err)
	}
	return out, nil
}

func scanVersion(row pgx.Rows) (*store.PipelineVersion, error) {
	var pv store.PipelineVersion
	var created int64
	if err := row.Scan(&pv.Name, &pv.Version, &created); err != nil {
		return nil, err
	}
	pv.CreatedAt = fromNanos(created)
	return &pv, nil
}

// Execution reads an execution; in a Tx it locks its row until the transaction ends, so
// that a concurrent transaction (of any server) changing it waits for this one and then
// reads what this one wrote.
func (r *reader) Execution(ctx context.Context, id string) (*engine.Execution, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	var seq int64
	var doc string
	err := r.q.QueryRow(ctx, `SELECT seq, doc FROM executions WHERE id = $1`+r.forUpdate(), id).Scan(&seq, &doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get execution %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get execution %s: %w", id, err)
	}
	e, err := decodeExecution(seq, doc)
	if err != nil {
		return nil, err
	}
	if err := r.loadActions(ctx, map[string]*engine.Execution{id: e}); err != nil {
		return nil, fmt.Errorf("get execution %s: %w", id, err)
	}
	return e, nil
}

func decodeExecution(seq int64, doc string) (*engine.Execution, error) {
	e := new(engine.Execution)
	if err := decode("execution", doc, e); err != nil {
		return nil, err
	}
	e.Seq = seq // the column is authoritative
	return e, nil
}

// Executions lists executions. It does not lock them, in a Tx either: a transaction that
// changes one reads it with Execution first.
func (r *reader) Executions(ctx context.Context, f store.ExecutionFilter) ([]*engine.Execution, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	if f.BeforeSeq > 0 && f.Pipeline == "" {
		return nil, errors.New("list executions: BeforeSeq needs Pipeline")
	}
	var q strings.Builder
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	q.WriteString("SELECT seq, doc FROM executions WHERE true")
	if f.Pipeline != "" {
		q.WriteString(" AND pipeline = " + arg(f.Pipeline))
	}
	if len(f.Statuses) > 0 {
		q.WriteString(" AND status = ANY(" + arg(strs(f.Statuses)) + ")")
	}
	if f.SucceededInStage != "" {
		q.WriteString(" AND EXISTS (SELECT 1 FROM json_array_elements(doc::json -> 'stages') AS st" +
			" WHERE st ->> 'name' = " + arg(f.SucceededInStage) + " AND st ->> 'status' = 'Succeeded')")
	}
	if f.BeforeSeq > 0 {
		q.WriteString(" AND seq < " + arg(f.BeforeSeq))
	}
	if !f.UpdatedAfter.IsZero() {
		q.WriteString(" AND updated_at > " + arg(nanos(f.UpdatedAfter)))
	}
	if f.Pipeline != "" {
		q.WriteString(" ORDER BY seq DESC")
	} else {
		q.WriteString(" ORDER BY created_at DESC, ord DESC")
	}
	q.WriteString(" LIMIT " + arg(limitArg(f.Limit)))

	rows, err := r.q.Query(ctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("list executions: %w", err)
	}
	out, err := collect(rows, func(row pgx.Rows) (*engine.Execution, error) {
		var seq int64
		var doc string
		if err := row.Scan(&seq, &doc); err != nil {
			return nil, err
		}
		return decodeExecution(seq, doc)
	})
	if err != nil {
		return nil, fmt.Errorf("list executions: %w", err)
	}
	byID := make(map[string]*engine.Execution, len(out))
	for _, e := range out {
		byID[e.ID] = e
	}
	if err := r.loadActions(ctx, byID); err != nil {
		return nil, fmt.Errorf("list executions: %w", err)
	}
	return out, nil
}

// lockKey names what a transaction-scoped advisory lock serializes: the two int4 keys of
// pg_advisory_xact_lock, a kind and the hash of a name. Two names with one hash only share
// a lock, which serializes a little more, never less.
type lockKind int32

const (
	lockStages   lockKind = iota + 1 // a pipeline's stage locks
	lockNamed                        // a named lock
	lockSeq                          // a pipeline's execution Seqs
	lockLog                          // a job's log chunks
	lockPipeline                     // a pipeline's versions
)

// lock takes the advisory lock of kind on each name, in the order given; it is released when
// the transaction ends (taking it again meanwhile is free). A View takes none.
func (r *reader) lock(ctx context.Context, kind lockKind, names ...string) error {
	if !r.write || len(names) == 0 {
		return nil
	}
	// unnest yields the names in order, and each row's lock is taken as it is produced.
	_, err := r.q.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(n)) FROM unnest($2::text[]) AS n`,
		int32(kind), names)
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	return nil
}

// sortedUnique returns names sorted without repeats: the order in which to lock them.
func sortedUnique(names []string) []string {
	return slices.Compact(slices.Sorted(slices.Values(names)))
}

func (r *reader) StageLocks(ctx context.Context, pipeline string) (map[string]*engine.StageLock, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	// A stage without a row is free: a row lock cannot guard it, the pipeline's advisory
	// lock does (PutStageLock takes it too).
	if err := r.lock(ctx, lockStages, pipeline); err != nil {
		return nil, fmt.Errorf("get stage locks of %s: %w", pipeline, err)
	}
	rows, err := r.q.Query(ctx, `SELECT stage, doc FROM stage_locks WHERE pipeline = $1`, pipeline)
	if err != nil {
		return nil, fmt.Errorf("get stage locks of %s: %w", pipeline, err)
	}
	list, err := collect(rows, func(row pgx.Rows) (*engine.StageLock, error) {
		var stage, doc string
		if err := row.Scan(&stage, &doc); err != nil {
			return nil, err
		}
		l := new(engine.StageLock)
		if err := decode("stage lock", doc, l); err != nil {
			return nil, err
		}
		l.Stage = stage
		return l, nil
	})
	if err != nil {
		return nil, fmt.Errorf("get stage locks of %s: %w", pipeline, err)
	}
	locks := make(map[string]*engine.StageLock, len(list))
	for _, l := range list {
		locks[l.Stage] = l
	}
	return locks, nil
}

func (r *reader) CountExecutions(ctx context.Context, pipeline string, statuses ...engine.ExecutionStatus) (int, error) {
	if err := r.check(ctx); err != nil {
		return 0, err
	}
	var n int
	err := r.q.QueryRow(ctx, `SELECT COUNT(*) FROM executions WHERE pipeline = $1
		AND (cardinality($2::text[]) = 0 OR status = ANY($2))`, pipeline, strs(statuses)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count executions of %s: %w", pipeline, err)
	}
	return n, nil
}

func (r *reader) NamedLocks(ctx context.Context, names ...string) (map[string]*engine.NamedLock, error) {
	locks := make(map[string]*engine.NamedLock)
	if len(names) == 0 {
		return locks, nil
	}
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	// Absent rows are free locks: each name's advisory lock guards it, taken in sorted order
	// so that two transactions wanting the same names cannot deadlock.
	if err := r.lock(ctx, lockNamed, sortedUnique(names)...); err != nil {
		return nil, fmt.Errorf("get named locks: %w", err)
	}
	rows, err := r.q.Query(ctx, `SELECT name, doc FROM named_locks WHERE name = ANY($1)`, names)
	if err != nil {
		return nil, fmt.Errorf("get named locks: %w", err)
	}
	list, err := collect(rows, func(row pgx.Rows) (*engine.NamedLock, error) {
		var name, doc string
		if err := row.Scan(&name, &doc); err != nil {
			return nil, err
		}
		l := new(engine.NamedLock)
		if err := decode("named lock", doc, l); err != nil {
			return nil, err
		}
		l.Name = name
		return l, nil
	})
	if err != nil {
		return nil, fmt.Errorf("get named locks: %w", err)
	}
	for _, l := range list {
		locks[l.Name] = l
	}
	return locks, nil
}

const jobColumns = `id, execution_id, pipeline, provider, spec, state, worker, epoch, lease_until,
	pgid, pstart, created_at, updated_at`

// scanJob reads a row of jobColumns.
func scanJob(row pgx.Row) (*store.Job, error) {
	var (
		j                               store.Job
		spec, state                     string
		leaseUntil, pstart, created, up int64
	)
	err := row.Scan(&j.ID, &j.ExecutionID, &j.Pipeline, &j.Provider, &spec, &state, &j.Worker,
		&j.Epoch, &leaseUntil, &j.Pgid, &pstart, &created, &up)
	if err != nil {
		return nil, err
	}
	if err := decode("job spec", spec, &j.Spec); err != nil {
		return nil, err
	}
	j.State = store.JobState(state)
	j.LeaseUntil = fromNanos(leaseUntil)
	j.PStart = uint64(pstart)
	j.CreatedAt = fromNanos(created)
	j.UpdatedAt = fromNanos(up)
	return &j, nil
}

func (r *reader) queryJobs(ctx context.Context, query string, args ...any) ([]*store.Job, error) {
	rows, err := r.q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row pgx.Rows) (*store.Job, error) { return scanJob(row) })
}

func (r *reader) Job(ctx context.Context, id string) (*store.Job, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	j, err := scanJob(r.q.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get job %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	return j, nil
}

func (r *reader) Jobs(ctx context.Context, states ...store.JobState) ([]*store.Job, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	jobs, err := r.queryJobs(ctx, `SELECT `+jobColumns+` FROM jobs
		WHERE cardinality($1::text[]) = 0 OR state = ANY($1) ORDER BY created_at, id`, strs(states))
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return jobs, nil
}

func (r *reader) NextTimer(ctx context.Context) (time.Time, bool, error) {
	if err := r.check(ctx); err != nil {
		return time.Time{}, false, err
	}
	var due int64
	err := r.q.QueryRow(ctx, `SELECT due FROM timers ORDER BY due LIMIT 1`).Scan(&due)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("get next timer: %w", err)
	}
	return fromNanos(due), true, nil
}

func (r *reader) EventByKey(ctx context.Context, key string) (*store.Event, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	ev := &store.Event{Key: key}
	var doc string
	var created int64
	err := r.q.QueryRow(ctx, `SELECT seq, doc, created_at FROM inbox WHERE key = $1`, key).Scan(&ev.Seq, &doc, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get event %s: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get event %s: %w", key, err)
	}
	if err := decode("event", doc, &ev.Event); err != nil {
		return nil, err
	}
	ev.CreatedAt = fromNanos(created)
	return ev, nil
}

func (r *reader) PendingEvents(ctx context.Context, limit int) ([]*store.Event, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	rows, err := r.q.Query(ctx, `SELECT seq, key, doc, created_at FROM inbox
		WHERE processed_at IS NULL ORDER BY seq LIMIT $1`, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("list pending events: %w", err)
	}
	evs, err := collect(rows, func(row pgx.Rows) (*store.Event, error) {
		ev := new(store.Event)
		var doc string
		var created int64
		if err := row.Scan(&ev.Seq, &ev.Key, &doc, &created); err != nil {
			return nil, err
		}
		ev.CreatedAt = fromNanos(created)
		return ev, decode("event", doc, &ev.Event)
	})
	if err != nil {
		return nil, fmt.Errorf("list pending events: %w", err)
	}
	return evs, nil
}

func (r *reader) DueTimers(ctx context.Context, now time.Time, limit int) ([]*engine.Timer, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	rows, err := r.q.Query(ctx, `SELECT due, doc FROM timers WHERE due <= $1 ORDER BY due, id LIMIT $2`,
		nanos(now), limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("list due timers: %w", err)
	}
	timers, err := collect(rows, func(row pgx.Rows) (*engine.Timer, error) {
		var due int64
		var doc string
		if err := row.Scan(&due, &doc); err != nil {
			return nil, err
		}
		tm := new(engine.Timer)
		if err := decode("timer", doc, tm); err != nil {
			return nil, err
		}
		tm.Due = fromNanos(due)
		return tm, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list due timers: %w", err)
	}
	return timers, nil
}

func (r *reader) PendingOutbox(ctx context.Context, limit int) ([]*store.OutboxMessage, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	rows, err := r.q.Query(ctx, `SELECT seq, key, kind, payload, created_at FROM outbox
		ORDER BY seq LIMIT $1`, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("list outbox: %w", err)
	}
	msgs, err := collect(rows, func(row pgx.Rows) (*store.OutboxMessage, error) {
		m := new(store.OutboxMessage)
		var created int64
		if err := row.Scan(&m.Seq, &m.Key, &m.Kind, &m.Payload, &created); err != nil {
			return nil, err
		}
		m.CreatedAt = fromNanos(created)
		return m, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list outbox: %w", err)
	}
	return msgs, nil
}

func (r *reader) Log(ctx context.Context, jobID string, afterSeq int64, limit int) ([]store.LogChunk, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	rows, err := r.q.Query(ctx, `SELECT seq, data FROM logs WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
		jobID, afterSeq, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("read log of job %s: %w", jobID, err)
	}
	out, err := collect(rows, func(row pgx.Rows) (store.LogChunk, error) {
		var c store.LogChunk
		err := row.Scan(&c.Seq, &c.Data)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("read log of job %s: %w", jobID, err)
	}
	return out, nil
}
