package secret

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"sync"
)

// ErrClosed is returned by a Writer used after Close.
var ErrClosed = errors.New("secret writer is closed")

// String returns s with every form of every secret masked. A run of covered bytes, made of
// one occurrence or of several overlapping or adjacent ones, becomes one Mask.
func (m *Masker) String(s string) string {
	if m.empty() {
		return s
	}
	if out := m.maskAll([]byte(s)); out != nil {
		return string(out)
	}
	return s
}

// Bytes is String for a byte slice. It never modifies b, and returns b itself when there is
// nothing to mask.
func (m *Masker) Bytes(b []byte) []byte {
	if m.empty() {
		return b
	}
	if out := m.maskAll(b); out != nil {
		return out
	}
	return b
}

// maskAll returns b masked, or nil if there is nothing to mask.
func (m *Masker) maskAll(b []byte) []byte {
	if start, _ := m.next(b, 0, len(b)); start < 0 {
		return nil
	}
	sc := scan{cover: -1}
	return sc.mask(m, nil, b, len(b))
}

// next returns the first position in [from, to) where a form starts, and the end of the
// longest form there; start is -1 if there is none. A form may end past to.
func (m *Masker) next(src []byte, from, to int) (start, end int) {
	to = min(to, len(src)-MinLength+1)
	for i := from; i < to; i++ {
		p := binary.LittleEndian.Uint32(src[i:])
		h := prefixHash(p)
		if m.filter[h/64]&(1<<(h%64)) == 0 {
			continue
		}
		for _, f := range m.byPrefix[p] {
			if len(f) <= len(src)-i && bytes.Equal(src[i+MinLength:i+len(f)], f[MinLength:]) {
				return i, i + len(f)
			}
		}
	}
	return -1, 0
}

// scan is where masking stands in a text given in chunks, relative to the start of the
// chunk being masked.
type scan struct {
	cover int // end of the last masked run; below 0 if it ended before the chunk
	done  int // bytes before done are already written out, or masked
}

// mask appends to dst src[:n] masked, looking for forms that start before n (they may end
// past it, in src), and moves the scan to src[n:].
func (sc *scan) mask(m *Masker, dst, src []byte, n int) []byte {
	for i := 0; ; {
		start, end := m.next(src, i, n)
		if start < 0 {
			break
		}
		if start > sc.cover { // a new run: what is before it is plain text
			dst = append(dst, src[sc.done:start]...)
			dst = append(dst, Mask...)
		}
		sc.cover = max(sc.cover, end)
		sc.done = sc.cover
		i = start + 1
	}
	if sc.done < n {
		dst = append(dst, src[sc.done:n]...)
		sc.done = n
	}
	sc.cover -= n
	sc.done -= n
	return dst
}

// A Writer masks what is written to it and writes the result to another writer. It holds back
// the last (longest form - 1) bytes, so a secret split across Write calls is still caught;
// between Flushes, its output is String of all it was given. It is safe for concurrent use.
type Writer struct {
	m *Masker
	w io.Writer

	mu     sync.Mutex
	buf    []byte // given, not written yet
	out    []byte
	sc     scan
	err    error // sticky: the first error of w
	closed bool
}

var _ io.WriteCloser = (*Writer)(nil)

// Writer returns a Writer masking into w. With a nil Masker or one without values, it forwards
// every Write as it is.
func (m *Masker) Writer(w io.Writer) *Writer {
	return &Writer{m: m, w: w, sc: scan{cover: -1}}
}

// Write masks p and writes what can be decided to the underlying writer. Once the underlying
// writer has failed, every call returns its error.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, ErrClosed
	}
	if w.m.empty() {
		return w.w.Write(p)
	}
	if w.err != nil {
		return 0, w.err
	}
	w.buf = append(w.buf, p...)
	if n := len(w.buf) - (w.m.longest - 1); n > 0 {
		if err := w.emit(n); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush masks and writes what is held back. A secret split across a Flush is not caught, so
// flush only where a stream ends, not on a timer.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	return w.flush()
}

func (w *Writer) flush() error {
	if w.m.empty() {
		return nil
	}
	if w.err != nil {
		return w.err
	}
	return w.emit(len(w.buf))
}

// Close flushes the Writer; later Writes and Flushes return ErrClosed and later Closes do
// nothing. It does not close the underlying writer.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	return w.flush()
}

// emit masks and writes the first n held bytes.
func (w *Writer) emit(n int) error {
	w.out = w.sc.mask(w.m, w.out[:0], w.buf, n)
	w.buf = w.buf[:copy(w.buf, w.buf[n:])]
	if len(w.out) == 0 {
		return nil
	}
	written, err := w.w.Write(w.out)
	if err == nil && written < len(w.out) {
		err = io.ErrShortWrite
	}
	w.err = err
	return err
}
