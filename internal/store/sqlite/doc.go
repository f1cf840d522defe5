// Package sqlite is the embedded, default implementation of store.Store: one SQLite file in
// WAL mode, opened with the pure-Go driver modernc.org/sqlite.
//
// SQLite allows one writer at a time, so the Store has exactly one: a goroutine that owns the
// write connection and runs every Update. Concurrent Update calls are batched (group commit):
// the writer takes all queued functions (up to 128), opens one BEGIN IMMEDIATE transaction,
// runs each function inside its own SAVEPOINT (a function that fails is rolled back to its
// savepoint alone, and only its caller sees the error), commits once and answers every caller.
// One commit, hence one WAL sync, serves the whole batch, and since nothing else ever writes,
// "database is locked" cannot happen inside the process.
//
// Readers (View) use a separate, capped set of read-only connections; WAL gives each read
// transaction a consistent snapshot while the writer carries on.
//
// Times are stored as INTEGER unix nanoseconds (UTC; 0 means unset) and come back in UTC;
// executions, stage locks, events, job specs and timers are stored as JSON documents with the
// columns the queries need beside them. The schema lives in migrations/ and is applied with
// goose on Open.
package sqlite
