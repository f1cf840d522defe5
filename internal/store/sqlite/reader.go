package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/store"
)

// reader implements store.Reader on a connection inside a transaction: the writer's (for a
// Tx, which then sees its own writes) or a read connection's (for View).
type reader struct {
	c     *conn
	cache *execCache
	// write: SQL runs under context.Background() once the caller's context has been checked.
	// A statement interrupted by a cancelled context inside an explicit transaction can make
	// SQLite roll back the whole transaction, which on the writer holds other callers' work.
	write bool
	// done is set when the function the reader was given to has returned; a reader kept
	// beyond that is refused instead of running SQL in someone else's transaction.
	done atomic.Bool
	now  func() time.Time // the store's clock (Options.Now)
}

var errTxDone = errors.New("transaction already finished")

// ctx returns the context to run SQL under, or why not to run it.
func (r *reader) ctx(ctx context.Context) (context.Context, error) {
	if r.done.Load() {
		return nil, errTxDone
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if r.write {
		return context.Background(), nil
	}
	return ctx, nil
}

func (r *reader) PipelineVersion(ctx context.Context, name string, version int) (*store.PipelineVersion, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	pv := &store.PipelineVersion{Name: name}
	var created int64
	if version == 0 {
		err = r.c.queryRow(qctx, `SELECT version, definition, created_at FROM pipeline_versions
			WHERE name = ? ORDER BY version DESC LIMIT 1`, []any{name}, &pv.Version, &pv.Definition, &created)
	} else {
		err = r.c.queryRow(qctx, `SELECT version, definition, created_at FROM pipeline_versions
			WHERE name = ? AND version = ?`, []any{name, version}, &pv.Version, &pv.Definition, &created)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get pipeline %s version %d: %w", name, version, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get pipeline %s version %d: %w", name, version, err)
	}
	pv.CreatedAt = fromNanos(created)
	return pv, nil
}

func (r *reader) Execution(ctx context.Context, id string) (*engine.Execution, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	var seq, rev int64
	err = r.c.queryRow(qctx, `SELECT seq, rev FROM executions WHERE id = ?`, []any{id}, &seq, &rev)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get execution %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get execution %s: %w", id, err)
	}
	if e := r.cache.get(id, rev); e != nil {
		return e, nil
	}
	var doc []byte
	if err := r.c.queryRow(qctx, `SELECT doc FROM executions WHERE id = ?`, []any{id}, &doc); err != nil {
		return nil, fmt.Errorf("get execution %s: %w", id, err)
	}
	e, err := decodeExecution(seq, doc)
	if err == nil {
		err = r.loadActions(qctx, map[string]*engine.Execution{id: e})
	}
	if err == nil && !r.write {
		r.cache.put(id, rev, e.Clone()) // a View reads committed state only
	}
	return e, err
}

func decodeExecution(seq int64, doc []byte) (*engine.Execution, error) {
	e := new(engine.Execution)
	if err := decode("execution", doc, e); err != nil {
		return nil, err
	}
	e.Seq = seq // the column is authoritative
	return e, nil
}

func (r *reader) Executions(ctx context.Context, f store.ExecutionFilter) ([]*engine.Execution, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	if f.BeforeSeq > 0 && f.Pipeline == "" {
		return nil, errors.New("list executions: BeforeSeq needs Pipeline")
	}
	// At most sixteen shapes of query, each a cached prepared statement.
	var q strings.Builder
	var args []any
	q.WriteString("SELECT seq, doc FROM executions")
	where := " WHERE "
	if f.Pipeline != "" {
		q.WriteString(where + "pipeline = ?")
		args = append(args, f.Pipeline)
		where = " AND "
	}
	if len(f.Statuses) > 0 {
		list, err := jsonList(f.Statuses)
		if err != nil {
			return nil, err
		}
		q.WriteString(where + "status IN (SELECT value FROM json_each(?))")
		args = append(args, list)
		where = " AND "
	}
	if f.SucceededInStage != "" {
		q.WriteString(where + "EXISTS (SELECT 1 FROM json_each(doc, '$.stages') AS st" +
			" WHERE st.value ->> '$.name' = ? AND st.value ->> '$.status' = 'Succeeded')")
		args = append(args, f.SucceededInStage)
		where = " AND "
	}
	if f.BeforeSeq > 0 {
		q.WriteString(where + "seq < ?")
		args = append(args, f.BeforeSeq)
		where = " AND "
	}
	if !f.UpdatedAfter.IsZero() {
		q.WriteString(where + "updated_at > ?")
		args = append(args, nanos(f.UpdatedAfter))
	}
	if f.Pipeline != "" {
		q.WriteString(" ORDER BY seq DESC")
	} else {
		q.WriteString(" ORDER BY created_at DESC, rowid DESC")
	}
	q.WriteString(" LIMIT ?")
	args = append(args, limitArg(f.Limit))

	rows, err := r.c.query(qctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("list executions: %w", err)
	}
	defer rows.Close()
	var out []*engine.Execution
	for rows.Next() {
		var seq int64
		var doc []byte
		if err := rows.Scan(&seq, &doc); err != nil {
			return nil, fmt.Errorf("list executions: %w", err)
		}
		e, err := decodeExecution(seq, doc)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list executions: %w", err)
	}
	rows.Close()
	byID := make(map[string]*engine.Execution, len(out))
	for _, e := range out {
		byID[e.ID] = e
	}
	if err := r.loadActions(qctx, byID); err != nil {
		return nil, fmt.Errorf("list executions: %w", err)
	}
	return out, nil
}

func (r *reader) StageLocks(ctx context.Context, pipeline string) (map[string]*engine.StageLock, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := r.c.query(qctx, `SELECT stage, doc FROM stage_locks WHERE pipeline = ?`, pipeline)
	if err != nil {
		return nil, fmt.Errorf("get stage locks of %s: %w", pipeline, err)
	}
	defer rows.Close()
	locks := make(map[string]*engine.StageLock)
	for rows.Next() {
		var stage string
		var doc []byte
		if err := rows.Scan(&stage, &doc); err != nil {
			return nil, fmt.Errorf("get stage locks of %s: %w", pipeline, err)
		}
		l := new(engine.StageLock)
		if err := decode("stage lock", doc, l); err != nil {
			return nil, err
		}
		locks[stage] = l
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("get stage locks of %s: %w", pipeline, err)
	}
	return locks, nil
}

func (r *reader) CountExecutions(ctx context.Context, pipeline string, statuses ...engine.ExecutionStatus) (int, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return 0, err
	}
	q, args := `SELECT COUNT(*) FROM executions WHERE pipeline = ?`, []any{pipeline}
	if len(statuses) > 0 {
		list, err := jsonList(statuses)
		if err != nil {
			return 0, err
		}
		q += ` AND status IN (SELECT value FROM json_each(?))`
		args = append(args, list)
	}
	var n int
	if err := r.c.queryRow(qctx, q, args, &n); err != nil {
		return 0, fmt.Errorf("count executions of %s: %w", pipeline, err)
	}
	return n, nil
}

func (r *reader) NamedLocks(ctx context.Context, names ...string) (map[string]*engine.NamedLock, error) {
	locks := make(map[string]*engine.NamedLock)
	if len(names) == 0 {
		return locks, nil
	}
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	list, err := jsonList(names)
	if err != nil {
		return nil, err
	}
	rows, err := r.c.query(qctx, `SELECT name, doc FROM named_locks WHERE name IN (SELECT value FROM json_each(?))`, list)
	if err != nil {
		return nil, fmt.Errorf("get named locks: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var doc []byte
		if err := rows.Scan(&name, &doc); err != nil {
			return nil, fmt.Errorf("get named locks: %w", err)
		}
		l := new(engine.NamedLock)
		if err := decode("named lock", doc, l); err != nil {
			return nil, err
		}
		locks[name] = l
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("get named locks: %w", err)
	}
	return locks, nil
}

const jobColumns = `id, execution_id, pipeline, provider, spec, state, worker, epoch, lease_until,
	pgid, pstart, created_at, updated_at`

// scanJob reads a row of jobColumns.
func scanJob(scan func(dest ...any) error) (*store.Job, error) {
	var (
		j                               store.Job
		spec                            []byte
		leaseUntil, pstart, created, up int64
	)
	err := scan(&j.ID, &j.ExecutionID, &j.Pipeline, &j.Provider, &spec, &j.State, &j.Worker,
		&j.Epoch, &leaseUntil, &j.Pgid, &pstart, &created, &up)
	if err != nil {
		return nil, err
	}
	if err := decode("job spec", spec, &j.Spec); err != nil {
		return nil, err
	}
	j.LeaseUntil = fromNanos(leaseUntil)
	j.PStart = uint64(pstart)
	j.CreatedAt = fromNanos(created)
	j.UpdatedAt = fromNanos(up)
	return &j, nil
}

// queryJob runs a query returning at most one row of jobColumns; sql.ErrNoRows when none.
func (r *reader) queryJob(ctx context.Context, query string, args ...any) (*store.Job, error) {
	st, err := r.c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return scanJob(st.QueryRowContext(ctx, args...).Scan)
}

func (r *reader) queryJobs(ctx context.Context, query string, args ...any) ([]*store.Job, error) {
	rows, err := r.c.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var jobs []*store.Job
	for rows.Next() {
		j, err := scanJob(rows.Scan)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, rows.Err()
}

func (r *reader) Job(ctx context.Context, id string) (*store.Job, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	j, err := r.queryJob(qctx, `SELECT `+jobColumns+` FROM jobs WHERE id = ?`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get job %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	return j, nil
}

func (r *reader) Jobs(ctx context.Context, states ...store.JobState) ([]*store.Job, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	var jobs []*store.Job
	if len(states) == 0 {
		jobs, err = r.queryJobs(qctx, `SELECT `+jobColumns+` FROM jobs ORDER BY created_at, id`)
	} else {
		var list string
		if list, err = jsonList(states); err != nil {
			return nil, err
		}
		jobs, err = r.queryJobs(qctx, `SELECT `+jobColumns+` FROM jobs
			WHERE state IN (SELECT value FROM json_each(?)) ORDER BY created_at, id`, list)
	}
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return jobs, nil
}

func (r *reader) NextTimer(ctx context.Context) (time.Time, bool, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return time.Time{}, false, err
	}
	var due int64
	err = r.c.queryRow(qctx, `SELECT due FROM timers ORDER BY due LIMIT 1`, nil, &due)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("get next timer: %w", err)
	}
	return fromNanos(due), true, nil
}

func (r *reader) Log(ctx context.Context, jobID string, afterSeq int64, limit int) ([]store.LogChunk, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := r.c.query(qctx, `SELECT seq, data FROM logs WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
		jobID, afterSeq, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("read log of job %s: %w", jobID, err)
	}
	defer rows.Close()
	var out []store.LogChunk
	for rows.Next() {
		var c store.LogChunk
		if err := rows.Scan(&c.Seq, &c.Data); err != nil {
			return nil, fmt.Errorf("read log of job %s: %w", jobID, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read log of job %s: %w", jobID, err)
	}
	return out, nil
}
