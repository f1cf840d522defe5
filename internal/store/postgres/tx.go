package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/store"
)

// tx implements store.Tx in an Update's transaction.
//
// A statement that fails aborts a PostgreSQL transaction, so the conditions Tx methods
// report as errors (a duplicate, a stale epoch) are found with statements that succeed (ON
// CONFLICT DO NOTHING, guarded UPDATEs, then a look at the row): a function may swallow
// such an error and carry on.
type tx struct {
	reader
	// seen holds the executions this transaction read or wrote, as it last did: their rows
	// are locked, so that is their current state, and PutExecution writes the action rows
	// that differ from it.
	seen map[string]*engine.Execution
	// notify records the topics this transaction changed, for Update to announce.
	notify changes
}

var _ store.Tx = (*tx)(nil)

// affected turns "no row changed" into ErrNotFound.
func affected(tag pgconn.CommandTag, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

func (t *tx) Execution(ctx context.Context, id string) (*engine.Execution, error) {
	e, err := t.reader.Execution(ctx, id)
	if err != nil {
		return nil, err
	}
	t.remember(e)
	return e, nil
}

// remember records e as the current state of its row.
func (t *tx) remember(e *engine.Execution) {
	if t.seen == nil {
		t.seen = make(map[string]*engine.Execution)
	}
	t.seen[e.ID] = e.Clone()
}

func (t *tx) PutPipelineVersion(ctx context.Context, name string, definition []byte, now time.Time) (int, error) {
	if err := t.check(ctx); err != nil {
		return 0, err
	}
	if err := t.lock(ctx, lockPipeline, name); err != nil {
		return 0, fmt.Errorf("put pipeline %s: %w", name, err)
	}
	var latest int
	var def []byte
	err := t.q.QueryRow(ctx, `SELECT version, definition FROM pipeline_versions
		WHERE name = $1 ORDER BY version DESC LIMIT 1`, name).Scan(&latest, &def)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return 0, fmt.Errorf("put pipeline %s: %w", name, err)
	case bytes.Equal(def, definition):
		return latest, nil
	}
	_, err = t.q.Exec(ctx, `INSERT INTO pipeline_versions (name, version, definition, created_at)
		VALUES ($1, $2, $3, $4)`, name, latest+1, nonNil(definition), nanos(now))
	if err != nil {
		return 0, fmt.Errorf("put pipeline %s: %w", name, err)
	}
	return latest + 1, nil
}

func (t *tx) DeletePipeline(ctx context.Context, name string) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	if err := t.lock(ctx, lockPipeline, name); err != nil {
		return fmt.Errorf("delete pipeline %s: %w", name, err)
	}
	tag, err := t.q.Exec(ctx, `DELETE FROM pipeline_versions WHERE name = $1`, name)
	if err := affected(tag, err, "delete pipeline "+name); err != nil {
		return err
	}
	for _, q := range []string{
		`DELETE FROM timers WHERE execution_id IN (SELECT id FROM executions WHERE pipeline = $1)`,
		`DELETE FROM logs WHERE job_id IN (SELECT id FROM jobs WHERE pipeline = $1)`,
		`DELETE FROM jobs WHERE pipeline = $1`,
		`DELETE FROM stage_locks WHERE pipeline = $1`,
		`DELETE FROM execution_actions WHERE execution_id IN (SELECT id FROM executions WHERE pipeline = $1)`,
		`DELETE FROM executions WHERE pipeline = $1`,
	} {
		if _, err := t.q.Exec(ctx, q, name); err != nil {
			return fmt.Errorf("delete pipeline %s: %w", name, err)
		}
	}
	return nil
}

func (t *tx) CreateExecution(ctx context.Context, e *engine.Execution) error {
	t.notify |= changes(store.TopicExecutions)
	if err := t.check(ctx); err != nil {
		return err
	}
	// The pipeline's Seq lock makes MAX(seq) + 1 this transaction's until it ends.
	if err := t.lock(ctx, lockSeq, e.Pipeline); err != nil {
		return fmt.Errorf("create execution %s: %w", e.ID, err)
	}
	var seq int64
	err := t.q.QueryRow(ctx, `SELECT COALESCE(MAX(seq), 0) + 1 FROM executions WHERE pipeline = $1`, e.Pipeline).Scan(&seq)
	if err != nil {
		return fmt.Errorf("create execution %s: %w", e.ID, err)
	}
	c := *e
	c.Seq = seq
	doc, err := encode("execution", store.ExecutionHead(&c))
	if err != nil {
		return err
	}
	tag, err := t.q.Exec(ctx, `INSERT INTO executions (id, pipeline, seq, status, created_at, updated_at, doc)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
		e.ID, e.Pipeline, seq, string(e.Status), nanos(e.CreatedAt), nanos(e.UpdatedAt), doc)
	if err != nil {
		return fmt.Errorf("create execution %s: %w", e.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("create execution %s: id in use: %w", e.ID, store.ErrConflict)
	}
	if err := t.putActions(ctx, &c, nil); err != nil {
		return err
	}
	e.Seq = seq
	t.remember(&c)
	return nil
}

func (t *tx) PutExecution(ctx context.Context, e *engine.Execution) error {
	t.notify |= changes(store.TopicExecutions)
	if err := t.check(ctx); err != nil {
		return err
	}
	doc, err := encode("execution", store.ExecutionHead(e))
	if err != nil {
		return err
	}
	// The UPDATE locks the row if Execution has not already.
	tag, err := t.q.Exec(ctx, `UPDATE executions SET status = $1, updated_at = $2, doc = $3, rev = rev + 1
		WHERE id = $4`, string(e.Status), nanos(e.UpdatedAt), doc, e.ID)
	if err := affected(tag, err, "put execution "+e.ID); err != nil {
		return err
	}
	// The actions to write are those that differ from the state this one replaces, when
	// this transaction read or wrote it (the row is locked since); otherwise all of them.
	if err := t.putActions(ctx, e, t.seen[e.ID]); err != nil {
		return err
	}
	t.remember(e)
	return nil
}

// putActions writes the actions of e that differ from prev's (all of them when prev is nil).
func (t *tx) putActions(ctx context.Context, e, prev *engine.Execution) error {
	var batch pgx.Batch
	for i := range e.Stages {
		var before []engine.Action
		if prev != nil && i < len(prev.Stages) {
			before = prev.Stages[i].Actions
		}
		for j := range e.Stages[i].Actions {
			a := &e.Stages[i].Actions[j]
			if j < len(before) && store.SameAction(a, &before[j]) {
				continue
			}
			doc, err := encode("action", a)
			if err != nil {
				return err
			}
			batch.Queue(`INSERT INTO execution_actions (execution_id, stage, idx, doc) VALUES ($1, $2, $3, $4)
				ON CONFLICT (execution_id, stage, idx) DO UPDATE SET doc = excluded.doc`, e.ID, i, j, doc)
		}
	}
	if batch.Len() == 0 {
		return nil
	}
	// One round trip for all of them.
	if err := t.q.SendBatch(ctx, &batch).Close(); err != nil {
		return fmt.Errorf("put execution %s: actions: %w", e.ID, err)
	}
	return nil
}

// loadActions reads the actions of the executions of byID into their stages.
func (r *reader) loadActions(ctx context.Context, byID map[string]*engine.Execution) error {
	if len(byID) == 0 {
		return nil
	}
	ids := make([]string, 0, len(byID))
	for id, e := range byID {
		ids = append(ids, id)
		for i := range e.Stages {
			e.Stages[i].Actions = nil
		}
	}
	rows, err := r.q.Query(ctx, `SELECT execution_id, stage, idx, doc FROM execution_actions
		WHERE execution_id = ANY($1) ORDER BY execution_id, stage, idx`, ids)
	if err != nil {
		return fmt.Errorf("read actions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, doc string
		var stage, idx int
		if err := rows.Scan(&id, &stage, &idx, &doc); err != nil {
			return fmt.Errorf("read actions: %w", err)
		}
		e := byID[id]
		if stage < 0 || stage >= len(e.Stages) || idx != len(e.Stages[stage].Actions) {
			return fmt.Errorf("read actions of execution %s: row (%d, %d) does not fit its stages", id, stage, idx)
		}
		var a engine.Action
		if err := decode("action", doc, &a); err != nil {
			return err
		}
		e.Stages[stage].Actions = append(e.Stages[stage].Actions, a)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read actions: %w", err)
	}
	return nil
}

func (t *tx) PutStageLock(ctx context.Context, l *engine.StageLock) error {
	t.notify |= changes(store.TopicStageLocks)
	if err := t.check(ctx); err != nil {
		return err
	}
	doc, err := encode("stage lock", l)
	if err != nil {
		return err
	}
	if err := t.lock(ctx, lockStages, l.Pipeline); err != nil {
		return fmt.Errorf("put stage lock %s/%s: %w", l.Pipeline, l.Stage, err)
	}
	_, err = t.q.Exec(ctx, `INSERT INTO stage_locks (pipeline, stage, doc) VALUES ($1, $2, $3)
		ON CONFLICT (pipeline, stage) DO UPDATE SET doc = excluded.doc`, l.Pipeline, l.Stage, doc)
	if err != nil {
		return fmt.Errorf("put stage lock %s/%s: %w", l.Pipeline, l.Stage, err)
	}
	return nil
}

func (t *tx) PutNamedLock(ctx context.Context, l *engine.NamedLock) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	doc, err := encode("named lock", l)
	if err != nil {
		return err
	}
	if err := t.lock(ctx, lockNamed, l.Name); err != nil {
		return fmt.Errorf("put named lock %s: %w", l.Name, err)
	}
	_, err = t.q.Exec(ctx, `INSERT INTO named_locks (name, doc) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET doc = excluded.doc`, l.Name, doc)
	if err != nil {
		return fmt.Errorf("put named lock %s: %w", l.Name, err)
	}
	return nil
}

func (t *tx) AddEvent(ctx context.Context, ev *store.Event) (bool, error) {
	if err := t.check(ctx); err != nil {
		return false, err
	}
	if ev.Key == "" {
		return false, errors.New("add event: empty key")
	}
	doc, err := encode("event", &ev.Event)
	if err != nil {
		return false, err
	}
	var processed any // NULL: pending
	if !ev.ProcessedAt.IsZero() {
		processed = nanos(ev.ProcessedAt)
	}
	var seq int64
	err = t.q.QueryRow(ctx, `INSERT INTO inbox (key, execution_id, doc, created_at, processed_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (key) DO NOTHING RETURNING seq`,
		ev.Key, ev.Event.ExecutionID, doc, nanos(ev.CreatedAt), processed).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil // seen before
	}
	if err != nil {
		return false, fmt.Errorf("add event %s: %w", ev.Key, err)
	}
	ev.Seq = seq
	if processed == nil {
		t.notify |= changes(store.TopicEvents)
	}
	return true, nil
}

func (t *tx) MarkEventProcessed(ctx context.Context, seq int64, now time.Time) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	// COALESCE keeps the first processing time when marked twice.
	tag, err := t.q.Exec(ctx, `UPDATE inbox SET processed_at = COALESCE(processed_at, $1) WHERE seq = $2`, nanos(now), seq)
	return affected(tag, err, fmt.Sprintf("mark event %d processed", seq))
}

func (t *tx) ClaimEvent(ctx context.Context, seq int64, now time.Time) (bool, error) {
	if err := t.check(ctx); err != nil {
		return false, err
	}
	// The UPDATE locks the row: a second claimer waits for the first's transaction, then
	// finds processed_at set and changes nothing.
	tag, err := t.q.Exec(ctx, `UPDATE inbox SET processed_at = $1 WHERE seq = $2 AND processed_at IS NULL`, nanos(now), seq)
	if err != nil {
		return false, fmt.Errorf("claim event %d: %w", seq, err)
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	var one int
	err = t.q.QueryRow(ctx, `SELECT 1 FROM inbox WHERE seq = $1`, seq).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("claim event %d: %w", seq, store.ErrNotFound)
	}
	return false, err
}

func (t *tx) AddJob(ctx context.Context, j *store.Job) (bool, error) {
	if err := t.check(ctx); err != nil {
		return false, err
	}
	spec, err := encode("job spec", &j.Spec)
	if err != nil {
		return false, err
	}
	tag, err := t.q.Exec(ctx, `INSERT INTO jobs (id, execution_id, pipeline, provider, spec, run_on, state,
		created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $7) ON CONFLICT (id) DO NOTHING`,
		j.ID, j.ExecutionID, j.Pipeline, j.Provider, spec, strs(j.Spec.RunOn), nanos(j.CreatedAt))
	if err != nil {
		return false, fmt.Errorf("add job %s: %w", j.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	t.notify |= changes(store.TopicJobs)
	return true, nil
}

// LeaseJob leases the oldest queued job. SKIP LOCKED passes over the jobs other
// transactions are leasing (or cancelling) at this moment instead of waiting for them, and
// a job leased by a transaction that committed since this statement began fails the
// re-check of state = 'queued' on the locked row, so no job is leased twice.
//
// The deadline is the database's clock plus ttl (the lease clock, store.Tx.LeaseJob): the
// servers sharing the database may disagree on the time, it does not.
func (t *tx) LeaseJob(ctx context.Context, l store.Leaser, ttl time.Duration) (*store.Job, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	j, err := scanJob(t.q.QueryRow(ctx, `UPDATE jobs SET state = 'leased', worker = $1, epoch = epoch + 1,
			lease_until = `+dbNanos("statement_timestamp() + $2::interval")+`, updated_at = `+dbNow+`
		WHERE state = 'queued' AND id = (SELECT id FROM jobs WHERE state = 'queued'
			AND (cardinality($3::text[]) = 0 OR provider = ANY($3))
			AND run_on <@ $4::text[]
			ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING `+jobColumns, l.Worker, ttl, strs(l.Providers), strs(l.Labels)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lease job: %w", err)
	}
	return j, nil
}

func (t *tx) Heartbeat(ctx context.Context, id string, epoch int64, ttl time.Duration) (*store.Job, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	j, err := scanJob(t.q.QueryRow(ctx, `UPDATE jobs SET lease_until = `+dbNanos("statement_timestamp() + $1::interval")+`,
			updated_at = `+dbNow+`
		WHERE id = $2 AND state = 'leased' AND epoch = $3 RETURNING `+jobColumns,
		ttl, id, epoch))
	if err == nil {
		if err := t.TouchWorker(ctx, j.Worker); err != nil {
			return nil, fmt.Errorf("heartbeat job %s: %w", id, err)
		}
		return j, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
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
	tag, err := t.q.Exec(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, id, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var state string
	var cur int64
	err = t.q.QueryRow(ctx, `SELECT state, epoch FROM jobs WHERE id = $1`, id).Scan(&state, &cur)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s %s: %w", what, id, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, id, err)
	}
	return fmt.Errorf("%s %s epoch %d: job is %s with epoch %d: %w", what, id, epoch, state, cur, store.ErrConflict)
}

func (t *tx) SetJobProcess(ctx context.Context, id string, epoch int64, pgid int, startTime uint64) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	return t.guarded(ctx, "set process of job", id, epoch, `UPDATE jobs SET pgid = $1, pstart = $2
		WHERE id = $3 AND state = 'leased' AND epoch = $4`, pgid, int64(startTime), id, epoch)
}

func (t *tx) FinishJob(ctx context.Context, id string, epoch int64, now time.Time) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	return t.guarded(ctx, "finish job", id, epoch, `UPDATE jobs SET state = 'done', updated_at = $1
		WHERE id = $2 AND state = 'leased' AND epoch = $3`, nanos(now), id, epoch)
}

func (t *tx) CancelJob(ctx context.Context, id string, now time.Time) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	tag, err := t.q.Exec(ctx, `UPDATE jobs SET state = 'cancelled', updated_at = $1
		WHERE id = $2 AND state IN ('queued', 'leased')`, nanos(now), id)
	if err != nil {
		return fmt.Errorf("cancel job %s: %w", id, err)
	}
	if tag.RowsAffected() == 1 {
		t.notify |= changes(store.TopicJobs)
		return nil
	}
	// Already done or cancelled is fine; a job that never existed is not.
	var exists bool
	if err := t.q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM jobs WHERE id = $1)`, id).Scan(&exists); err != nil {
		return fmt.Errorf("cancel job %s: %w", id, err)
	}
	if !exists {
		return fmt.Errorf("cancel job %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// ExpiredJobs returns the leases that ended before the database's now, locked: two servers
// sweeping at once each get a share (SKIP LOCKED), never the same lease, and a lease whose
// heartbeat is committing is left to it.
func (t *tx) ExpiredJobs(ctx context.Context) ([]*store.Job, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	jobs, err := t.queryJobs(ctx, `SELECT `+jobColumns+` FROM jobs
		WHERE state = 'leased' AND lease_until < `+dbNow+` ORDER BY lease_until, id FOR UPDATE SKIP LOCKED`)
	if err != nil {
		return nil, fmt.Errorf("list expired jobs: %w", err)
	}
	return jobs, nil
}

func (t *tx) RequeueJob(ctx context.Context, id string, epoch int64) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	// The job keeps its created_at, so it is leased again before younger ones; its epoch
	// stays, and the next lease increments it past the one a lost worker may still hold.
	err := t.guarded(ctx, "requeue job", id, epoch, `UPDATE jobs SET state = 'queued', worker = '',
		lease_until = 0, pgid = 0, pstart = 0 WHERE id = $1 AND state = 'leased' AND epoch = $2`, id, epoch)
	if err != nil {
		return err
	}
	t.notify |= changes(store.TopicJobs)
	return nil
}

func (t *tx) AddTimer(ctx context.Context, tm *engine.Timer) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	doc, err := encode("timer", tm)
	if err != nil {
		return err
	}
	tag, err := t.q.Exec(ctx, `INSERT INTO timers (id, due, execution_id, doc) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO NOTHING`, tm.ID, nanos(tm.Due), tm.Event.ExecutionID, doc)
	if err != nil {
		return fmt.Errorf("add timer %s: %w", tm.ID, err)
	}
	if tag.RowsAffected() == 1 {
		t.notify |= changes(store.TopicTimers)
	}
	return nil
}

func (t *tx) DeleteTimer(ctx context.Context, id string) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	if _, err := t.q.Exec(ctx, `DELETE FROM timers WHERE id = $1`, id); err != nil {
		return fmt.Errorf("delete timer %s: %w", id, err)
	}
	return nil
}

func (t *tx) AppendLog(ctx context.Context, jobID string, data []byte, now time.Time) (int64, error) {
	if err := t.check(ctx); err != nil {
		return 0, err
	}
	// The job's log lock makes MAX(seq) + 1 this transaction's until it ends.
	if err := t.lock(ctx, lockLog, jobID); err != nil {
		return 0, fmt.Errorf("append log of job %s: %w", jobID, err)
	}
	var seq int64
	err := t.q.QueryRow(ctx, `INSERT INTO logs (job_id, seq, data, created_at)
		SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3 FROM logs WHERE job_id = $1
		RETURNING seq`, jobID, nonNil(data), nanos(now)).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("append log of job %s: %w", jobID, err)
	}
	t.notify |= changes(store.TopicLogs)
	return seq, nil
}

func (t *tx) AddOutbox(ctx context.Context, m *store.OutboxMessage) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	var seq int64
	err := t.q.QueryRow(ctx, `INSERT INTO outbox (key, kind, payload, created_at) VALUES ($1, $2, $3, $4)
		RETURNING seq`, m.Key, m.Kind, m.Payload, nanos(m.CreatedAt)).Scan(&seq)
	if err != nil {
		return fmt.Errorf("add outbox %s %s: %w", m.Kind, m.Key, err)
	}
	m.Seq = seq
	t.notify |= changes(store.TopicOutbox)
	return nil
}

func (t *tx) DeleteOutbox(ctx context.Context, seq int64) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	if _, err := t.q.Exec(ctx, `DELETE FROM outbox WHERE seq = $1`, seq); err != nil {
		return fmt.Errorf("delete outbox %d: %w", seq, err)
	}
	return nil
}

// nonNil maps a nil slice to an empty one: pgx binds nil as NULL, which the NOT NULL
// columns refuse.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
