package keyring_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/conveyorci/conveyor/internal/keyring"
)

const (
	chunk      = 64 << 10
	encChunk   = chunk + 16
	headerSize = 28
)

func testKey(seed byte) []byte { return bytes.Repeat([]byte{seed}, keyring.KeySize) }

func random(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

// encrypt writes data through EncryptWriter in writes of random sizes.
func encrypt(t testing.TB, key, data []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := keyring.EncryptWriter(&out, key)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(uint64(len(data)), 1))
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 1+r.IntN(3*chunk))
		if k, err := w.Write(rest[:n]); err != nil || k != n {
			t.Fatalf("Write = %d, %v; want %d", k, err, n)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// decrypt reads the whole stream, returning what was read before any error.
func decrypt(stream, key []byte) ([]byte, error) {
	r, err := keyring.DecryptReader(bytes.NewReader(stream), key)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestStreamRoundTrip(t *testing.T) {
	t.Parallel()
	key := testKey(1)
	for _, size := range []int{0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk, 1<<20 + 12345} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			t.Parallel()
			data := random(size, uint64(size))
			stream := encrypt(t, key, data)
			chunks := max(1, (size+chunk-1)/chunk)
			if want := headerSize + size + 16*chunks; len(stream) != want {
				t.Errorf("stream is %d bytes, want %d (%d chunks)", len(stream), want, chunks)
			}
			if size >= 16 && bytes.Contains(stream, data[:16]) {
				t.Error("the stream holds plaintext")
			}
			r, err := keyring.DecryptReader(bytes.NewReader(stream), key)
			if err != nil {
				t.Fatal(err)
			}
			// TestReader reads in several patterns, small reads included.
			if err := iotest.TestReader(r, data); err != nil {
				t.Error(err)
			}
			// A source that returns a byte at a time does as well.
			r, err = keyring.DecryptReader(iotest.OneByteReader(bytes.NewReader(stream)), key)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, data) {
				t.Errorf("one byte at a time: %d bytes, %v", len(got), err)
			}
			if again := encrypt(t, key, data); bytes.Equal(again, stream) {
				t.Error("two encryptions of the same data are the same")
			}
		})
	}
}

// Every way of tampering with a stream fails with ErrIntegrity, and no plaintext of a chunk
// that does not authenticate is returned.
func TestStreamTampering(t *testing.T) {
	t.Parallel()
	key := testKey(2)
	data := random(3*chunk+1000, 9) // chunks 0, 1, 2 full, 3 the short last one
	stream := encrypt(t, key, data)
	other := encrypt(t, key, data) // same key and plaintext, another salt and prefix
	at := func(i int) []byte { return stream[headerSize+i*encChunk : min(len(stream), headerSize+(i+1)*encChunk)] }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	header := stream[:headerSize]

	cases := map[string][]byte{
		"chunks 0 and 1 swapped":       cat(header, at(1), at(0), at(2), at(3)),
		"chunks 1 and 2 swapped":       cat(header, at(0), at(2), at(1), at(3)),
		"last chunk moved first":       cat(header, at(3), at(0), at(1), at(2)),
		"chunk 1 dropped":              cat(header, at(0), at(2), at(3)),
		"last chunk dropped":           cat(header, at(0), at(1), at(2)),
		"chunk 1 twice":                cat(header, at(0), at(1), at(1), at(2), at(3)),
		"last chunk twice":             cat(header, at(0), at(1), at(2), at(3), at(3)),
		"chunk 0 appended":             cat(stream, at(0)),
		"a byte appended":              cat(stream, []byte{0}),
		"16 bytes appended":            cat(stream, make([]byte, 16)),
		"another stream appended":      cat(stream, other),
		"chunk 1 of another stream":    cat(header, at(0), other[headerSize+encChunk:headerSize+2*encChunk], at(2), at(3)),
		"header of another stream":     cat(other[:headerSize], stream[headerSize:]),
		"empty":                        nil,
		"header only":                  header,
		"another format version":       cat(header[:4], []byte{2}, stream[5:]),
		"another magic":                cat([]byte("CVSX"), stream[4:]),
		"zstd instead of a stream":     []byte("\x28\xb5\x2f\xfd\x00\x00\x00\x00"),
		"last chunk cut to its tag":    cat(header, at(0), at(1), at(2), at(3)[:16]),
		"last chunk cut below its tag": cat(header, at(0), at(1), at(2), at(3)[:15]),
	}
	// Cut short anywhere: in the header, at chunk boundaries and next to them, in the tag.
	for _, n := range []int{1, headerSize - 1, headerSize + 1, headerSize + 16, len(stream) - 1, len(stream) - 16, len(stream) - 17} {
		cases[fmt.Sprintf("cut to %d bytes", n)] = stream[:n]
	}
	for i := 1; i <= 3; i++ {
		for _, d := range []int{-1, 0, 1} {
			n := headerSize + i*encChunk + d
			cases[fmt.Sprintf("cut to %d bytes (chunk %d boundary%+d)", n, i, d)] = stream[:n]
		}
	}
	// A flipped bit in every header byte, around every chunk boundary, and at random places.
	positions := []int{}
	for i := range headerSize {
		positions = append(positions, i)
	}
	for i := range 4 {
		start := headerSize + i*encChunk
		end := min(len(stream), start+encChunk)
		positions = append(positions, start, start+1, (start+end)/2, end-17, end-16, end-1)
	}
	r := rand.New(rand.NewPCG(4, 4))
	for range 64 {
		positions = append(positions, r.IntN(len(stream)))
	}
	for _, p := range positions {
		bad := bytes.Clone(stream)
		bad[p] ^= 1 << r.IntN(8)
		cases[fmt.Sprintf("bit flipped at %d", p)] = bad
	}

	for name, bad := range cases {
		got, err := decrypt(bad, key)
		if !errors.Is(err, keyring.ErrIntegrity) {
			t.Errorf("%s: %d bytes, error %v; want ErrIntegrity", name, len(got), err)
			continue
		}
		if !strings.Contains(err.Error(), "integrity check failed") {
			t.Errorf("%s: error %q does not say the integrity check failed", name, err)
		}
		// What was returned is whole authenticated chunks of the original, nothing else.
		if len(got)%chunk != 0 || !bytes.HasPrefix(data, got) {
			t.Errorf("%s: returned %d bytes before the error, not a prefix of whole chunks", name, len(got))
		}
	}

	if got, err := decrypt(stream, testKey(3)); !errors.Is(err, keyring.ErrIntegrity) || len(got) != 0 {
		t.Errorf("wrong key: %d bytes, %v; want ErrIntegrity and nothing", len(got), err)
	}
	if got, err := decrypt(stream, key); err != nil || !bytes.Equal(got, data) {
		t.Errorf("the untouched stream: %d bytes, %v", len(got), err)
	}
}

// A failing source is an I/O error, not an integrity failure.
func TestStreamReadError(t *testing.T) {
	t.Parallel()
	key := testKey(5)
	stream := encrypt(t, key, random(2*chunk+5, 5))
	boom := errors.New("connection reset")
	for _, n := range []int{0, 10, headerSize, headerSize + encChunk + 3} {
		src := io.MultiReader(bytes.NewReader(stream[:n]), iotest.ErrReader(boom))
		got, err := func() ([]byte, error) {
			r, err := keyring.DecryptReader(src, key)
			if err != nil {
				return nil, err
			}
			return io.ReadAll(r)
		}()
		if !errors.Is(err, boom) || errors.Is(err, keyring.ErrIntegrity) {
			t.Errorf("source failing after %d bytes: %d bytes, %v; want the source's error only", n, len(got), err)
		}
	}
}

func TestEncryptWriterErrors(t *testing.T) {
	t.Parallel()
	if _, err := keyring.EncryptWriter(io.Discard, make([]byte, 16)); err == nil {
		t.Error("EncryptWriter with a 16-byte key succeeded")
	}
	if _, err := keyring.DecryptReader(bytes.NewReader(encrypt(t, testKey(1), nil)), make([]byte, 31)); err == nil {
		t.Error("DecryptReader with a 31-byte key succeeded")
	}
	boom := errors.New("disk full")
	if _, err := keyring.EncryptWriter(errWriter{boom}, testKey(1)); !errors.Is(err, boom) {
		t.Errorf("EncryptWriter to a failing writer = %v; want its error", err)
	}
	// The header goes through; the first chunk fails.
	fw := &failAfter{n: headerSize, err: boom}
	w, err := keyring.EncryptWriter(fw, testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 2*chunk)); !errors.Is(err, boom) {
		t.Errorf("Write = %v; want %v", err, boom)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, boom) {
		t.Errorf("Write after a failure = %v; want %v again", err, boom)
	}
	if err := w.Close(); !errors.Is(err, boom) {
		t.Errorf("Close after a failure = %v; want %v", err, boom)
	}

	w, _ = keyring.EncryptWriter(io.Discard, testKey(1))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, err := w.Write([]byte("late")); err == nil {
		t.Error("Write after Close succeeded")
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

type failAfter struct {
	n   int
	err error
}

func (w *failAfter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return 0, w.err
	}
	w.n -= len(p)
	return len(p), nil
}

// FuzzDecryptReader feeds arbitrary streams to the decryptor: it must never panic, and with a
// source that cannot fail, every error is an integrity failure.
func FuzzDecryptReader(f *testing.F) {
	key := testKey(6)
	for _, size := range []int{0, 1, 100, chunk + 1} {
		f.Add(encrypt(f, key, random(size, uint64(size))), false)
	}
	f.Add([]byte("CVST\x01"), true)
	f.Fuzz(func(t *testing.T, stream []byte, oneByte bool) {
		var src io.Reader = bytes.NewReader(stream)
		if oneByte {
			src = iotest.OneByteReader(src)
		}
		r, err := keyring.DecryptReader(src, key)
		if err == nil {
			_, err = io.Copy(io.Discard, r)
		}
		if err != nil && !errors.Is(err, keyring.ErrIntegrity) {
			t.Fatalf("error %v does not wrap ErrIntegrity", err)
		}
	})
}

// BenchmarkStream measures EncryptWriter and DecryptReader throughput (MB/s) on 16 MiB.
func BenchmarkStream(b *testing.B) {
	key := testKey(7)
	data := random(16<<20, 7)
	stream := encrypt(b, key, data)
	b.Run("Encrypt", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			w, err := keyring.EncryptWriter(io.Discard, key)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := w.Write(data); err != nil {
				b.Fatal(err)
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Decrypt", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		buf := make([]byte, 256<<10)
		for b.Loop() {
			r, err := keyring.DecryptReader(bytes.NewReader(stream), key)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}
