// Package postgres is the PostgreSQL implementation of store.Store, for scale-out: several
// conveyor servers (and their workers) share one database, so every guarantee the SQLite
// store gets from its single writer is made here with PostgreSQL's locks, and holds across
// processes, not only goroutines.
//
// Update runs fn in one READ COMMITTED transaction on a connection of its own (pgx, pgxpool).
// Every row a transaction reads in order to change it is locked for the rest of it:
//
//   - an execution read in a Tx is read with SELECT ... FOR UPDATE, so two servers applying
//     events to one execution take turns, each starting from the state the other committed;
//   - stage locks (a pipeline's) and named locks (global) may be absent (absent is free), and
//     a row that does not exist cannot be locked: reading or writing them in a Tx first takes
//     a transaction-scoped advisory lock (pg_advisory_xact_lock) on the pipeline, or on each
//     name in sorted order, then reads the rows;
//   - CreateExecution takes an advisory lock on its pipeline before MAX(seq) + 1, so Seqs
//     have no gaps or repeats, and AppendLog one on its job before MAX(seq) + 1;
//   - the audit head is read with SELECT ... FOR UPDATE (store.Reader.AuditHead);
//   - LeaseJob takes the oldest queued job with FOR UPDATE SKIP LOCKED, so servers leasing
//     at once never wait for each other nor lease a job twice, and ExpiredJobs locks the
//     leases it returns (SKIP LOCKED: one a concurrent sweep or heartbeat holds is its business).
//
// Everything else is a single guarded statement (UPDATE ... WHERE state = 'leased' AND epoch
// = $n, INSERT ... ON CONFLICT), atomic on its own. Locks are taken in a fixed order where a
// transaction takes several of one kind; a deadlock between kinds is still possible, and
// PostgreSQL then aborts one transaction: its Update fails with an error wrapping
// ErrSerialization, nothing of it written, and the caller may run it again (fn runs at most
// once per Update, never retried behind the caller's back).
//
// View runs fn in a REPEATABLE READ, read-only transaction: one snapshot for all its reads.
//
// Notify: a transaction that changed a topic calls pg_notify('conveyor', ...) with the topic
// bits, which PostgreSQL delivers only if and when it commits. Subscribers in the process
// that committed are woken at once after the commit; every store also holds a listener
// connection (LISTEN conveyor) that wakes its subscribers for commits of other processes.
// When that connection breaks, the listener reconnects with backoff and then wakes every
// subscriber once, since it may have missed notifications meanwhile.
//
// Times are BIGINT unix nanoseconds (UTC; 0 means unset) as in the SQLite store; documents
// are JSON text. The schema lives in migrations/ and is applied with goose on Open, under a
// session advisory lock, so servers starting together migrate once.
package postgres
