package secret

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

func newMasker(t testing.TB, values ...string) *Masker {
	t.Helper()
	m, err := NewMasker(values...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{"none", []string{"hunter2"}, "nothing to see", "nothing to see"},
		{"empty text", []string{"hunter2"}, "", ""},
		{"whole text", []string{"hunter2"}, "hunter2", "***"},
		{"start and end", []string{"hunter2"}, "hunter2 and hunter2", "*** and ***"},
		{"near miss", []string{"hunter2"}, "hunter hunter3 unter2", "hunter hunter3 unter2"},
		{"adjacent", []string{"hunter2"}, "hunter2hunter2.", "***."},
		{"self overlap", []string{"abab"}, "xababababx", "x***x"},
		// Replacing the longest first would leave "ij" of the second secret.
		{"overlap", []string{"abcdefgh", "ghij"}, "xabcdefghijx", "x***x"},
		{"overlap from the next byte", []string{"abcdef", "bcdefghi"}, "xabcdefghix", "x***x"},
		{"overlap other way", []string{"ghij", "abcdefgh"}, "xabcdefghijx", "x***x"},
		{"inside another", []string{"abcdefgh", "cdef"}, "cdef abcdefgh", "*** ***"},
		{"one apart", []string{"abcd", "efgh"}, "abcd.efgh", "***.***"},
		{"duplicates", []string{"hunter2", "hunter2"}, "a hunter2", "a ***"},
		{"binary", []string{"\x00\xff\x00\xff"}, "a\x00\xff\x00\xffb", "a***b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMasker(t, tt.secrets...)
			if got := m.String(tt.in); got != tt.want {
				t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got := m.Bytes([]byte(tt.in)); string(got) != tt.want {
				t.Errorf("Bytes(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got := writeAll(t, m, tt.in, 1); got != tt.want {
				t.Errorf("Writer, one byte at a time, %q = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestBytesLeavesInputAlone(t *testing.T) {
	t.Parallel()
	m := newMasker(t, "hunter2")
	in := []byte("pw hunter2")
	if got := m.Bytes(in); string(got) != "pw ***" || string(in) != "pw hunter2" {
		t.Errorf("Bytes = %q, input now %q", got, in)
	}
	plain := []byte("nothing")
	if got := m.Bytes(plain); &got[0] != &plain[0] {
		t.Errorf("Bytes copied a text with nothing to mask")
	}
}

// writeAll writes in to a Writer of m in pieces of size bytes, closes it and returns what
// came out.
func writeAll(t testing.TB, m *Masker, in string, size int) string {
	t.Helper()
	var out bytes.Buffer
	w := m.Writer(&out)
	for len(in) > 0 {
		n := min(size, len(in))
		if k, err := w.Write([]byte(in[:n])); k != n || err != nil {
			t.Fatalf("Write = %d, %v", k, err)
		}
		in = in[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestWriterHoldsBackAndFlushes(t *testing.T) {
	t.Parallel()
	m := newMasker(t, "hunter2") // longest form: aHVudGVyMg==, 12 bytes
	var out bytes.Buffer
	w := m.Writer(&out)
	for _, p := range []string{"pw: hun", "ter2; ", "again: h", "u"} {
		if _, err := w.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	// 22 bytes given: the first 11 are decided, the last 11 held back.
	if got, want := out.String(), "pw: ***"; got != want {
		t.Errorf("before Flush: %q, want %q", got, want)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "pw: ***; again: hu"; got != want {
		t.Errorf("after Flush: %q, want %q", got, want)
	}
	// A secret split across a Flush is not caught: Flush is for the end of a stream.
	if _, err := w.Write([]byte("nter2")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "pw: ***; again: hunter2"; got != want {
		t.Errorf("after Close: %q, want %q", got, want)
	}
}

func TestWriterClosed(t *testing.T) {
	t.Parallel()
	for _, m := range []*Masker{nil, newMasker(t), newMasker(t, "hunter2")} {
		var out bytes.Buffer
		w := m.Writer(&out)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Errorf("second Close = %v, want nil", err)
		}
		if n, err := w.Write([]byte("x")); n != 0 || !errors.Is(err, ErrClosed) {
			t.Errorf("Write after Close = %d, %v; want 0, ErrClosed", n, err)
		}
		if err := w.Flush(); !errors.Is(err, ErrClosed) {
			t.Errorf("Flush after Close = %v, want ErrClosed", err)
		}
		if out.Len() != 0 {
			t.Errorf("wrote %q", out.String())
		}
	}
}

// TestPassThrough checks that a Masker with nothing to mask changes nothing and holds nothing back.
func TestPassThrough(t *testing.T) {
	t.Parallel()
	for _, m := range []*Masker{nil, newMasker(t)} {
		const s = "hunter2 and more"
		if got := m.String(s); got != s {
			t.Errorf("String = %q", got)
		}
		if got := m.Bytes([]byte(s)); string(got) != s {
			t.Errorf("Bytes = %q", got)
		}
		var out bytes.Buffer
		w := m.Writer(&out)
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
		if out.String() != s {
			t.Errorf("Write forwarded %q, want %q at once", out.String(), s)
		}
	}
}

type failingWriter struct{ n int }

var errFull = errors.New("disk full")

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n < len(p) {
		return 0, errFull
	}
	f.n -= len(p)
	return len(p), nil
}

func TestWriterErrorSticks(t *testing.T) {
	t.Parallel()
	m := newMasker(t, "hunter2")
	w := m.Writer(&failingWriter{n: 10})
	big := []byte(strings.Repeat("x", 100))
	if _, err := w.Write(big); !errors.Is(err, errFull) {
		t.Fatalf("Write = %v, want errFull", err)
	}
	if _, err := w.Write([]byte("y")); !errors.Is(err, errFull) {
		t.Errorf("second Write = %v, want errFull", err)
	}
	if err := w.Close(); !errors.Is(err, errFull) {
		t.Errorf("Close = %v, want errFull", err)
	}
}

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

func TestWriterShortWrite(t *testing.T) {
	t.Parallel()
	w := newMasker(t, "hunter2").Writer(shortWriter{})
	if _, err := w.Write([]byte("some text")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); !errors.Is(err, io.ErrShortWrite) {
		t.Errorf("Close = %v, want io.ErrShortWrite", err)
	}
}

// TestWriterConcurrent writes whole lines from several goroutines, as a job's stdout and
// stderr do; with -race it also checks the locking.
func TestWriterConcurrent(t *testing.T) {
	t.Parallel()
	m := newMasker(t, "hunter2")
	var out bytes.Buffer
	w := m.Writer(&out)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				fmt.Fprintf(w, "goroutine %d line %d: password hunter2\n", g, i)
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out.String(), "password ***\n"); got != 800 || strings.Contains(out.String(), "hunter2") {
		t.Errorf("%d lines masked out of 800; secret shown: %v", got, strings.Contains(out.String(), "hunter2"))
	}
}

// BenchmarkMaskerWriter masks 1 MiB of log text, in 4 KiB writes, for 20 secrets; a few
// lines show a secret.
func BenchmarkMaskerWriter(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	secrets := make([]string, 20)
	for i := range secrets {
		secrets[i] = randomText(rng, 8+rng.IntN(33), alnum)
	}
	m := newMasker(b, secrets...)
	words := strings.Fields("the build of step compile in stage test ran go test ./... ok PASS FAIL " +
		"github.com/conveyorci/conveyor/internal 0.042s coverage: 81.3% of statements Downloading " +
		"https://proxy.golang.org/ 200 OK sha256:9f86d081884c7d659a2feaa0c55ad015 [INFO] [WARN] npm ERR!")
	var log bytes.Buffer
	for line := 0; log.Len() < 1<<20; line++ {
		fmt.Fprintf(&log, "2026-03-01T12:00:%02d.%03dZ ", line%60, line%1000)
		for range 4 + rng.IntN(12) {
			log.WriteString(words[rng.IntN(len(words))])
			log.WriteByte(' ')
		}
		if line%100 == 0 {
			log.WriteString(secrets[rng.IntN(len(secrets))])
		}
		log.WriteByte('\n')
	}
	text := log.Bytes()[:1<<20]
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		w := m.Writer(io.Discard)
		for p := text; len(p) > 0; {
			n := min(4<<10, len(p))
			if _, err := w.Write(p[:n]); err != nil {
				b.Fatal(err)
			}
			p = p[n:]
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
