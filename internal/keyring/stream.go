package keyring

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

const (
	chunkSize    = 64 << 10
	encChunkSize = chunkSize + tagSize
	streamMagic  = "CVST"
	saltSize     = 16
	prefixSize   = nonceSize - 4 - 1 // then a 4-byte counter and the last-chunk flag
	headerSize   = len(streamMagic) + 1 + saltSize + prefixSize
	streamInfo   = "conveyor stream v1"
)

// streamAEAD derives the stream's own key from the data key and the stream's salt.
func streamAEAD(dataKey, salt []byte) (cipher.AEAD, error) {
	if len(dataKey) != KeySize {
		return nil, fmt.Errorf("data key is %d bytes, want %d", len(dataKey), KeySize)
	}
	key, err := hkdf.Key(sha256.New, dataKey, salt, streamInfo, KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	return newGCM(key)
}

// setNonce makes the nonce of chunk counter: the stream's prefix, the counter, the flag.
func setNonce(nonce *[nonceSize]byte, counter uint64, last bool) {
	binary.BigEndian.PutUint32(nonce[prefixSize:], uint32(counter))
	nonce[nonceSize-1] = 0
	if last {
		nonce[nonceSize-1] = 1
	}
}

// EncryptWriter returns a writer that encrypts what is written to it with dataKey (32 bytes)
// and writes the stream to w, a chunk of 64 KiB at a time. Close writes the last chunk, which
// is what makes the stream complete; it does not close w. The header is written at once.
func EncryptWriter(w io.Writer, dataKey []byte) (io.WriteCloser, error) {
	var hdr [headerSize]byte
	copy(hdr[:], streamMagic)
	hdr[len(streamMagic)] = formatV1
	salt, prefix := hdr[len(streamMagic)+1:headerSize-prefixSize], hdr[headerSize-prefixSize:]
	rand.Read(salt) // never fails: it crashes the program instead
	rand.Read(prefix)
	aead, err := streamAEAD(dataKey, salt)
	if err != nil {
		return nil, fmt.Errorf("encrypt stream: %w", err)
	}
	e := &encWriter{w: w, aead: aead, buf: make([]byte, 0, encChunkSize)}
	copy(e.nonce[:], prefix)
	if _, err := w.Write(hdr[:]); err != nil {
		return nil, fmt.Errorf("encrypt stream: %w", err)
	}
	return e, nil
}

type encWriter struct {
	w       io.Writer
	aead    cipher.AEAD
	nonce   [nonceSize]byte
	buf     []byte // plaintext of the chunk being filled, with room for its tag
	counter uint64
	err     error // sticky: once a write failed, the stream is broken
}

var errClosed = errors.New("encrypt stream: write after Close")

func (e *encWriter) Write(p []byte) (n int, err error) {
	if e.err != nil {
		return 0, e.err
	}
	for len(p) > 0 {
		// A full chunk is sealed only when more follows: the last chunk may be full.
		if len(e.buf) == chunkSize {
			if err := e.seal(false); err != nil {
				return n, err
			}
		}
		k := copy(e.buf[len(e.buf):chunkSize], p)
		e.buf = e.buf[:len(e.buf)+k]
		p = p[k:]
		n += k
	}
	return n, nil
}

// Close seals and writes the last chunk. Closing again is harmless.
func (e *encWriter) Close() error {
	if e.err == errClosed {
		return nil
	}
	if e.err != nil {
		return e.err
	}
	if err := e.seal(true); err != nil {
		return err
	}
	e.err = errClosed
	return nil
}

func (e *encWriter) seal(last bool) error {
	if e.counter > math.MaxUint32 {
		e.err = errors.New("encrypt stream: over 2^32 chunks (256 TiB)")
		return e.err
	}
	setNonce(&e.nonce, e.counter, last)
	out := e.aead.Seal(e.buf[:0], e.nonce[:], e.buf, nil)
	if _, err := e.w.Write(out); err != nil {
		e.err = fmt.Errorf("encrypt stream: %w", err)
		return e.err
	}
	e.counter++
	e.buf = e.buf[:0]
	return nil
}

// DecryptReader returns a reader of the plaintext of the stream EncryptWriter wrote to r with
// dataKey. It reads the header at once. Each chunk is authenticated before any of its
// plaintext is returned; a stream altered, reordered, cut short or extended, or encrypted with
// another key, gives an error wrapping ErrIntegrity (on the first chunk, for another key).
// Errors reading r are returned as they are, except an early EOF, which is a truncation.
func DecryptReader(r io.Reader, dataKey []byte) (io.Reader, error) {
	var hdr [headerSize]byte
	if n, err := io.ReadFull(r, hdr[:]); err == io.EOF || err == io.ErrUnexpectedEOF {
		return nil, integrity("the stream is %d bytes, shorter than its header", n)
	} else if err != nil {
		return nil, fmt.Errorf("decrypt stream: %w", err)
	}
	if string(hdr[:len(streamMagic)]) != streamMagic {
		return nil, integrity("not an encrypted stream")
	}
	if v := hdr[len(streamMagic)]; v != formatV1 {
		return nil, integrity("unknown stream format version %d", v)
	}
	aead, err := streamAEAD(dataKey, hdr[len(streamMagic)+1:headerSize-prefixSize])
	if err != nil {
		return nil, fmt.Errorf("decrypt stream: %w", err)
	}
	d := &decReader{src: r, aead: aead, buf: make([]byte, encChunkSize+1)}
	copy(d.nonce[:], hdr[headerSize-prefixSize:])
	return d, nil
}

func integrity(format string, args ...any) error {
	return fmt.Errorf("decrypt stream: %w: %s", ErrIntegrity, fmt.Sprintf(format, args...))
}

type decReader struct {
	src     io.Reader
	aead    cipher.AEAD
	nonce   [nonceSize]byte
	buf     []byte // a chunk and the first byte of the next one, which tells this one is not the last
	ahead   bool   // buf[encChunkSize] holds the first byte of the next chunk
	plain   []byte // authenticated plaintext not yet read (in buf)
	counter uint64
	done    bool  // the last chunk was read
	err     error // sticky
}

func (d *decReader) Read(p []byte) (int, error) {
	for len(d.plain) == 0 {
		switch {
		case d.err != nil:
			return 0, d.err
		case d.done:
			return 0, io.EOF
		}
		d.err = d.next()
	}
	n := copy(p, d.plain)
	d.plain = d.plain[n:]
	return n, nil
}

// next reads, authenticates and decrypts one chunk into d.plain.
func (d *decReader) next() error {
	have := 0
	if d.ahead {
		d.buf[0] = d.buf[encChunkSize]
		have = 1
	}
	n, err := io.ReadFull(d.src, d.buf[have:])
	have += n
	last := false
	switch {
	case err == nil: // another chunk follows
		d.ahead = true
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		last, d.ahead = true, false
	default:
		return fmt.Errorf("decrypt stream: %w", err)
	}
	if d.counter > math.MaxUint32 {
		return integrity("over 2^32 chunks")
	}
	chunk := d.buf[:min(have, encChunkSize)]
	if len(chunk) < tagSize {
		return integrity("the stream ends in chunk %d: it was cut short", d.counter)
	}
	if last && len(chunk) == tagSize && d.counter > 0 {
		return integrity("empty last chunk %d after others", d.counter)
	}
	setNonce(&d.nonce, d.counter, last)
	plain, err := d.aead.Open(chunk[:0], d.nonce[:], chunk, nil)
	if err != nil {
		return integrity("chunk %d does not authenticate: the stream was altered, reordered, cut short or extended, or the key is wrong", d.counter)
	}
	d.plain = plain
	d.counter++
	d.done = last
	return nil
}
