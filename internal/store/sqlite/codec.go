package sqlite

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/conveyorci/conveyor/internal/store"
)

// nanos and fromNanos are the column format of times, shared with store/postgres.
func nanos(t time.Time) int64 { return store.Nanos(t) }

func fromNanos(n int64) time.Time { return store.FromNanos(n) }

// encode marshals a document to JSON text. It is bound as a string so the column holds TEXT
// (SQLite's JSON functions read a BLOB as JSONB, which this is not).
func encode(what string, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", what, err)
	}
	return string(b), nil
}

func decode(what string, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	return nil
}

// jsonList encodes a list of strings for `x IN (SELECT value FROM json_each(?))`, which keeps
// one prepared statement for any number of values.
func jsonList[S ~string](vs []S) (string, error) {
	b, err := json.Marshal(vs)
	if err != nil {
		return "", fmt.Errorf("encode list: %w", err)
	}
	return string(b), nil
}

// limitArg maps "no limit" (limit <= 0) to SQLite's LIMIT -1.
func limitArg(limit int) int {
	if limit <= 0 {
		return -1
	}
	return limit
}
