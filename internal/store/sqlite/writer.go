package sqlite

import (
	"context"
	"fmt"

	"github.com/conveyorci/conveyor/internal/store"
)

// writer is the single writer goroutine's state: the write connection, and a results slice
// reused from batch to batch.
type writer struct {
	s       *Store
	c       *conn
	results []result
}

// writeLoop runs every Update, in batches, until Close closes s.requests and the requests
// already queued have been run.
func (s *Store) writeLoop(c *conn) {
	defer close(s.writerDone)
	defer c.close()
	w := &writer{s: s, c: c, results: make([]result, maxBatch)}
	batch := make([]*request, 0, maxBatch)
	for r := range s.requests {
		batch = append(batch[:0], r)
	fill:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-s.requests:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		w.run(batch)
		clear(batch) // let the requests be collected
	}
}

// exec runs a transaction-control statement. They run under context.Background(): none of
// them may be skipped because one caller gave up.
func (w *writer) exec(query string) error {
	_, err := w.c.exec(context.Background(), query)
	return err
}

// run runs one batch and answers every caller.
func (w *writer) run(batch []*request) {
	res := w.results[:len(batch)]
	clear(res)
	rest := w.runTx(batch, res)
	done := batch[:len(batch)-len(rest)]
	for i, r := range done {
		r.done <- res[i]
	}
	if len(rest) > 0 {
		w.run(rest) // after the answers above: it reuses w.results
	}
}

// runTx runs a batch in one transaction, leaving each caller's answer in res. It returns the
// requests it did not get to because the transaction had to be abandoned.
//
// Each function runs inside its own savepoint, so one that fails is rolled back alone. A
// batch of one (the common case when the store is not busy) skips the savepoint: its
// transaction is its savepoint. If a transaction-control statement fails (the transaction
// is then usually gone already, rolled back by SQLite after an I/O error), the transaction is
// rolled back and the callers whose work it held get that error.
func (w *writer) runTx(batch []*request, res []result) (rest []*request) {
	if err := w.exec("BEGIN IMMEDIATE"); err != nil {
		err = fmt.Errorf("begin transaction: %w", err)
		for i := range res {
			res[i].err = err
		}
		return nil
	}
	single := len(batch) == 1
	var pending []int // functions that succeeded, waiting for the commit
	var notify store.Topic
	var written []cachedWrite
	// abort gives up the transaction after a failed control statement at batch[i].
	abort := func(i int, err error) []*request {
		w.rollback()
		err = fmt.Errorf("transaction aborted: %w", err)
		for _, j := range pending {
			res[j] = result{err: err}
		}
		if res[i].err == nil && !res[i].panicked {
			res[i] = result{err: err}
		}
		return batch[i+1:]
	}

	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			res[i].err = err
			continue
		}
		if !single {
			if err := w.exec("SAVEPOINT fn"); err != nil {
				return abort(i, fmt.Errorf("savepoint: %w", err))
			}
		}
		t := &tx{reader: reader{c: w.c, cache: &w.s.cache, write: true, now: w.s.now}}
		res[i] = call(r.fn, t)
		t.done.Store(true)
		failed := res[i].err != nil || res[i].panicked
		if failed {
			if single {
				w.rollback()
				return nil
			}
			if err := w.exec("ROLLBACK TO fn"); err != nil {
				return abort(i, fmt.Errorf("roll back to savepoint: %w", err))
			}
		}
		if !single {
			if err := w.exec("RELEASE fn"); err != nil {
				return abort(i, fmt.Errorf("release savepoint: %w", err))
			}
		}
		if !failed {
			pending = append(pending, i)
			notify |= t.notify
			written = append(written, t.written...)
		}
	}

	if len(pending) == 0 {
		w.rollback()
		return nil
	}
	if err := w.exec("COMMIT"); err != nil {
		w.rollback()
		err = fmt.Errorf("commit: %w", err)
		for _, i := range pending {
			res[i] = result{err: err}
		}
		return nil
	}
	for _, wr := range written {
		w.s.cache.put(wr.exec.ID, wr.rev, wr.exec)
	}
	if notify != 0 {
		w.s.signal(notify)
	}
	return nil
}

// rollback ends the transaction, if SQLite has not already ended it.
func (w *writer) rollback() {
	_ = w.exec("ROLLBACK") // "no transaction is active" after an automatic rollback
}

// call runs fn, turning a panic into a result the caller re-raises.
func call(fn func(store.Tx) error, t *tx) (res result) {
	defer func() {
		if p := recover(); p != nil {
			res = result{panicked: true, panicVal: p}
		}
	}()
	return result{err: fn(t)}
}
