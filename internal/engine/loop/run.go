package loop

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/store"
)

// Run does the loop's background work until ctx is done: it applies inbox events sent
// between executions, fires due timers, fails jobs whose lease expired and delivers outbox
// messages. Each is woken by the store's change notifications, not by polling. A duty that
// fails (the store unreachable for a moment: a PostgreSQL restart) is logged and started
// again after a pause, never left dead while the rest carries on.
func (l *Loop) Run(ctx context.Context) error {
	ctx = context.WithValue(ctx, hooksKey{}, nil) // hooks are for a caller's own calls (WithTx)
	errc := make(chan error, 4)
	duties := map[string]func(context.Context) error{"inbox": l.dispatch, "timers": l.timers, "leases": l.leases, "outbox": l.outbox}
	for name, f := range duties {
		go func() { errc <- l.supervise(ctx, name, f) }()
	}
	var first error
	for range 4 {
		if err := <-errc; err != nil && first == nil && !errors.Is(err, context.Canceled) {
			first = err
		}
	}
	return first
}

// wake returns the loop's subscription to topic, made once: a duty started again keeps it
// (store subscriptions live as long as the store).
func (l *Loop) wake(topic store.Topic) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.wakes == nil {
		l.wakes = map[store.Topic]<-chan struct{}{}
	}
	if l.wakes[topic] == nil {
		l.wakes[topic] = l.st.Notify(topic)
	}
	return l.wakes[topic]
}

// restartAfter is how long a failed duty of Run waits before it starts again.
const restartAfter = time.Second

// supervise runs f until ctx is done, starting it again restartAfter after it fails.
func (l *Loop) supervise(ctx context.Context, name string, f func(context.Context) error) error {
	for {
		err := f(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		l.log.Error("engine duty failed; starting it again", "duty", name, "err", err, "in", restartAfter)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(restartAfter):
		}
	}
}

// applyRow records ev in the inbox under key and, when new, applies it inside tx.
func (l *Loop) applyRow(ctx context.Context, tx store.Tx, key string, ev engine.Event) (*engine.Result, error) {
	if ev.At.IsZero() {
		ev.At = l.now()
	}
	// Added as processed: it is applied here, in the same transaction, so it is never
	// pending and wakes no dispatcher.
	row := &store.Event{Key: key, Event: ev, CreatedAt: ev.At, ProcessedAt: ev.At}
	added, err := tx.AddEvent(ctx, row)
	if err != nil || !added {
		return nil, err
	}
	return l.step(ctx, tx, row)
}

// update runs fn in a transaction, then the hooks of ctx (WithTx), and publishes the
// executions it changed, after those of every transaction committed before it: concurrent
// callers return from Update in any order.
func (l *Loop) update(ctx context.Context, fn func(tx store.Tx) ([]*engine.Result, error)) error {
	var results []*engine.Result
	var ticket uint64
	ticketed := false
	err := l.st.Update(ctx, func(tx store.Tx) error {
		var err error
		if results, err = fn(tx); err == nil {
			err = runHooks(ctx, tx)
		}
		if err == nil {
			ticket, ticketed = l.takeTicket(), true
		}
		return err
	})
	if !ticketed {
		return err
	}
	l.order.Lock()
	defer l.order.Unlock()
	for l.published != ticket {
		l.turn.Wait()
	}
	if err == nil { // a ticket whose commit failed is only given back
		for _, r := range results {
			if r != nil {
				l.publish(r)
			}
		}
	}
	l.published++
	l.turn.Broadcast()
	return err
}

func (l *Loop) takeTicket() uint64 {
	l.order.Lock()
	defer l.order.Unlock()
	l.tickets++
	return l.tickets - 1
}

// Complete records the result of a job attempt: the job is finished under its lease epoch
// (a worker whose lease was lost is refused with store.ErrConflict), the last chunk of its
// log appended and the result event applied, in one transaction. What the event is about
// (execution, stage, action, attempt) comes from the job, never from the worker; the worker
// only says how it went.
//
// then, when not nil, runs last in the same transaction: a worker leases its next job there,
// so the next action of a sequence starts without a transaction of its own. Its error fails
// the whole Complete.
func (l *Loop) Complete(ctx context.Context, jobID string, epoch int64, ev engine.Event, log []byte, then func(tx store.Tx) error) error {
	if ev.Type != engine.EvActionSucceeded && ev.Type != engine.EvActionFailed {
		return fmt.Errorf("complete job %s: %q is not a job result", jobID, ev.Type)
	}
	return l.update(ctx, func(tx store.Tx) ([]*engine.Result, error) {
		j, err := tx.Job(ctx, jobID)
		if err != nil {
			return nil, fmt.Errorf("complete job %s: %w", jobID, err)
		}
		if err := tx.FinishJob(ctx, jobID, epoch, l.now()); err != nil {
			return nil, fmt.Errorf("finish job %s: %w", jobID, err)
		}
		if len(log) > 0 {
			if _, err := tx.AppendLog(ctx, jobID, log, l.now()); err != nil {
				return nil, err
			}
		}
		ev.ExecutionID, ev.Pipeline, ev.Stage, ev.Action, ev.Attempt = j.ExecutionID, j.Pipeline, j.Spec.Stage, j.Spec.Action, j.Spec.Attempt
		res, err := l.applyRow(ctx, tx, "result:"+jobID, ev)
		if err == nil && then != nil {
			err = then(tx)
		}
		return []*engine.Result{res}, err
	})
}

// Recover fails every leased job that mine selects as lost, after kill has stopped whatever
// it left running. It is for a process that owns its store alone (conveyor run, a single
// server on SQLite) at start: any lease of its own workers then belongs to a previous
// incarnation that crashed.
func (l *Loop) Recover(ctx context.Context, mine func(*store.Job) bool, kill func(*store.Job) error) error {
	var jobs []*store.Job
	if err := l.st.View(ctx, func(r store.Reader) error {
		var err error
		jobs, err = r.Jobs(ctx, store.JobLeased)
		return err
	}); err != nil {
		return fmt.Errorf("list leased jobs: %w", err)
	}
	for _, j := range jobs {
		if !mine(j) {
			continue
		}
		if err := kill(j); err != nil {
			return fmt.Errorf("kill what job %s left running: %w", j.ID, err)
		}
		if err := l.lose(ctx, j, "the process running it was gone when Conveyor restarted"); err != nil {
			return err
		}
		l.log.Warn("job lost", "job", j.ID, "reason", "crash")
	}
	return nil
}

// lose cancels a job and sends its action the Lost event.
func (l *Loop) lose(ctx context.Context, j *store.Job, why string) error {
	return l.update(ctx, func(tx store.Tx) ([]*engine.Result, error) {
		if err := tx.CancelJob(ctx, j.ID, l.now()); err != nil {
			return nil, err
		}
		ev := engine.Event{Type: engine.EvLost, ExecutionID: j.ExecutionID, Pipeline: j.Pipeline,
			Stage: j.Spec.Stage, Action: j.Spec.Action, Attempt: j.Spec.Attempt, Message: why}
		res, err := l.applyRow(ctx, tx, "lost:"+j.ID+":"+strconv.FormatInt(j.Epoch, 10), ev)
		return []*engine.Result{res}, err
	})
}

// dispatch applies inbox events that one execution sent another (grants, supersedes).
func (l *Loop) dispatch(ctx context.Context) error {
	wake := l.wake(store.TopicEvents)
	for {
		var batch []*store.Event
		err := l.st.View(ctx, func(r store.Reader) error {
			var err error
			batch, err = r.PendingEvents(ctx, 64)
			return err
		})
		if err != nil {
			return fmt.Errorf("read inbox: %w", err)
		}
		for _, row := range batch {
			err := l.update(ctx, func(tx store.Tx) ([]*engine.Result, error) {
				// Claimed first: another server dispatching the same event waits for this
				// transaction, then finds it processed and leaves it.
				claimed, err := tx.ClaimEvent(ctx, row.Seq, l.now())
				if err != nil || !claimed {
					return nil, err
				}
				res, err := l.step(ctx, tx, row)
				if inv := invoker(row); inv != nil && (errors.Is(err, engine.ErrRefused) || errors.Is(err, store.ErrNotFound)) {
					// An invoked start that cannot be: the invoking action fails with the reason.
					refused := &engine.Execution{ID: row.Event.ExecutionID, Pipeline: row.Event.Pipeline, Invoker: inv}
					return nil, tellInvoker(ctx, tx, l.now(), refused, engine.EvActionFailed, refusal(err))
				}
				if err != nil {
					return nil, err
				}
				return []*engine.Result{res}, nil
			})
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				// An event that cannot apply must not block the inbox behind it.
				l.log.Error("inbox event dropped", "key", row.Key, "type", row.Event.Type, "execution", row.Event.ExecutionID, "err", err)
				if err := l.st.Update(ctx, func(tx store.Tx) error { return tx.MarkEventProcessed(ctx, row.Seq, l.now()) }); err != nil {
					return fmt.Errorf("mark inbox event %d: %w", row.Seq, err)
				}
			}
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
	}
}

// invoker returns the Invoke/Pipeline action that sent the start row, or nil.
func invoker(row *store.Event) *engine.Invoker {
	if row.Event.Type != engine.EvStart || row.Event.Start == nil {
		return nil
	}
	return row.Event.Start.Invoker
}

// refusal words why a start was refused, for the invoking action's message.
func refusal(err error) string {
	if errors.Is(err, store.ErrNotFound) {
		return "no such pipeline: apply it (conveyor pipeline apply), or name an existing one in the action's pipeline setting"
	}
	return strings.TrimPrefix(err.Error(), engine.ErrRefused.Error()+": ")
}

// timers turns due timers into events. It sleeps until the earliest timer, and wakes early
// when the store reports new rows (an earlier timer may have been added).
func (l *Loop) timers(ctx context.Context) error {
	wake := l.wake(store.TopicTimers)
	for {
		var due []*engine.Timer
		var next time.Time
		var pending bool
		err := l.st.View(ctx, func(r store.Reader) error {
			var err error
			if due, err = r.DueTimers(ctx, l.now(), 64); err != nil {
				return err
			}
			next, pending, err = r.NextTimer(ctx)
			return err
		})
		if err != nil {
			return fmt.Errorf("read timers: %w", err)
		}
		for _, t := range due {
			err := l.update(ctx, func(tx store.Tx) ([]*engine.Result, error) {
				if err := tx.DeleteTimer(ctx, t.ID); err != nil {
					return nil, err
				}
				res, err := l.applyRow(ctx, tx, "timer:"+t.ID, t.Event)
				return []*engine.Result{res}, err
			})
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				l.log.Error("timer dropped", "timer", t.ID, "err", err)
				if err := l.st.Update(ctx, func(tx store.Tx) error { return tx.DeleteTimer(ctx, t.ID) }); err != nil {
					return fmt.Errorf("delete timer %s: %w", t.ID, err)
				}
			}
		}
		if len(due) > 0 {
			continue
		}
		if !pending {
			next = l.now().Add(time.Hour)
		}
		// Sleep until a deadline, not for a duration: a deadline the clock has passed since
		// the read above (an injected clock too) fires at once.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-l.opts.Until(next):
		}
	}
}

// leases fails or retries the jobs whose lease expired: their worker went silent.
func (l *Loop) leases(ctx context.Context) error {
	tick := time.NewTicker(l.opts.LeaseCheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		var expired []*store.Job
		if err := l.st.Update(ctx, func(tx store.Tx) error {
			var err error
			expired, err = tx.ExpiredJobs(ctx)
			return err
		}); err != nil {
			return fmt.Errorf("read expired leases: %w", err)
		}
		for _, j := range expired {
			if err := l.lose(ctx, j, "its worker stopped renewing the lease"); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				// Like a dropped inbox event: one job that cannot be expired must not stop
				// the sweep for every other one.
				l.log.Error("expire job", "job", j.ID, "err", err)
				continue
			}
			l.log.Warn("job lost", "job", j.ID, "reason", "lease expired", "worker", j.Worker)
		}
	}
}

// outbox delivers outbox messages, at least once, backing off when delivery fails.
func (l *Loop) outbox(ctx context.Context) error {
	if l.opts.Deliver == nil {
		<-ctx.Done()
		return ctx.Err()
	}
	wake := l.wake(store.TopicOutbox)
	backoff := time.Duration(0)
	for {
		var msgs []*store.OutboxMessage
		if err := l.st.View(ctx, func(r store.Reader) error {
			var err error
			msgs, err = r.PendingOutbox(ctx, 64)
			return err
		}); err != nil {
			return fmt.Errorf("read outbox: %w", err)
		}
		failed := false
		for _, m := range msgs {
			if err := l.opts.Deliver(ctx, m); err != nil {
				l.log.Warn("outbox delivery failed", "kind", m.Kind, "key", m.Key, "err", err)
				failed = true
				continue
			}
			if err := l.st.Update(ctx, func(tx store.Tx) error { return tx.DeleteOutbox(ctx, m.Seq) }); err != nil {
				return fmt.Errorf("delete outbox message %d: %w", m.Seq, err)
			}
		}
		var retry <-chan time.Time
		switch {
		case failed:
			backoff = min(max(2*backoff, 100*time.Millisecond), time.Minute)
			retry = time.After(backoff)
		case len(msgs) > 0:
			backoff = 0
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-retry:
		}
	}
}
