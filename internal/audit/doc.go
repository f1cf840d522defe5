// Package audit is Conveyor's tamper-evident audit log: every change and every decision (who,
// what, when, from where, with what result) is appended to a hash chain sealed with an HMAC
// key kept outside the database, so that write access to the database alone cannot forge,
// edit, delete or reorder entries unnoticed.
//
// Entry n's hash is HMAC-SHA256(Ke, hash(n-1) || encode(n)), where hash(0) is 32 zero bytes,
// Ke = HMAC-SHA256(key, "conveyor audit entry") and encode(n) is, big-endian:
//
//	0x01 (version) | seq uint64 | time int64 (unix nanoseconds)
//	| for actor, source, action, target, outcome, details: length uint32 | bytes
//
// A checkpoint signs an entry's seq and hash: HMAC-SHA256(Kc, 0x01 | seq uint64 | time int64 |
// hash), Kc = HMAC-SHA256(key, "conveyor audit checkpoint"). Retention prunes the entries a
// checkpoint covers; Verify then starts from that checkpoint.
//
// Log.Append runs inside the transaction that makes the change it records, so a committed
// change always has its entry. It reads the chain's head with store.Tx.AuditHead, which
// serializes appenders (SQLite has one writer; PostgreSQL locks the head row).
//
// What the chain cannot show alone: entries deleted from the end after the newest checkpoint
// (nothing follows them). Verify reports the last seq and hash; keeping them, or exported
// checkpoints, elsewhere closes that gap.
package audit
