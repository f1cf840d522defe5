package s3

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/minio/minio-go/v7"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/artifact"
)

// Source is the Source/S3 provider.
type Source struct {
	// Limits bound what an archive may unpack to (zero: artifact's defaults, 5 GiB and a
	// million files).
	Limits artifact.Limits
}

var _ action.Provider = (*Source)(nil)

// Run fetches the object into ws.Dir. A revision (job.SourceRevision) that looks like an ETag
// is a condition on the object (it fails, saying so, if the object changed since); any other
// revision is the VersionId to fetch. It returns an *action.Error: Failed when the
// configuration is wrong, the bucket, object or version is missing, the credentials are
// refused or an archive holds an entry that would escape the workspace, Stopped when ctx is
// done, TimedOut past job.Timeout, Errored when the workspace cannot be written.
func (p *Source) Run(ctx context.Context, job *action.Job, ws *action.Workspace) (*action.Result, error) {
	runCtx, cancel := withTimeout(ctx, job)
	defer cancel()
	res, err := p.fetch(runCtx, job, ws)
	if err != nil {
		return nil, failure(ctx, runCtx, job, err)
	}
	return res, nil
}

func (p *Source) fetch(ctx context.Context, job *action.Job, ws *action.Workspace) (*action.Result, error) {
	if job.SourceDir != "" {
		return nil, &action.Error{Kind: action.Failed, Message: "a Source/S3 action fetches an object: it cannot take a local directory " +
			"(--source); pin a version with --revision ACTION=VERSION_ID instead"}
	}
	c, err := parseConn(job.Configuration)
	if err != nil {
		return nil, &action.Error{Kind: action.Failed, Message: err.Error()}
	}
	key := str(job.Configuration, "objectKey")
	if key == "" {
		return nil, &action.Error{Kind: action.Failed, Message: "configuration: objectKey is required"}
	}
	name := path.Base(key)
	if name == "/" || name == "." || name == ".." {
		return nil, &action.Error{Kind: action.Failed, Message: fmt.Sprintf("configuration: objectKey %q does not name an object (it ends with a slash)", key)}
	}
	cl, err := c.client()
	if err != nil {
		return nil, &action.Error{Kind: action.Failed, Message: err.Error()}
	}
	log := cmp.Or[io.Writer](ws.Log, io.Discard)

	var opts minio.GetObjectOptions
	rev := job.SourceRevision
	switch {
	case IsETag(rev):
		rev = unquote(rev)
		if err := opts.SetMatchETag(rev); err != nil {
			return nil, err
		}
	case rev != "":
		opts.VersionID = rev
	}
	obj, err := cl.GetObject(ctx, c.bucket, key, opts)
	if err != nil {
		return nil, c.explain(err, "read", key, rev)
	}
	defer obj.Close()
	info, err := obj.Stat() // sends the GET
	if err != nil {
		return nil, c.explain(err, "read", key, rev)
	}
	etag, version := unquote(info.ETag), versionOf(info.VersionID)
	fmt.Fprintf(log, "fetching %s (ETag %s%s, %d bytes) from %s\n", c.location(key), etag, versionNote(version), info.Size, c.server())

	// The object goes to a file first: a zip needs random access, and the workspace sees
	// nothing of an object whose download fails.
	if err := os.MkdirAll(ws.Scratch, 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(ws.Scratch, "object-*")
	if err != nil {
		return nil, err
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	n, err := io.Copy(f, obj)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var pathErr *os.PathError
		if errors.As(err, &pathErr) {
			return nil, fmt.Errorf("write %s: %w", c.location(key), err)
		}
		return nil, c.explain(err, "read", key, rev)
	}
	if info.Size >= 0 && n != info.Size {
		return nil, &action.Error{Kind: action.Failed, Message: fmt.Sprintf("read %s: got %d bytes of %d", c.location(key), n, info.Size)}
	}

	format, err := sniff(f)
	if err != nil {
		return nil, err
	}
	var what string
	switch format {
	case formatFile:
		if err := place(f, filepath.Join(ws.Dir, name)); err != nil {
			return nil, fmt.Errorf("write %s: %w", name, err)
		}
		what = "as " + name
	default:
		files, err := unpack(ctx, f, n, format, ws.Dir, p.Limits)
		if err != nil {
			if errors.Is(err, artifact.ErrUnsafe) || errors.Is(err, artifact.ErrTooLarge) || errors.Is(err, artifact.ErrCorrupt) {
				return nil, &action.Error{Kind: action.Failed, Message: fmt.Sprintf("unpack %s (%s)", c.location(key), format), Err: err}
			}
			return nil, err
		}
		what = fmt.Sprintf("%s unpacked: %d files", format, files)
	}
	fmt.Fprintf(log, "%s: %s\n", c.location(key), what)
	return &action.Result{
		Variables: map[string]string{"ETag": etag, "VersionId": version, "ObjectKey": key},
		Summary:   fmt.Sprintf("%s (ETag %s%s, %s), %s", c.location(key), etag, versionNote(version), size(n), what),
	}, nil
}

func versionNote(version string) string {
	if version == "" {
		return ""
	}
	return ", version " + version
}

// size writes n bytes for people.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " bytes"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// format is what an object holds, as far as the source is concerned.
type format string

const (
	formatFile  format = "file"
	formatZip   format = "zip"
	formatTar   format = "tar"
	formatTarGz format = "tar.gz"
)

// sniff tells an archive from any other file by its first bytes, whatever its name.
func sniff(f *os.File) (format, error) {
	head := make([]byte, 512)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return "", err
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return formatZip, nil
	case isTarHeader(head):
		return formatTar, nil
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(io.NewSectionReader(f, 0, 1<<62))
		if err != nil {
			return formatFile, nil // not gzip after all
		}
		defer zr.Close()
		inner := make([]byte, 512)
		n, _ := io.ReadFull(zr, inner)
		if isTarHeader(inner[:n]) {
			return formatTarGz, nil
		}
	}
	return formatFile, nil
}

// isTarHeader reports whether b starts with a tar header block: one with the ustar magic, or
// an old (v7) one whose checksum is right.
func isTarHeader(b []byte) bool {
	if len(b) < 512 {
		return false
	}
	if string(b[257:262]) == "ustar" {
		return true
	}
	field := bytes.TrimRight(bytes.TrimLeft(b[148:156], " "), " \x00")
	want, err := strconv.ParseInt(string(field), 8, 64)
	if err != nil || len(field) == 0 {
		return false
	}
	var sum int64
	for i, c := range b[:512] {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	return sum == want && b[0] != 0
}

// unpack unpacks the archive f, of n bytes, into dir and returns the number of files.
func unpack(ctx context.Context, f *os.File, n int64, format format, dir string, lim artifact.Limits) (int, error) {
	switch format {
	case formatZip:
		return artifact.UnpackZip(ctx, f, n, dir, lim)
	case formatTar:
		return artifact.UnpackTar(ctx, io.NewSectionReader(f, 0, n), dir, lim)
	case formatTarGz:
		zr, err := gzip.NewReader(io.NewSectionReader(f, 0, n))
		if err != nil {
			return 0, fmt.Errorf("%w: %w", artifact.ErrCorrupt, err)
		}
		defer zr.Close()
		files, err := artifact.UnpackTar(ctx, zr, dir, lim)
		if errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) {
			err = fmt.Errorf("%w: %w", artifact.ErrCorrupt, err)
		}
		return files, err
	}
	return 0, fmt.Errorf("unpack: unknown format %s", format)
}

// place moves the downloaded file f to dest, copying it when they are on different file
// systems.
func place(f *os.File, dest string) error {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), dest); err == nil {
		return os.Chmod(dest, 0o644)
	} else if !errors.Is(err, syscall.EXDEV) {
		return err
	}
	out, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, io.NewSectionReader(f, 0, 1<<62)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
