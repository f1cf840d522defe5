package artifact

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
)

// formatVersion is hashed before the tar: it names the canonical form, so that changing the
// form changes every digest, and changing the compressor changes none.
const formatVersion = "conveyor-artifact-v1\n"

const (
	blockSize = 512     // tar block
	bufSize   = 1 << 20 // file copy buffer
)

// epoch is the modification time of every entry.
var epoch = time.Unix(0, 0)

// Pack writes the files of root selected by globs to w as a zstd-compressed canonical tar, and
// returns the artifact's Ref, computed while writing. The format and the glob syntax are in the
// package documentation. Pack applies no size limit; a Store applies Options.MaxSize.
func Pack(ctx context.Context, root string, globs []string, w io.Writer) (Ref, error) {
	return pack(ctx, root, globs, w, 0)
}

// A packEntry is a file to pack, found by the walk.
type packEntry struct {
	name   string      // slash-separated, relative to the root
	typ    fs.FileMode // fs.ModeSymlink, or 0 for a regular file
	target string      // symlink target
}

func pack(ctx context.Context, root string, globs []string, w io.Writer, maxSize int64) (Ref, error) {
	m, err := newMatcher(globs)
	if err != nil {
		return Ref{}, fmt.Errorf("pack %s: %w", root, err)
	}
	// Reading through an os.Root means a file swapped for a link to outside the tree while we
	// pack cannot make us read it.
	r, err := os.OpenRoot(root)
	if err != nil {
		return Ref{}, fmt.Errorf("pack: %w", err)
	}
	defer r.Close()

	var entries []packEntry
	if err := walk(ctx, r, "", m, false, &entries); err != nil {
		return Ref{}, fmt.Errorf("pack %s: %w", root, err)
	}
	slices.SortFunc(entries, func(a, b packEntry) int { return strings.Compare(a.name, b.name) })

	// The fastest level with the window of `zstd -1` compresses as well as it does. Concurrent
	// blocks compress 2 MiB sections in parallel, twice as fast on two cores, for about 25 MiB
	// of memory per goroutine, hence the cap.
	enc, err := zstd.NewWriter(w,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithWindowSize(512<<10),
		zstd.WithEncoderConcurrency(min(runtime.GOMAXPROCS(0), 4)),
		zstd.WithConcurrentBlocks(true))
	if err != nil {
		return Ref{}, fmt.Errorf("pack %s: %w", root, err)
	}
	h := sha256.New()
	io.WriteString(h, formatVersion)
	// tar → count → buffer → (hash, compress): one pass, nothing held in memory but buffers.
	cw := &countWriter{w: bufio.NewWriterSize(io.MultiWriter(h, enc), 256<<10)}
	err = writeTar(ctx, r, entries, cw, maxSize)
	if err == nil {
		err = cw.w.Flush()
	}
	if cerr := enc.Close(); err == nil { // always close: it stops the encoder's goroutines
		err = cerr
	}
	if err != nil {
		return Ref{}, fmt.Errorf("pack %s: %w", root, err)
	}
	return Ref{Digest: "sha256:" + hex.EncodeToString(h.Sum(nil)), Size: cw.n, Files: len(entries)}, nil
}

// walk appends to out the files under dir (relative to r, "" for the root) that m selects;
// matched says an ancestor directory matched, which selects everything below it.
func walk(ctx context.Context, r *os.Root, dir string, m *matcher, matched bool, out *[]packEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d, err := r.Open(cmpDot(dir))
	if err != nil {
		return err
	}
	des, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, de := range des {
		name := de.Name()
		if dir != "" {
			name = dir + "/" + name
		}
		in := matched || m.match(name)
		switch typ := de.Type(); {
		case typ.IsDir():
			if in || m.mayMatchBelow(name) {
				if err := walk(ctx, r, name, m, in, out); err != nil {
					return err
				}
			}
		case !in:
		case typ.IsRegular():
			*out = append(*out, packEntry{name: name})
		case typ&fs.ModeSymlink != 0:
			target, err := r.Readlink(name)
			if err != nil {
				return err
			}
			if !symlinkInside(name, target) {
				return &EntryError{Path: name, Err: ErrUnsafe, Reason: fmt.Sprintf(
					"symlink target %q leaves the directory (targets must be relative, with '..' only at the start)", target)}
			}
			*out = append(*out, packEntry{name: name, typ: fs.ModeSymlink, target: target})
		default:
			return &EntryError{Path: name, Err: ErrUnsafe, Reason: fmt.Sprintf(
				"is a %s: an artifact holds only regular files, directories and symlinks", typeName(typ))}
		}
	}
	return nil
}

func writeTar(ctx context.Context, r *os.Root, entries []packEntry, cw *countWriter, maxSize int64) error {
	tw := tar.NewWriter(cw)
	buf := make([]byte, bufSize)
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr := &tar.Header{Name: e.name, ModTime: epoch}
		if e.typ == fs.ModeSymlink {
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, e.target, 0o777
			if err := tw.WriteHeader(hdr); err != nil {
				return fmt.Errorf("write %s: %w", e.name, err)
			}
			continue
		}
		if err := writeFile(ctx, r, tw, hdr, cw, maxSize, buf); err != nil {
			return err
		}
	}
	return tw.Close()
}

// writeFile writes one regular file. Its size and mode come from the open file, so what is
// written is what was read.
func writeFile(ctx context.Context, r *os.Root, tw *tar.Writer, hdr *tar.Header, cw *countWriter, maxSize int64, buf []byte) error {
	f, err := r.Open(hdr.Name)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return &EntryError{Path: hdr.Name, Reason: "changed while packing", Err: ErrUnsafe}
	}
	hdr.Typeflag, hdr.Size, hdr.Mode = tar.TypeReg, fi.Size(), 0o644
	if fi.Mode()&0o111 != 0 {
		hdr.Mode = 0o755
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write %s: %w", hdr.Name, err)
	}
	if maxSize > 0 && cw.n+roundBlock(hdr.Size)+2*blockSize > maxSize {
		return &EntryError{Path: hdr.Name, Err: ErrTooLarge, Reason: fmt.Sprintf(
			"artifact would exceed the limit of %d bytes", maxSize)}
	}
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		k, rerr := f.Read(buf)
		if k > 0 {
			if _, err := tw.Write(buf[:k]); errors.Is(err, tar.ErrWriteTooLong) {
				return &EntryError{Path: hdr.Name, Reason: "changed while packing", Err: err}
			} else if err != nil {
				return fmt.Errorf("write %s: %w", hdr.Name, err)
			}
			n += int64(k)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if n != hdr.Size {
		return &EntryError{Path: hdr.Name, Reason: "changed while packing", Err: io.ErrUnexpectedEOF}
	}
	return nil
}

// symlinkInside reports whether a symlink at name (clean, relative) pointing to target stays
// inside the tree. The check is lexical, so ".." is allowed only at the start of the target:
// after a name that may itself be a symlink, ".." could lead anywhere ("x/../../etc" with x
// pointing at "a/b" is "a/../etc", not "../etc").
func symlinkInside(name, target string) bool {
	if target == "" || strings.HasPrefix(target, "/") {
		return false
	}
	depth := strings.Count(name, "/") // directories between the root and the link
	down := false
	for _, el := range strings.Split(target, "/") {
		switch el {
		case "", ".":
		case "..":
			if down {
				return false
			}
			if depth--; depth < 0 {
				return false
			}
		default:
			down = true
		}
	}
	return true
}

func typeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "device"
	default:
		return "special file (" + m.String() + ")"
	}
}

func cmpDot(dir string) string {
	if dir == "" {
		return "."
	}
	return dir
}

func roundBlock(n int64) int64 { return (n + blockSize - 1) / blockSize * blockSize }

// countWriter counts the bytes of the tar: the artifact's size.
type countWriter struct {
	w *bufio.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
