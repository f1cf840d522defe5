package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/store"
)

// tx implements store.Tx on the writer's connection, inside the batch's transaction and the
// caller's savepoint.
type tx struct {
	reader
	// written are the executions this function wrote, for the cache once the batch commits.
	written []cachedWrite
	// notify records the topics this function changed (inbox events, jobs, timers, outbox);
	// the writer signals their subscribers once the batch holding it has committed.
	notify store.Topic
}

var _ store.Tx = (*tx)(nil)

func (t *tx) PutPipelineVersion(ctx context.Context, name string, definition []byte, now time.Time) (int, error) {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return 0, err
	}
	var latest int
	var def []byte
	err = t.c.queryRow(qctx, `SELECT version, definition FROM pipeline_versions
		WHERE name = ? ORDER BY version DESC LIMIT 1`, []any{name}, &latest, &def)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return 0, fmt.Errorf("put pipeline %s: %w", name, err)
	case bytes.Equal(def, definition):
		return latest, nil
	}
	if definition == nil {
		definition = []byte{} // the column is NOT NULL
	}
	_, err = t.c.exec(qctx, `INSERT INTO pipeline_versions (name, version, definition, created_at)
		VALUES (?, ?, ?, ?)`, name, latest+1, definition, nanos(now))
	if err != nil {
		return 0, fmt.Errorf("put pipeline %s: %w", name, err)
	}
	return latest + 1, nil
}

func (t *tx) CreateExecution(ctx context.Context, e *engine.Execution) error {
	t.notify |= store.TopicExecutions
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	var seq int64
	err = t.c.queryRow(qctx, `SELECT COALESCE(MAX(seq), 0) + 1 FROM executions WHERE pipeline = ?`,
		[]any{e.Pipeline}, &seq)
	if err != nil {
		return fmt.Errorf("create execution %s: %w", e.ID, err)
	}
	c := *e
	c.Seq = seq
	doc, err := encode("execution", head(&c))
	if err != nil {
		return err
	}
	res, err := t.c.exec(qctx, `INSERT INTO executions (id, pipeline, seq, status, created_at, updated_at, doc)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		e.ID, e.Pipeline, seq, string(e.Status), nanos(e.CreatedAt), nanos(e.UpdatedAt), doc)
	if err != nil {
		return fmt.Errorf("create execution %s: %w", e.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("create execution %s: %w", e.ID, err)
	} else if n == 0 {
		return fmt.Errorf("create execution %s: id in use: %w", e.ID, store.ErrConflict)
	}
	if err := t.putActions(qctx, &c, nil); err != nil {
		return err
	}
	e.Seq = seq
	t.written = append(t.written, cachedWrite{rev: 1, exec: c.Clone()})
	return nil
}

// previous returns the state of execution id at revision rev, as this transaction wrote it
// or the cache holds it, or nil. It is only read.
func (t *tx) previous(id string, rev int64) *engine.Execution {
	for i := len(t.written) - 1; i >= 0; i-- {
		if w := t.written[i]; w.exec.ID == id {
			if w.rev == rev {
				return w.exec
			}
			return nil
		}
	}
	return t.cache.peek(id, rev)
}

// cachedWrite is an execution written by a transaction, at the revision it wrote.
type cachedWrite struct {
	rev  int64
	exec *engine.Execution
}

func (t *tx) PutExecution(ctx context.Context, e *engine.Execution) error {
	t.notify |= store.TopicExecutions
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	doc, err := encode("execution", head(e))
	if err != nil {
		return err
	}
	var rev int64
	err = t.c.queryRow(qctx, `UPDATE executions SET status = ?, updated_at = ?, doc = ?, rev = rev + 1 WHERE id = ?
		RETURNING rev`, []any{string(e.Status), nanos(e.UpdatedAt), doc, e.ID}, &rev)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("put execution %s: %w", e.ID, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("put execution %s: %w", e.ID, err)
	}
	// The actions to write are those that differ from the state this one replaces, when
	// it is known (written earlier in this batch, or cached); otherwise all of them.
	if err := t.putActions(qctx, e, t.previous(e.ID, rev-1)); err != nil {
		return err
	}
	t.written = append(t.written, cachedWrite{rev: rev, exec: e.Clone()})
	return nil
}

// expectRow turns "no row changed" into ErrNotFound.
func (t *tx) ClaimEvent(ctx context.Context, seq int64, now time.Time) (bool, error) {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return false, err
	}
	res, err := t.c.exec(qctx, `UPDATE inbox SET processed_at = ? WHERE seq = ? AND processed_at IS NULL`, nanos(now), seq)
	if err != nil {
		return false, fmt.Errorf("claim event %d: %w", seq, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return n == 1, err
	}
	var one int
	err = t.c.queryRow(qctx, `SELECT 1 FROM inbox WHERE seq = ?`, []any{seq}, &one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("claim event %d: %w", seq, store.ErrNotFound)
	}
	return false, err
}

func expectRow(res sql.Result, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

func (t *tx) PutNamedLock(ctx context.Context, l *engine.NamedLock) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	doc, err := encode("named lock", l)
	if err != nil {
		return err
	}
	_, err = t.c.exec(qctx, `INSERT INTO named_locks (name, doc) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET doc = excluded.doc`, l.Name, doc)
	if err != nil {
		return fmt.Errorf("put named lock %s: %w", l.Name, err)
	}
	return nil
}

func (t *tx) PutStageLock(ctx context.Context, l *engine.StageLock) error {
	t.notify |= store.TopicStageLocks
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	doc, err := encode("stage lock", l)
	if err != nil {
		return err
	}
	_, err = t.c.exec(qctx, `INSERT INTO stage_locks (pipeline, stage, doc) VALUES (?, ?, ?)
		ON CONFLICT (pipeline, stage) DO UPDATE SET doc = excluded.doc`, l.Pipeline, l.Stage, doc)
	if err != nil {
		return fmt.Errorf("put stage lock %s/%s: %w", l.Pipeline, l.Stage, err)
	}
	return nil
}

func (t *tx) AddEvent(ctx context.Context, ev *store.Event) (bool, error) {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return false, err
	}
	if ev.Key == "" {
		return false, errors.New("add event: empty key")
	}
	doc, err := encode("event", &ev.Event)
	if err != nil {
		return false, err
	}
	var seq int64
	var processed any // NULL: pending
	if !ev.ProcessedAt.IsZero() {
		processed = nanos(ev.ProcessedAt)
	}
	err = t.c.queryRow(qctx, `INSERT INTO inbox (key, execution_id, doc, created_at, processed_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (key) DO NOTHING RETURNING seq`,
		[]any{ev.Key, ev.Event.ExecutionID, doc, nanos(ev.CreatedAt), processed}, &seq)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil // seen before
	}
	if err != nil {
		return false, fmt.Errorf("add event %s: %w", ev.Key, err)
	}
	ev.Seq = seq
	if processed == nil {
		t.notify |= store.TopicEvents
	}
	return true, nil
}

func (r *reader) PendingEvents(ctx context.Context, limit int) ([]*store.Event, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := r.c.query(qctx, `SELECT seq, key, doc, created_at FROM inbox
		WHERE processed_at IS NULL ORDER BY seq LIMIT ?`, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("list pending events: %w", err)
	}
	defer rows.Close()
	var evs []*store.Event
	for rows.Next() {
		ev := new(store.Event)
		var doc []byte
		var created int64
		if err := rows.Scan(&ev.Seq, &ev.Key, &doc, &created); err != nil {
			return nil, fmt.Errorf("list pending events: %w", err)
		}
		if err := decode("event", doc, &ev.Event); err != nil {
			return nil, err
		}
		ev.CreatedAt = fromNanos(created)
		evs = append(evs, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list pending events: %w", err)
	}
	return evs, nil
}

func (t *tx) MarkEventProcessed(ctx context.Context, seq int64, now time.Time) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	// COALESCE keeps the first processing time when marked twice.
	res, err := t.c.exec(qctx, `UPDATE inbox SET processed_at = COALESCE(processed_at, ?) WHERE seq = ?`,
		nanos(now), seq)
	if err != nil {
		return fmt.Errorf("mark event %d processed: %w", seq, err)
	}
	return expectRow(res, fmt.Sprintf("mark event %d processed", seq))
}

func (t *tx) AddJob(ctx context.Context, j *store.Job) (bool, error) {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return false, err
	}
	spec, err := encode("job spec", &j.Spec)
	if err != nil {
		return false, err
	}
	runOn := "[]"
	if len(j.Spec.RunOn) > 0 {
		if runOn, err = jsonList(j.Spec.RunOn); err != nil {
			return false, err
		}
	}
	res, err := t.c.exec(qctx, `INSERT INTO jobs (id, execution_id, pipeline, provider, spec, run_on, state,
		created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?) ON CONFLICT (id) DO NOTHING`,
		j.ID, j.ExecutionID, j.Pipeline, j.Provider, spec, runOn, nanos(j.CreatedAt), nanos(j.CreatedAt))
	if err != nil {
		return false, fmt.Errorf("add job %s: %w", j.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("add job %s: %w", j.ID, err)
	}
	if n == 0 {
		return false, nil
	}
	t.notify |= store.TopicJobs
	return true, nil
}

// LeaseJob leases until the store's clock (Options.Now) plus ttl: one process's file, one
// clock.
func (t *tx) LeaseJob(ctx context.Context, l store.Leaser, ttl time.Duration) (*store.Job, error) {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return nil, err
	}
	now := t.now()
	// A job with no runOn (the usual case) needs no label: run_on '[]' is checked first.
	where, args := "state = 'queued'", []any{l.Worker, nanos(now.Add(ttl)), nanos(now)}
	if len(l.Providers) > 0 {
		list, err := jsonList(l.Providers)
		if err != nil {
			return nil, err
		}
		where += " AND provider IN (SELECT value FROM json_each(?))"
		args = append(args, list)
	}
	if len(l.Labels) == 0 {
		where += " AND run_on = '[]'"
	} else {
		list, err := jsonList(l.Labels)
		if err != nil {
			return nil, err
		}
		where += ` AND (run_on = '[]' OR NOT EXISTS (SELECT 1 FROM json_each(jobs.run_on) AS r
			WHERE r.value NOT IN (SELECT value FROM json_each(?))))`
		args = append(args, list)
	}
	j, err := t.queryJob(qctx, `UPDATE jobs SET state = 'leased', worker = ?, epoch = epoch + 1,
		lease_until = ?, updated_at = ?
		WHERE id = (SELECT id FROM jobs WHERE `+where+` ORDER BY created_at, id LIMIT 1)
		RETURNING `+jobColumns, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lease job: %w", err)
	}
	return j, nil
}

func (t *tx) Heartbeat(ctx context.Context, id string, epoch int64, ttl time.Duration) (*store.Job, error) {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return nil, err
	}
	now := t.now()
	j, err := t.queryJob(qctx, `UPDATE jobs SET lease_until = ?, updated_at = ?
		WHERE id = ? AND state = 'leased' AND epoch = ? RETURNING `+jobColumns,
		nanos(now.Add(ttl)), nanos(now), id, epoch)
	if err == nil {
		if err := t.TouchWorker(ctx, j.Worker); err != nil {
			return nil, fmt.Errorf("heartbeat job %s: %w", id, err)
		}
		return j, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("heartbeat job %s: %w", id, err)
	}
	// Not leased with that epoch: return the job as it is, so the worker sees why.
	j, err = t.Job(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("heartbeat job %s: %w", id, err)
	}
	return j, fmt.Errorf("heartbeat job %s epoch %d: job is %s with epoch %d: %w",
		id, epoch, j.State, j.Epoch, store.ErrConflict)
}

// guarded runs an epoch-guarded UPDATE of one job; when it changes no row it tells a
// missing job (ErrNotFound) from one in another state or epoch (ErrConflict).
func (t *tx) guarded(ctx context.Context, what, id string, epoch int64, query string, args ...any) error {
	res, err := t.c.exec(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, id, err)
	}
	if n == 1 {
		return nil
	}
	var state string
	var cur int64
	err = t.c.queryRow(ctx, `SELECT state, epoch FROM jobs WHERE id = ?`, []any{id}, &state, &cur)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s %s: %w", what, id, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, id, err)
	}
	return fmt.Errorf("%s %s epoch %d: job is %s with epoch %d: %w", what, id, epoch, state, cur, store.ErrConflict)
}

func (t *tx) SetJobProcess(ctx context.Context, id string, epoch int64, pgid int, startTime uint64) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	return t.guarded(qctx, "set process of job", id, epoch, `UPDATE jobs SET pgid = ?, pstart = ?
		WHERE id = ? AND state = 'leased' AND epoch = ?`, pgid, int64(startTime), id, epoch)
}

func (t *tx) FinishJob(ctx context.Context, id string, epoch int64, now time.Time) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	return t.guarded(qctx, "finish job", id, epoch, `UPDATE jobs SET state = 'done', updated_at = ?
		WHERE id = ? AND state = 'leased' AND epoch = ?`, nanos(now), id, epoch)
}

func (t *tx) CancelJob(ctx context.Context, id string, now time.Time) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	res, err := t.c.exec(qctx, `UPDATE jobs SET state = 'cancelled', updated_at = ?
		WHERE id = ? AND state IN ('queued', 'leased')`, nanos(now), id)
	if err != nil {
		return fmt.Errorf("cancel job %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("cancel job %s: %w", id, err)
	} else if n == 1 {
		t.notify |= store.TopicJobs
		return nil
	}
	// Already done or cancelled is fine; a job that never existed is not.
	var one int
	err = t.c.queryRow(qctx, `SELECT 1 FROM jobs WHERE id = ?`, []any{id}, &one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("cancel job %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("cancel job %s: %w", id, err)
	}
	return nil
}

func (t *tx) ExpiredJobs(ctx context.Context) ([]*store.Job, error) {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return nil, err
	}
	jobs, err := t.queryJobs(qctx, `SELECT `+jobColumns+` FROM jobs
		WHERE state = 'leased' AND lease_until < ? ORDER BY lease_until, id`, nanos(t.now()))
	if err != nil {
		return nil, fmt.Errorf("list expired jobs: %w", err)
	}
	return jobs, nil
}

func (t *tx) RequeueJob(ctx context.Context, id string, epoch int64) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	// The job keeps its created_at, so it is leased again before younger ones; its epoch
	// stays, and the next lease increments it past the one a lost worker may still hold.
	err = t.guarded(qctx, "requeue job", id, epoch, `UPDATE jobs SET state = 'queued', worker = '',
		lease_until = 0, pgid = 0, pstart = 0 WHERE id = ? AND state = 'leased' AND epoch = ?`, id, epoch)
	if err != nil {
		return err
	}
	t.notify |= store.TopicJobs
	return nil
}

func (t *tx) AddTimer(ctx context.Context, tm *engine.Timer) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	doc, err := encode("timer", tm)
	if err != nil {
		return err
	}
	res, err := t.c.exec(qctx, `INSERT INTO timers (id, due, doc) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		tm.ID, nanos(tm.Due), doc)
	if err != nil {
		return fmt.Errorf("add timer %s: %w", tm.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("add timer %s: %w", tm.ID, err)
	} else if n == 1 {
		t.notify |= store.TopicTimers
	}
	return nil
}

func (r *reader) DueTimers(ctx context.Context, now time.Time, limit int) ([]*engine.Timer, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := r.c.query(qctx, `SELECT due, doc FROM timers WHERE due <= ? ORDER BY due, id LIMIT ?`,
		nanos(now), limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("list due timers: %w", err)
	}
	defer rows.Close()
	var timers []*engine.Timer
	for rows.Next() {
		var due int64
		var doc []byte
		if err := rows.Scan(&due, &doc); err != nil {
			return nil, fmt.Errorf("list due timers: %w", err)
		}
		tm := new(engine.Timer)
		if err := decode("timer", doc, tm); err != nil {
			return nil, err
		}
		tm.Due = fromNanos(due)
		timers = append(timers, tm)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list due timers: %w", err)
	}
	return timers, nil
}

func (t *tx) DeleteTimer(ctx context.Context, id string) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	if _, err := t.c.exec(qctx, `DELETE FROM timers WHERE id = ?`, id); err != nil {
		return fmt.Errorf("delete timer %s: %w", id, err)
	}
	return nil
}

func (t *tx) AddOutbox(ctx context.Context, m *store.OutboxMessage) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	var seq int64
	err = t.c.queryRow(qctx, `INSERT INTO outbox (key, kind, payload, created_at) VALUES (?, ?, ?, ?)
		RETURNING seq`, []any{m.Key, m.Kind, m.Payload, nanos(m.CreatedAt)}, &seq)
	if err != nil {
		return fmt.Errorf("add outbox %s %s: %w", m.Kind, m.Key, err)
	}
	m.Seq = seq
	t.notify |= store.TopicOutbox
	return nil
}

func (r *reader) PendingOutbox(ctx context.Context, limit int) ([]*store.OutboxMessage, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := r.c.query(qctx, `SELECT seq, key, kind, payload, created_at FROM outbox
		ORDER BY seq LIMIT ?`, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("list outbox: %w", err)
	}
	defer rows.Close()
	var msgs []*store.OutboxMessage
	for rows.Next() {
		m := new(store.OutboxMessage)
		var created int64
		if err := rows.Scan(&m.Seq, &m.Key, &m.Kind, &m.Payload, &created); err != nil {
			return nil, fmt.Errorf("list outbox: %w", err)
		}
		m.CreatedAt = fromNanos(created)
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list outbox: %w", err)
	}
	return msgs, nil
}

func (t *tx) DeleteOutbox(ctx context.Context, seq int64) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	if _, err := t.c.exec(qctx, `DELETE FROM outbox WHERE seq = ?`, seq); err != nil {
		return fmt.Errorf("delete outbox %d: %w", seq, err)
	}
	return nil
}

func (t *tx) AppendLog(ctx context.Context, jobID string, data []byte, now time.Time) (int64, error) {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return 0, err
	}
	var seq int64
	err = t.c.queryRow(qctx, `INSERT INTO logs (job_id, seq, data, created_at)
		VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM logs WHERE job_id = ?1), ?2, ?3)
		RETURNING seq`, []any{jobID, data, nanos(now)}, &seq)
	if err != nil {
		return 0, fmt.Errorf("append log of job %s: %w", jobID, err)
	}
	t.notify |= store.TopicLogs
	return seq, nil
}
