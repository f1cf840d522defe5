package artifact

import (
	"archive/tar"
	"archive/zip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
)

// Archives that are not artifacts (a zip or tar someone put in a bucket) are unpacked by the
// same unpacker as artifacts, so they are refused for the same reasons: see Unpack.

// UnpackTar reads an uncompressed tar from r (any tar, not only a canonical one: a caller
// decompresses a .tar.gz itself) and writes its files under dest, created if missing, with the
// checks and limits of Unpack. It returns the number of files (and symlinks) written.
func UnpackTar(ctx context.Context, r io.Reader, dest string, lim Limits) (files int, err error) {
	u, err := newUnpacker(ctx, dest, lim, r)
	if err != nil {
		return 0, fmt.Errorf("unpack tar: %w", err)
	}
	defer u.close()
	if _, err := u.run(ctx); err != nil {
		return 0, fmt.Errorf("unpack tar into %s: %w", dest, err)
	}
	return u.files, nil
}

// UnpackZip writes the files of the zip archive r, of size bytes, under dest, created if
// missing, with the checks and limits of Unpack: entries escaping dest (absolute, "..", below
// or through a symlink leading out), duplicates and entries that are neither files,
// directories nor symlinks are refused with an *EntryError wrapping ErrUnsafe; the size limit
// counts the bytes decompressed, not the sizes the archive claims. A file that is not a zip,
// or whose entries fail their checksum, gives an error wrapping ErrCorrupt. It returns the
// number of files (and symlinks) written.
func UnpackZip(ctx context.Context, r io.ReaderAt, size int64, dest string, lim Limits) (files int, err error) {
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) { // insecure paths: refused below, by name
		return 0, fmt.Errorf("unpack zip: %w: %w", ErrCorrupt, err)
	}
	u, err := newUnpacker(ctx, dest, lim, nil)
	if err != nil {
		return 0, fmt.Errorf("unpack zip: %w", err)
	}
	defer u.close()
	if len(zr.File) > u.lim.MaxFiles {
		return 0, fmt.Errorf("unpack zip into %s: %w: archive has more than %d entries", dest, ErrTooLarge, u.lim.MaxFiles)
	}
	u.buf = make([]byte, bufSize)
	for _, f := range zr.File {
		if err := u.zipEntry(ctx, f); err != nil {
			return 0, fmt.Errorf("unpack zip into %s: %w", dest, err)
		}
	}
	return u.files, nil
}

// maxLinkTarget bounds the content of a zip entry taken as a symlink's target.
const maxLinkTarget = 4096

// zipEntry writes one entry of a zip archive, as the tar entry it amounts to.
func (u *unpacker) zipEntry(ctx context.Context, f *zip.File) error {
	mode := f.Mode()
	hdr := &tar.Header{Name: f.Name, Mode: int64(mode.Perm()), Size: int64(min(f.UncompressedSize64, math.MaxInt64))}
	switch {
	case mode.IsDir():
		hdr.Typeflag = tar.TypeDir
		return u.entry(ctx, nil, hdr)
	case mode&fs.ModeSymlink != 0:
		hdr.Typeflag = tar.TypeSymlink
	case mode.IsRegular():
		hdr.Typeflag = tar.TypeReg
	default:
		return &EntryError{Path: f.Name, Reason: fmt.Sprintf("entry of type %v is not allowed", mode.Type()), Err: ErrUnsafe}
	}
	rc, err := f.Open()
	if err != nil {
		return u.readError(f.Name, err)
	}
	defer rc.Close()
	u.in.r = rc
	if hdr.Typeflag == tar.TypeSymlink {
		target, err := io.ReadAll(io.LimitReader(u.in, maxLinkTarget+1))
		if err != nil {
			return u.readError(f.Name, err)
		}
		if len(target) > maxLinkTarget {
			return &EntryError{Path: f.Name, Reason: "symlink target too long", Err: ErrUnsafe}
		}
		hdr.Linkname, hdr.Size = string(target), 0
		return u.entry(ctx, nil, hdr)
	}
	return u.entry(ctx, u.in, hdr)
}

// newUnpacker returns an unpacker writing under dest (created if missing) and reading from r,
// with lim's defaults filled in.
func newUnpacker(ctx context.Context, dest string, lim Limits, r io.Reader) (*unpacker, error) {
	if lim.MaxSize <= 0 {
		lim.MaxSize = DefaultMaxSize
	}
	if lim.MaxFiles <= 0 {
		lim.MaxFiles = DefaultMaxFiles
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return nil, err
	}
	return &unpacker{
		root: root,
		lim:  lim,
		in:   &digestReader{ctx: ctx, r: r, h: sha256.New(), max: lim.MaxSize},
		seen: make(map[string]kind),
	}, nil
}

// close releases the directories the unpacker holds open.
func (u *unpacker) close() {
	if u.dirRoot != nil {
		u.dirRoot.Close()
	}
	u.root.Close()
}
