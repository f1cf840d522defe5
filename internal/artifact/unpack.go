package artifact

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Unpack reads a zstd-compressed tar from r and writes its files under dest (created if
// missing), refusing anything unsafe, and returns the Ref of what it read: the digest covers
// every uncompressed byte, so a caller compares it with the Ref it expected.
//
// Unpack accepts any tar of regular files, directories, symlinks and hard links, not only
// canonical ones. It refuses, with an *EntryError naming the entry and the reason: absolute
// paths and ".." components, entries below a symlink or a file, symlinks leading out of dest,
// hard links to anything but a file earlier in the archive, devices and fifos, duplicate
// entries, and archives over lim (bytes counted as decompressed, not taken from headers), and a
// zstd window over MaxWindow. A malformed stream gives an error wrapping ErrCorrupt; an error
// reading r is returned as is.
//
// dest should be empty: files are created exclusively, and on error what was written stays
// there (Store.Restore unpacks into a staging directory).
func Unpack(ctx context.Context, r io.Reader, dest string, lim Limits) (Ref, error) {
	if lim.MaxSize <= 0 {
		lim.MaxSize = DefaultMaxSize
	}
	if lim.MaxFiles <= 0 {
		lim.MaxFiles = DefaultMaxFiles
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return Ref{}, fmt.Errorf("unpack: %w", err)
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return Ref{}, fmt.Errorf("unpack: %w", err)
	}
	defer root.Close()

	src := &srcReader{r: r}
	dec, err := zstd.NewReader(src,
		zstd.WithDecoderMaxWindow(MaxWindow),
		zstd.WithDecoderMaxMemory(MaxWindow),
		zstd.WithDecoderConcurrency(2)) // decode the next block while this one is written
	if err != nil {
		return Ref{}, fmt.Errorf("unpack: %w", err)
	}
	defer dec.Close()

	u := &unpacker{
		root: root,
		lim:  lim,
		in:   &digestReader{ctx: ctx, r: dec, h: sha256.New(), max: lim.MaxSize},
		seen: make(map[string]kind),
	}
	io.WriteString(u.in.h, formatVersion)
	ref, err := u.run(ctx)
	if u.dirRoot != nil {
		u.dirRoot.Close()
	}
	if err != nil {
		if serr := src.error(); serr != nil {
			err = serr // a failing source (a network error, say) is not a corrupt archive
		}
		return Ref{}, fmt.Errorf("unpack into %s: %w", dest, err)
	}
	return ref, nil
}

// kind is what a path in the archive turned out to be.
type kind uint8

const (
	implicitDir kind = iota + 1 // a parent of an entry, without an entry of its own
	dirEntry
	fileEntry
	symlinkEntry
)

type unpacker struct {
	root  *os.Root
	lim   Limits
	in    *digestReader
	seen  map[string]kind
	files int
	buf   []byte

	// The directory of the last file written, opened as a root of its own: files come sorted
	// by directory, so each is then one openat instead of one per path component.
	dir     string
	dirRoot *os.Root
}

// rootFor returns a root and a name in it for creating the file at name.
func (u *unpacker) rootFor(name string) (*os.Root, string, error) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return u.root, name, nil
	}
	if u.dirRoot == nil || u.dir != name[:i] {
		if u.dirRoot != nil {
			u.dirRoot.Close()
			u.dirRoot = nil
		}
		r, err := u.root.OpenRoot(name[:i])
		if err != nil {
			return nil, "", err
		}
		u.dir, u.dirRoot = name[:i], r
	}
	return u.dirRoot, name[i+1:], nil
}

func (u *unpacker) run(ctx context.Context) (Ref, error) {
	tr := tar.NewReader(u.in)
	u.buf = make([]byte, bufSize)
	entries := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Ref{}, u.readError("", err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader { // metadata only (git archive writes one)
			continue
		}
		if entries++; entries > u.lim.MaxFiles {
			return Ref{}, &EntryError{Path: hdr.Name, Err: ErrTooLarge, Reason: fmt.Sprintf(
				"archive has more than %d entries", u.lim.MaxFiles)}
		}
		if err := u.entry(ctx, tr, hdr); err != nil {
			return Ref{}, err
		}
	}
	// The digest covers the whole stream, padding after the end-of-archive blocks included.
	if _, err := io.CopyBuffer(io.Discard, u.in, u.buf); err != nil {
		return Ref{}, u.readError("", err)
	}
	return Ref{Digest: "sha256:" + hex.EncodeToString(u.in.h.Sum(nil)), Size: u.in.n, Files: u.files}, nil
}

// entry writes one entry, whose content (a regular file's) is read from r.
func (u *unpacker) entry(ctx context.Context, r io.Reader, hdr *tar.Header) error {
	refuse := func(format string, args ...any) error {
		return &EntryError{Path: hdr.Name, Reason: fmt.Sprintf(format, args...), Err: ErrUnsafe}
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return refuse("%v", err)
	}
	if name == "." {
		if hdr.Typeflag == tar.TypeDir { // "./", as GNU tar writes it
			return nil
		}
		return refuse("is not a directory but names the root")
	}
	for i := range len(name) {
		if name[i] != '/' {
			continue
		}
		switch u.seen[name[:i]] {
		case symlinkEntry:
			return refuse("its parent %q is a symlink", name[:i])
		case fileEntry:
			return refuse("its parent %q is a file", name[:i])
		}
	}
	switch k, ok := u.seen[name]; {
	case ok && k == implicitDir && hdr.Typeflag != tar.TypeDir:
		return refuse("duplicate entry: earlier entries made it a directory")
	case ok && k != implicitDir:
		return refuse("duplicate entry")
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		u.seen[name] = dirEntry
		if err := u.root.MkdirAll(name, 0o755); err != nil {
			return err
		}
		u.markParents(name)
		return nil
	case tar.TypeReg:
		if hdr.Size > u.in.max-u.in.n {
			return &EntryError{Path: hdr.Name, Err: ErrTooLarge, Reason: fmt.Sprintf(
				"%d bytes would exceed the limit of %d bytes", hdr.Size, u.in.max)}
		}
		if err := u.mkParents(name); err != nil {
			return err
		}
		u.seen[name] = fileEntry
		u.files++
		return u.writeFile(ctx, r, name, hdr)
	case tar.TypeSymlink:
		if !symlinkInside(name, hdr.Linkname) {
			return refuse("symlink target %q leaves the destination (targets must be relative, with '..' only at the start)", hdr.Linkname)
		}
		if err := u.mkParents(name); err != nil {
			return err
		}
		u.seen[name] = symlinkEntry
		u.files++
		return u.root.Symlink(hdr.Linkname, name)
	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil || u.seen[target] != fileEntry {
			return refuse("hard link target %q is not a regular file earlier in the archive", hdr.Linkname)
		}
		if err := u.mkParents(name); err != nil {
			return err
		}
		u.seen[name] = fileEntry
		u.files++
		return u.root.Link(target, name)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return refuse("device and fifo entries are not allowed")
	default:
		return refuse("entry type %q is not supported", hdr.Typeflag)
	}
}

func (u *unpacker) writeFile(ctx context.Context, src io.Reader, name string, hdr *tar.Header) error {
	perm := fs.FileMode(0o644)
	if hdr.Mode&0o111 != 0 {
		perm = 0o755
	}
	r, base, err := u.rootFor(name)
	if err != nil {
		return err
	}
	f, err := r.OpenFile(base, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			f.Close()
			return err
		}
		n, rerr := src.Read(u.buf)
		if n > 0 {
			if _, err := f.Write(u.buf[:n]); err != nil {
				f.Close()
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			f.Close()
			return u.readError(hdr.Name, rerr)
		}
	}
	return f.Close()
}

// mkParents creates the parent directories of name that the archive has not created yet.
func (u *unpacker) mkParents(name string) error {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return nil
	}
	if k := u.seen[name[:i]]; k == implicitDir || k == dirEntry {
		return nil
	}
	if err := u.root.MkdirAll(name[:i], 0o755); err != nil {
		return err
	}
	u.markParents(name)
	return nil
}

func (u *unpacker) markParents(name string) {
	for i := range len(name) {
		if name[i] == '/' {
			if _, ok := u.seen[name[:i]]; !ok {
				u.seen[name[:i]] = implicitDir
			}
		}
	}
}

// readError classifies an error met while reading the archive.
func (u *unpacker) readError(entry string, err error) error {
	switch {
	case errors.Is(err, errOverLimit) && entry == "":
		return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, u.in.max)
	case errors.Is(err, errOverLimit):
		return &EntryError{Path: entry, Err: ErrTooLarge, Reason: fmt.Sprintf(
			"archive exceeds the limit of %d bytes", u.in.max)}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case entry != "":
		return fmt.Errorf("read %q: %w: %w", entry, ErrCorrupt, err)
	default:
		return fmt.Errorf("read archive: %w: %w", ErrCorrupt, err)
	}
}

// cleanName returns the entry path relative to the root, "." for the root itself.
func cleanName(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", errors.New("absolute path")
	}
	for strings.HasPrefix(name, "./") {
		name = name[2:]
	}
	name = strings.TrimSuffix(name, "/")
	if name == "" || name == "." {
		return ".", nil
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", errors.New("path contains '..'")
		}
	}
	if !fs.ValidPath(name) || strings.ContainsRune(name, 0) {
		return "", errors.New("path is not clean (empty or '.' components)")
	}
	return name, nil
}

var errOverLimit = errors.New("over the size limit")

// digestReader hashes and counts what it reads, and refuses to read past max bytes.
type digestReader struct {
	ctx context.Context
	r   io.Reader
	h   hash.Hash
	n   int64
	max int64
}

func (d *digestReader) Read(p []byte) (int, error) {
	if err := d.ctx.Err(); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if left := d.max - d.n; left == 0 {
		// At the limit: fine if the stream ends here.
		var one [1]byte
		if n, err := d.r.Read(one[:]); n == 0 {
			return 0, err
		}
		return 0, errOverLimit
	} else if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := d.r.Read(p)
	d.h.Write(p[:n])
	d.n += int64(n)
	return n, err
}

// srcReader remembers an error of the underlying reader; the decoder reads it from its own
// goroutine.
type srcReader struct {
	r   io.Reader
	mu  sync.Mutex
	err error
}

func (s *srcReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
	}
	return n, err
}

func (s *srcReader) error() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
