package audit

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/conveyorci/conveyor/internal/store"
)

// Record is an entry as the CLI exports it (and the API will answer it): JSON, hashes in hex.
type Record struct {
	Seq      int64           `json:"seq"`
	Time     time.Time       `json:"time"`
	Actor    string          `json:"actor"`
	Source   string          `json:"source"`
	Action   string          `json:"action"`
	Target   string          `json:"target"`
	Outcome  string          `json:"outcome"`
	Details  json.RawMessage `json:"details"`
	PrevHash string          `json:"prevHash"`
	Hash     string          `json:"hash"`
}

// NewRecord returns the Record of a stored entry.
func NewRecord(e *store.AuditEntry) Record {
	details := json.RawMessage(e.Details)
	if !json.Valid(details) {
		// Not written by Append: show the bytes as they are rather than fail the export.
		details, _ = json.Marshal(string(e.Details))
	}
	return Record{
		Seq: e.Seq, Time: e.Time, Actor: e.Actor, Source: e.Source, Action: e.Action, Target: e.Target,
		Outcome: e.Outcome, Details: details, PrevHash: hex.EncodeToString(e.PrevHash), Hash: hex.EncodeToString(e.Hash),
	}
}

// List returns the entries matching f (newest first unless f.Ascending) as Records.
func List(ctx context.Context, r store.Reader, f store.AuditFilter) ([]Record, error) {
	entries, err := r.AuditEntries(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]Record, len(entries))
	for i, e := range entries {
		out[i] = NewRecord(e)
	}
	return out, nil
}

// Export writes the entries matching f to w as JSON lines, oldest first, reading them a page
// at a time (f.Ascending is implied; f.Limit bounds the total). It returns how many it wrote.
func Export(ctx context.Context, r store.Reader, f store.AuditFilter, w io.Writer) (int, error) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	f.Ascending = true
	total, n := f.Limit, 0
	for {
		f.Limit = pageSize
		if total > 0 {
			f.Limit = min(pageSize, total-n)
		}
		page, err := r.AuditEntries(ctx, f)
		if err != nil {
			return n, fmt.Errorf("export audit log: %w", err)
		}
		for _, e := range page {
			if err := enc.Encode(NewRecord(e)); err != nil {
				return n, fmt.Errorf("export audit log: %w", err)
			}
			n++
			f.AfterSeq = e.Seq
		}
		if len(page) < f.Limit || (total > 0 && n >= total) {
			return n, nil
		}
	}
}
