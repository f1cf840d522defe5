package s3

import (
	"archive/zip"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/conveyorci/conveyor/internal/action"
)

// Deploy is the Deploy/S3 provider.
type Deploy struct{}

var _ action.Provider = (*Deploy)(nil)

// partSize is the part size of the archive's multipart upload, whose size is not known
// before it is written: minio-go holds one part in memory, and 10,000 parts make 156 GiB.
const partSize = 16 << 20

// Run uploads the input artifact, unpacked in ws.Dir: with extract, each file under the prefix
// objectKey; without, the artifact as one zip archive at objectKey. It returns an
// *action.Error: Failed when the configuration is wrong, the bucket is missing or the
// credentials are refused, Stopped when ctx is done, TimedOut past job.Timeout, Errored when
// the workspace cannot be read.
func (p *Deploy) Run(ctx context.Context, job *action.Job, ws *action.Workspace) (*action.Result, error) {
	runCtx, cancel := withTimeout(ctx, job)
	defer cancel()
	res, err := p.deploy(runCtx, job, ws)
	if err != nil {
		return nil, failure(ctx, runCtx, job, err)
	}
	return res, nil
}

type upload struct {
	*conn
	client       *minio.Client
	cacheControl string
	log          io.Writer
}

func (p *Deploy) deploy(ctx context.Context, job *action.Job, ws *action.Workspace) (*action.Result, error) {
	c, err := parseConn(job.Configuration)
	if err != nil {
		return nil, &action.Error{Kind: action.Failed, Message: err.Error()}
	}
	extract, err := boolean(job.Configuration, "extract")
	if err != nil {
		return nil, &action.Error{Kind: action.Failed, Message: err.Error()}
	}
	key := str(job.Configuration, "objectKey")
	if !extract && key == "" {
		return nil, &action.Error{Kind: action.Failed, Message: "configuration: objectKey is required without extract: " +
			"it is the key of the zip archive uploaded (or set extract: true to upload the files one by one)"}
	}
	cl, err := c.client()
	if err != nil {
		return nil, &action.Error{Kind: action.Failed, Message: err.Error()}
	}
	u := &upload{conn: c, client: cl, cacheControl: str(job.Configuration, "cacheControl"),
		log: cmp.Or[io.Writer](ws.Log, io.Discard)}
	files, err := list(ctx, ws.Dir)
	if err != nil {
		return nil, fmt.Errorf("read the input artifact: %w", err)
	}
	if extract {
		prefix := strings.Trim(key, "/")
		n, err := u.files(ctx, ws.Dir, files, prefix)
		if err != nil {
			return nil, err
		}
		where := c.location(prefix)
		if prefix != "" {
			where += "/"
		}
		return &action.Result{
			Variables: map[string]string{"ObjectKey": prefix, "ObjectCount": strconv.Itoa(n)},
			Summary:   fmt.Sprintf("uploaded %d files to %s", n, where),
		}, nil
	}
	written, err := u.archive(ctx, ws.Dir, files, key)
	if err != nil {
		return nil, err
	}
	return &action.Result{
		Variables: map[string]string{"ObjectKey": key, "ObjectCount": "1"},
		Summary:   fmt.Sprintf("uploaded the artifact (%d files) as a zip archive to %s (%s)", len(files), c.location(key), size(written)),
	}, nil
}

// boolean reads a bool property (false when absent).
func boolean(cfg map[string]any, name string) (bool, error) {
	switch v := cfg[name].(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	case string:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("configuration: %s: want true or false, got %q", name, v)
		}
		return b, nil
	}
	return false, fmt.Errorf("configuration: %s: want true or false, got %T", name, cfg[name])
}

// file is one entry of the artifact to upload.
type file struct {
	name string      // slash-separated, relative to the artifact's root
	mode fs.FileMode // from Lstat: a regular file or a symlink
}

// list returns the regular files and symlinks under dir, sorted by name.
func list(ctx context.Context, dir string) ([]file, error) {
	var out []file
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if t := d.Type(); t != 0 && t != fs.ModeSymlink {
			return nil // a socket or fifo left in the workspace: not part of any artifact
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, file{name: filepath.ToSlash(rel), mode: info.Mode()})
		return nil
	})
	slices.SortFunc(out, func(a, b file) int { return strings.Compare(a.name, b.name) })
	return out, err
}

// files uploads each file under prefix, through root so that a symlink is followed only
// inside the artifact; a symlink to a directory is skipped (its files are reached by their
// own path, if they are in the artifact).
func (u *upload) files(ctx context.Context, dir string, files []file, prefix string) (int, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	n := 0
	for _, f := range files {
		key := f.name
		if prefix != "" {
			key = prefix + "/" + f.name
		}
		uploaded, err := u.file(ctx, root, f, key)
		if err != nil {
			return n, err
		}
		if uploaded {
			n++
		}
	}
	fmt.Fprintf(u.log, "uploaded %d files to %s\n", n, u.location(prefix))
	return n, nil
}

// file uploads one file at key; uploaded is false for a symlink to a directory, skipped.
func (u *upload) file(ctx context.Context, root *os.Root, f file, key string) (uploaded bool, err error) {
	in, err := root.Open(filepath.FromSlash(f.name))
	if err != nil {
		return false, fmt.Errorf("open %s: %w", f.name, err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return false, err
	}
	if !fi.Mode().IsRegular() {
		fmt.Fprintf(u.log, "skipped %s: a symlink to a %s\n", f.name, fi.Mode().Type())
		return false, nil
	}
	_, err = u.client.PutObject(ctx, u.bucket, key, in, fi.Size(), minio.PutObjectOptions{
		ContentType:  contentType(f.name),
		CacheControl: u.cacheControl,
		PartSize:     partSize,
	})
	if err != nil {
		return false, u.explain(err, "write", key, "")
	}
	return true, nil
}

// contentType is the MIME type of a file by its extension (application/octet-stream when
// unknown).
func contentType(name string) string {
	return cmp.Or(mime.TypeByExtension(path.Ext(name)), "application/octet-stream")
}

// archive uploads the files as one zip archive at key, streamed as it is written, and
// returns its size.
func (u *upload) archive(ctx context.Context, dir string, files []file, key string) (int64, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := writeZip(ctx, dir, files, pw)
		pw.CloseWithError(err) // nil: EOF
		done <- err
	}()
	info, err := u.client.PutObject(ctx, u.bucket, key, pr, -1, minio.PutObjectOptions{
		ContentType:  "application/zip",
		CacheControl: u.cacheControl,
		PartSize:     partSize,
	})
	pr.CloseWithError(errUploadEnded) // unblocks the writer if the upload failed
	zerr := <-done
	switch {
	case zerr != nil && !errors.Is(zerr, errUploadEnded):
		return 0, fmt.Errorf("archive the input artifact: %w", zerr)
	case err != nil:
		return 0, u.explain(err, "write", key, "")
	}
	fmt.Fprintf(u.log, "uploaded %s (%d bytes)\n", u.location(key), info.Size)
	return info.Size, nil
}

// errUploadEnded is what writing the archive meets when the upload stopped reading it.
var errUploadEnded = errors.New("upload ended")

// writeZip writes the files of dir to w as a zip archive, keeping the exec bit and symlinks.
func writeZip(ctx context.Context, dir string, files []file, w io.Writer) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	zw := zip.NewWriter(w)
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := zipFile(root, zw, f); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return zw.Close()
}

func zipFile(root *os.Root, zw *zip.Writer, f file) error {
	hdr := &zip.FileHeader{Name: f.name, Method: zip.Deflate}
	if f.mode&fs.ModeSymlink != 0 {
		target, err := root.Readlink(filepath.FromSlash(f.name))
		if err != nil {
			return err
		}
		hdr.Method = zip.Store
		hdr.SetMode(fs.ModeSymlink | 0o777)
		w, err := zw.CreateHeader(hdr)
		if err != nil {
			return err
		}
		_, err = io.WriteString(w, target)
		return err
	}
	in, err := root.Open(filepath.FromSlash(f.name))
	if err != nil {
		return err
	}
	defer in.Close()
	perm := fs.FileMode(0o644)
	if f.mode&0o111 != 0 {
		perm = 0o755
	}
	hdr.SetMode(perm)
	w, err := zw.CreateHeader(hdr)
	if err != nil {
		return err
	}
	_, err = io.Copy(w, in)
	return err
}
