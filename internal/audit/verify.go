package audit

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"math"

	"github.com/conveyorci/conveyor/internal/store"
)

// ErrBroken is wrapped by every error that reports a broken chain (a *BreakError from Verify).
var ErrBroken = errors.New("audit chain broken")

// Problem is what is wrong where a chain breaks.
type Problem string

const (
	// Edited: an entry's content does not match its hash (changed, or sealed with another
	// key), or differs from what a checkpoint recorded.
	Edited Problem = "edited"
	// Deleted: entries are missing: a gap in the seqs, an entry that does not follow the one
	// before it, entries pruned without a checkpoint covering them, or entries a checkpoint or
	// the head vouch for that are gone.
	Deleted Problem = "deleted"
	// Reordered: an entry is authentic but was written at another seq.
	Reordered Problem = "reordered"
	// ForgedCheckpoint: a checkpoint's signature does not match it.
	ForgedCheckpoint Problem = "forged checkpoint"
)

// BreakError names the first place, by seq, where the chain is broken.
type BreakError struct {
	Seq     int64
	Problem Problem
	Detail  string
}

func (e *BreakError) Error() string {
	return fmt.Sprintf("audit chain broken at seq %d: %s: %s", e.Seq, e.Problem, e.Detail)
}

func (e *BreakError) Unwrap() error { return ErrBroken }

// Report is what Verify checked.
type Report struct {
	Entries     int64 // entries verified
	First, Last int64 // their seqs (0 when none)
	// LastHash is the last entry's hash: kept elsewhere, with Last, it shows a later deletion
	// of the newest entries, which the chain alone cannot.
	LastHash    []byte
	Checkpoints int   // checkpoints whose signature was verified
	Anchor      int64 // seq of the checkpoint the walk started from; 0: the start of the chain
}

const (
	// pageSize is how many entries (or checkpoints) Verify and Export read at a time.
	pageSize = 1000
	// reorderWindow is how far from its place Verify looks for the seq an entry that does
	// not match its hash was written at, to tell a moved entry from an edited one.
	reorderWindow = 1000
)

// Verify walks the whole log in r, oldest first a page at a time, recomputing every hash
// with key and checking every checkpoint. It returns a *BreakError (wrapping ErrBroken) for
// the first broken entry or checkpoint, with the Report of what was verified before it.
// Give it a read snapshot (store.Store.View), so a concurrent prune does not look like a gap.
func Verify(ctx context.Context, r store.Reader, key []byte) (Report, error) {
	l, err := New(key, nil)
	if err != nil {
		return Report{}, fmt.Errorf("verify audit log: %w", err)
	}
	return l.Verify(ctx, r)
}

// Verify is the package's Verify with the log's own key (for a server that holds a Log).
func (l *Log) Verify(ctx context.Context, r store.Reader) (Report, error) {
	v := &verifier{ctx: ctx, l: l, entries: entryPager{r: r}, cps: checkpointPager{r: r}}
	err := v.run(r)
	var be *BreakError
	if err != nil && !errors.As(err, &be) {
		err = fmt.Errorf("verify audit log: %w", err)
	}
	return v.rep, err
}

type verifier struct {
	ctx     context.Context
	l       *Log
	entries entryPager
	cps     checkpointPager
	rep     Report
	// counted is the seq of the last checkpoint counted in rep (the anchor is checked twice).
	counted int64
}

func (v *verifier) run(r store.Reader) error {
	first, err := v.entries.next(v.ctx)
	if err != nil {
		return err
	}
	head, _, err := r.AuditHead(v.ctx)
	if err != nil {
		return err
	}
	if first == nil {
		last, err := v.skipCheckpoints(math.MaxInt64)
		if err != nil {
			return err
		}
		if last > 0 {
			return &BreakError{last, Deleted, fmt.Sprintf("the log holds no entry, but checkpoint at seq %d vouches for entry %d", last, last)}
		}
		if head > 0 {
			return &BreakError{1, Deleted, fmt.Sprintf("the log holds no entry, but the head of the chain is seq %d", head)}
		}
		return nil
	}

	prev, expected := genesis, first.Seq
	if first.Seq > 1 {
		// Entries were pruned: a checkpoint at first-1 or later must cover them.
		covered, err := v.skipCheckpoints(first.Seq - 1)
		if err != nil {
			return err
		}
		anchor, err := v.cps.peek(v.ctx)
		if err != nil {
			return err
		}
		if anchor == nil {
			return &BreakError{covered + 1, Deleted, fmt.Sprintf("entries %d to %d are missing and no checkpoint covers them",
				covered+1, first.Seq-1)}
		}
		if err := v.checkSignature(anchor); err != nil {
			return err
		}
		v.rep.Anchor = anchor.Seq
		if anchor.Seq == first.Seq-1 {
			v.cps.pop()
			prev = anchor.Hash
		} else {
			// It vouches for an entry still here: the walk checks it there. The first entry's
			// link is authenticated by its own hash.
			prev = nil
		}
	}

	for e := first; e != nil; {
		if err := v.entry(e, expected, prev); err != nil {
			return err
		}
		prev, expected = e.Hash, e.Seq+1
		if v.rep.Entries == 0 {
			v.rep.First = e.Seq
		}
		v.rep.Entries++
		v.rep.Last, v.rep.LastHash = e.Seq, e.Hash
		if e, err = v.entries.next(v.ctx); err != nil {
			return err
		}
	}

	last := v.rep.Last
	c, err := v.cps.peek(v.ctx)
	if err != nil {
		return err
	}
	if c != nil {
		if err := v.checkSignature(c); err != nil {
			return err
		}
		return &BreakError{last + 1, Deleted, fmt.Sprintf("entries %d to %d are missing: checkpoint at seq %d vouches for them",
			last+1, c.Seq, c.Seq)}
	}
	if head > last {
		return &BreakError{last + 1, Deleted, fmt.Sprintf("entries %d to %d are missing: the head of the chain is seq %d",
			last+1, head, head)}
	}
	return nil
}

// entry checks e, which should be seq expected and follow an entry of hash prev (nil:
// unknown).
func (v *verifier) entry(e *store.AuditEntry, expected int64, prev []byte) error {
	switch {
	case e.Seq < expected:
		return &BreakError{e.Seq, Reordered, fmt.Sprintf("comes after seq %d", expected-1)}
	case e.Seq == expected+1:
		return &BreakError{expected, Deleted, fmt.Sprintf("entry %d is missing", expected)}
	case e.Seq > expected:
		return &BreakError{expected, Deleted, fmt.Sprintf("entries %d to %d are missing", expected, e.Seq-1)}
	}
	if !hmac.Equal(v.l.entryHash(e.Seq, e.PrevHash, e), e.Hash) {
		if s := v.writtenAt(e); s != 0 {
			return &BreakError{e.Seq, Reordered, fmt.Sprintf("it holds the entry written as seq %d", s)}
		}
		return &BreakError{e.Seq, Edited, "its content does not match its hash (changed, or sealed with another key)"}
	}
	if prev != nil && !hmac.Equal(e.PrevHash, prev) {
		if e.Seq == 1 {
			return &BreakError{e.Seq, Deleted, "it does not start the chain: entries before it were removed"}
		}
		return &BreakError{e.Seq, Deleted, fmt.Sprintf("it does not follow entry %d: an entry between them was removed, or one was replaced", e.Seq-1)}
	}
	c, err := v.cps.peek(v.ctx)
	if err != nil {
		return err
	}
	if c != nil && c.Seq == e.Seq {
		v.cps.pop()
		if err := v.checkSignature(c); err != nil {
			return err
		}
		if !hmac.Equal(c.Hash, e.Hash) {
			return &BreakError{e.Seq, Edited, "it differs from the entry its checkpoint recorded"}
		}
	}
	return nil
}

// writtenAt returns the seq near e's that e's content was written at, or 0.
func (v *verifier) writtenAt(e *store.AuditEntry) int64 {
	for d := int64(1); d <= reorderWindow; d++ {
		for _, s := range []int64{e.Seq + d, e.Seq - d} {
			if s >= 1 && hmac.Equal(v.l.entryHash(s, e.PrevHash, e), e.Hash) {
				return s
			}
		}
	}
	return 0
}

// skipCheckpoints checks and consumes the checkpoints before seq below, and returns the seq
// of the last one (0: none).
func (v *verifier) skipCheckpoints(below int64) (int64, error) {
	var last int64
	for {
		c, err := v.cps.peek(v.ctx)
		if err != nil || c == nil || c.Seq >= below {
			return last, err
		}
		if err := v.checkSignature(c); err != nil {
			return 0, err
		}
		v.cps.pop()
		last = c.Seq
	}
}

func (v *verifier) checkSignature(c *store.AuditCheckpoint) error {
	if !hmac.Equal(v.l.signature(c), c.Signature) {
		return &BreakError{c.Seq, ForgedCheckpoint, "its signature does not match it"}
	}
	if c.Seq > v.counted {
		v.rep.Checkpoints++
		v.counted = c.Seq
	}
	return nil
}

// entryPager reads entries oldest first, a page at a time.
type entryPager struct {
	r     store.Reader
	after int64
	buf   []*store.AuditEntry
	done  bool
}

// next returns the next entry, nil after the last.
func (p *entryPager) next(ctx context.Context) (*store.AuditEntry, error) {
	if len(p.buf) == 0 && !p.done {
		page, err := p.r.AuditEntries(ctx, store.AuditFilter{AfterSeq: p.after, Ascending: true, Limit: pageSize})
		if err != nil {
			return nil, err
		}
		p.buf, p.done = page, len(page) < pageSize
	}
	if len(p.buf) == 0 {
		return nil, nil
	}
	e := p.buf[0]
	p.buf = p.buf[1:]
	p.after = e.Seq
	return e, nil
}

// checkpointPager reads checkpoints oldest first, a page at a time.
type checkpointPager struct {
	r     store.Reader
	after int64
	buf   []*store.AuditCheckpoint
	done  bool
}

// peek returns the next checkpoint without consuming it, nil after the last.
func (p *checkpointPager) peek(ctx context.Context) (*store.AuditCheckpoint, error) {
	if len(p.buf) == 0 && !p.done {
		page, err := p.r.AuditCheckpoints(ctx, p.after, pageSize)
		if err != nil {
			return nil, err
		}
		p.buf, p.done = page, len(page) < pageSize
	}
	if len(p.buf) == 0 {
		return nil, nil
	}
	return p.buf[0], nil
}

// pop consumes the checkpoint peek returned.
func (p *checkpointPager) pop() {
	p.after = p.buf[0].Seq
	p.buf = p.buf[1:]
}
