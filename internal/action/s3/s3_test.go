package s3_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/action/s3"
	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// bundle is a fresh bucket and a client to look behind the providers.
type bundle struct {
	bucket   string
	endpoint string
	client   *minio.Client
}

func setup(t *testing.T) *bundle {
	t.Helper()
	u, err := url.Parse(testenv.S3(t))
	if err != nil {
		t.Fatal(err)
	}
	endpoint := u.Query().Get("endpoint")
	e, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	access, secret := testenv.S3Credentials()
	c, err := minio.New(e.Host, &minio.Options{Creds: credentials.NewStaticV4(access, secret, ""),
		Secure: e.Scheme == "https", Region: "us-east-1", BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	return &bundle{bucket: u.Host, endpoint: endpoint, client: c}
}

// config returns a configuration of the bucket with the server's credentials, plus more.
func (b *bundle) config(more map[string]any) map[string]any {
	access, secret := testenv.S3Credentials()
	cfg := map[string]any{"bucket": b.bucket, "endpoint": b.endpoint, "region": "us-east-1",
		"accessKeyId": access, "secretAccessKey": secret}
	maps.Copy(cfg, more)
	return cfg
}

func (b *bundle) put(t *testing.T, key string, content []byte) minio.UploadInfo {
	t.Helper()
	info, err := b.client.PutObject(context.Background(), b.bucket, key, bytes.NewReader(content), int64(len(content)), minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func (b *bundle) get(t *testing.T, key string) ([]byte, minio.ObjectInfo) {
	t.Helper()
	obj, err := b.client.GetObject(context.Background(), b.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	data, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	info, err := obj.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return data, info
}

func workspace(t *testing.T) *action.Workspace {
	return &action.Workspace{Dir: t.TempDir(), Scratch: filepath.Join(t.TempDir(), "scratch"), Log: io.Discard}
}

func fetch(t *testing.T, cfg map[string]any, revision string) (*action.Result, *action.Workspace, error) {
	t.Helper()
	ws := workspace(t)
	job := &action.Job{Category: "Source", Provider: "S3", Configuration: cfg, SourceRevision: revision}
	res, err := (&s3.Source{}).Run(context.Background(), job, ws)
	return res, ws, err
}

// tree reads the files under dir: name → content, symlinks as "-> target", exec files with
// a trailing " (x)".
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			out[filepath.ToSlash(rel)] = "-> " + target
			return err
		}
		data, err := os.ReadFile(p)
		fi, _ := d.Info()
		s := string(data)
		if fi.Mode()&0o100 != 0 {
			s += " (x)"
		}
		out[filepath.ToSlash(rel)] = s
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type entry struct {
	name, content string
	mode          fs.FileMode // 0: a 0644 file
}

func zipOf(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		h.SetMode(cmpMode(e.mode))
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, e.content)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func cmpMode(m fs.FileMode) fs.FileMode {
	if m == 0 {
		return 0o644
	}
	return m
}

func tarOf(t *testing.T, gz bool, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	tw := tar.NewWriter(w)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: int64(cmpMode(e.mode).Perm()), Size: int64(len(e.content)), Typeflag: tar.TypeReg}
		if e.mode&fs.ModeSymlink != 0 {
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, e.content, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			io.WriteString(tw, e.content)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		zw.Close()
	}
	return buf.Bytes()
}

func wantFailed(t *testing.T, err error, contains ...string) {
	t.Helper()
	ae, ok := errors.AsType[*action.Error](err)
	if !ok || ae.Kind != action.Failed {
		t.Fatalf("err = %#v (%v), want an action.Error of kind Failed", err, err)
	}
	for _, s := range contains {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}

// An archive is recognised by its content, whatever its key says, and unpacked with its exec
// bits and symlinks; the object's identity is published.
func TestSourceArchives(t *testing.T) {
	t.Parallel()
	b := setup(t)
	files := []entry{{name: "README", content: "hello"}, {name: "bin/run.sh", content: "#!/bin/sh", mode: 0o755},
		{name: "bin/latest", content: "run.sh", mode: fs.ModeSymlink | 0o777}}
	want := map[string]string{"README": "hello", "bin/run.sh": "#!/bin/sh (x)", "bin/latest": "-> run.sh"}
	for _, tc := range []struct {
		key, format string
		data        []byte
	}{
		{"dist/app.zip", "zip", zipOf(t, files...)},
		{"dist/app-zip.bin", "zip", zipOf(t, files...)},
		{"dist/app.tar", "tar", tarOf(t, false, files...)},
		{"dist/app.tgz", "tar.gz", tarOf(t, true, files...)},
		{"dist/app", "tar.gz", tarOf(t, true, files...)},
	} {
		t.Run(tc.key, func(t *testing.T) {
			up := b.put(t, tc.key, tc.data)
			res, ws, err := fetch(t, b.config(map[string]any{"objectKey": tc.key}), "")
			if err != nil {
				t.Fatal(err)
			}
			if got := tree(t, ws.Dir); !maps.Equal(got, want) {
				t.Errorf("workspace = %v, want %v", got, want)
			}
			wantVars := map[string]string{"ETag": strings.Trim(up.ETag, `"`), "VersionId": "", "ObjectKey": tc.key}
			if !maps.Equal(res.Variables, wantVars) {
				t.Errorf("variables = %v, want %v", res.Variables, wantVars)
			}
			if !strings.Contains(res.Summary, "s3://"+b.bucket+"/"+tc.key) || !strings.Contains(res.Summary, tc.format+" unpacked: 3 files") {
				t.Errorf("summary %q does not say what was fetched", res.Summary)
			}
		})
	}
}

// Anything but an archive is one file named by the key's base name; a gzip that holds no tar
// is such a file too.
func TestSourcePlainFile(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	io.WriteString(zw, "just some log text, not a tar")
	zw.Close()
	for key, data := range map[string][]byte{"config/settings.json": []byte(`{"a": 1}`), "logs/app.log.gz": gz.Bytes(), "empty.txt": nil} {
		b.put(t, key, data)
		res, ws, err := fetch(t, b.config(map[string]any{"objectKey": key}), "")
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(key)
		if got := tree(t, ws.Dir); len(got) != 1 || got[name] != string(data) {
			t.Errorf("%s: workspace = %v, want only %s", key, got, name)
		}
		if !strings.Contains(res.Summary, "as "+name) {
			t.Errorf("summary %q", res.Summary)
		}
	}
}

// On a versioned bucket, a revision pins the version fetched, an older one included.
func TestSourceVersionPinned(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if err := b.client.EnableVersioning(context.Background(), b.bucket); err != nil {
		t.Fatal(err)
	}
	v1 := b.put(t, "notes.txt", []byte("one"))
	v2 := b.put(t, "notes.txt", []byte("two"))
	if v1.VersionID == "" || v1.VersionID == v2.VersionID {
		t.Fatalf("versions %q, %q: versioning is not on", v1.VersionID, v2.VersionID)
	}
	res, ws, err := fetch(t, b.config(map[string]any{"objectKey": "notes.txt"}), v1.VersionID)
	if err != nil {
		t.Fatal(err)
	}
	if got := tree(t, ws.Dir); got["notes.txt"] != "one" {
		t.Errorf("pinned to the first version, got %v", got)
	}
	if res.Variables["VersionId"] != v1.VersionID || res.Variables["ETag"] != strings.Trim(v1.ETag, `"`) {
		t.Errorf("variables = %v, want version %s", res.Variables, v1.VersionID)
	}
	res, ws, err = fetch(t, b.config(map[string]any{"objectKey": "notes.txt"}), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := tree(t, ws.Dir); got["notes.txt"] != "two" || res.Variables["VersionId"] != v2.VersionID {
		t.Errorf("unpinned: got %v, variables %v; want the latest version", got, res.Variables)
	}
	_, _, err = fetch(t, b.config(map[string]any{"objectKey": "notes.txt"}), "00000000-0000-0000-0000-000000000000")
	wantFailed(t, err, "notes.txt", "version")
}

// On an unversioned bucket, the revision is an ETag the object must still have.
func TestSourceETagPinned(t *testing.T) {
	t.Parallel()
	b := setup(t)
	up := b.put(t, "notes.txt", []byte("one"))
	etag := strings.Trim(up.ETag, `"`)
	if !s3.IsETag(etag) {
		t.Fatalf("ETag %q is not recognised as one", etag)
	}
	if _, ws, err := fetch(t, b.config(map[string]any{"objectKey": "notes.txt"}), etag); err != nil || tree(t, ws.Dir)["notes.txt"] != "one" {
		t.Fatalf("pinned to the current ETag: err %v", err)
	}
	b.put(t, "notes.txt", []byte("two"))
	_, _, err := fetch(t, b.config(map[string]any{"objectKey": "notes.txt"}), etag)
	wantFailed(t, err, "changed", etag)
}

// Each way of pointing at nothing, or of being refused, says what to check.
func TestSourceErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put(t, "there.txt", []byte("x"))
	for _, tc := range []struct {
		name string
		cfg  map[string]any
		want []string
	}{
		{"missing object", b.config(map[string]any{"objectKey": "nothere.txt"}), []string{"nothere.txt", "check objectKey"}},
		{"missing bucket", b.config(map[string]any{"objectKey": "there.txt", "bucket": "no-such-bucket-x1"}),
			[]string{"bucket no-such-bucket-x1 does not exist", "check bucket"}},
		{"anonymous", map[string]any{"bucket": b.bucket, "endpoint": b.endpoint, "objectKey": "there.txt"},
			[]string{"anonymous access refused", "accessKeyId"}},
		{"bad secret", b.config(map[string]any{"objectKey": "there.txt", "secretAccessKey": "wrong-wrong"}),
			[]string{"access refused", "check accessKeyId and secretAccessKey"}},
		{"half credentials", map[string]any{"bucket": b.bucket, "endpoint": b.endpoint, "objectKey": "there.txt", "accessKeyId": "x"},
			[]string{"both, or neither"}},
		{"no server", b.config(map[string]any{"objectKey": "there.txt", "endpoint": "http://127.0.0.1:1"}), []string{"check endpoint"}},
		{"no key", b.config(nil), []string{"objectKey is required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ws, err := fetch(t, tc.cfg, "")
			wantFailed(t, err, tc.want...)
			if got := tree(t, ws.Dir); len(got) > 0 {
				t.Errorf("workspace holds %v after a failure", got)
			}
		})
	}
}

// An archive whose entries would land outside the workspace is refused, and writes nothing
// there.
func TestSourceArchiveEscapes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for key, data := range map[string][]byte{
		"slip.zip":    zipOf(t, entry{name: "ok.txt", content: "fine"}, entry{name: "../../evil.txt", content: "gotcha"}),
		"abs.zip":     zipOf(t, entry{name: "/tmp/evil.txt", content: "gotcha"}),
		"link.zip":    zipOf(t, entry{name: "out", content: "../../..", mode: fs.ModeSymlink | 0o777}),
		"through.zip": zipOf(t, entry{name: "out", content: "/tmp", mode: fs.ModeSymlink | 0o777}, entry{name: "out/evil.txt", content: "gotcha"}),
		"slip.tgz":    tarOf(t, true, entry{name: "../evil.txt", content: "gotcha"}),
		"link.tar":    tarOf(t, false, entry{name: "l", content: "/etc", mode: fs.ModeSymlink | 0o777}, entry{name: "l/passwd", content: "x"}),
	} {
		b.put(t, key, data)
		parent := t.TempDir()
		ws := &action.Workspace{Dir: filepath.Join(parent, "a", "b", "ws"), Scratch: filepath.Join(parent, "scratch"), Log: io.Discard}
		os.MkdirAll(ws.Dir, 0o755)
		job := &action.Job{Configuration: b.config(map[string]any{"objectKey": key})}
		_, err := (&s3.Source{}).Run(context.Background(), job, ws)
		wantFailed(t, err, "unpack", key)
		if !errors.Is(err, artifact.ErrUnsafe) {
			t.Errorf("%s: err = %v, want one wrapping artifact.ErrUnsafe", key, err)
		}
		for _, p := range []string{filepath.Join(parent, "evil.txt"), filepath.Join(parent, "a", "evil.txt"), "/tmp/evil.txt"} {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("%s: %s was written", key, p)
			}
		}
	}
}

func deploy(t *testing.T, cfg map[string]any, files map[string]string) (*action.Result, error) {
	t.Helper()
	ws := workspace(t)
	for name, content := range files {
		p := filepath.Join(ws.Dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		var err error
		if target, ok := strings.CutPrefix(content, "-> "); ok {
			err = os.Symlink(target, p)
		} else if c, ok := strings.CutSuffix(content, " (x)"); ok {
			err = os.WriteFile(p, []byte(c), 0o755)
		} else {
			err = os.WriteFile(p, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	job := &action.Job{Category: "Deploy", Provider: "S3", Configuration: cfg}
	return (&s3.Deploy{}).Run(context.Background(), job, ws)
}

// With extract, every file is an object under the prefix, with a content type by extension
// and the Cache-Control asked for.
func TestDeployExtract(t *testing.T) {
	t.Parallel()
	b := setup(t)
	files := map[string]string{"index.html": "<h1>hi</h1>", "css/site.css": "h1{}", "data.bin": "\x00\x01", "current": "-> index.html"}
	res, err := deploy(t, b.config(map[string]any{"objectKey": "/site/v1/", "extract": true, "cacheControl": "max-age=60"}), files)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"ObjectKey": "site/v1", "ObjectCount": "4"}; !maps.Equal(res.Variables, want) {
		t.Errorf("variables = %v, want %v", res.Variables, want)
	}
	for key, want := range map[string]struct{ content, ctype string }{
		"site/v1/index.html":   {"<h1>hi</h1>", "text/html; charset=utf-8"},
		"site/v1/css/site.css": {"h1{}", "text/css; charset=utf-8"},
		"site/v1/data.bin":     {"\x00\x01", "application/octet-stream"},
		"site/v1/current":      {"<h1>hi</h1>", "application/octet-stream"},
	} {
		data, info := b.get(t, key)
		if string(data) != want.content || info.ContentType != want.ctype {
			t.Errorf("%s: %q of type %q, want %q of type %q", key, data, info.ContentType, want.content, want.ctype)
		}
		if got := info.Metadata.Get("Cache-Control"); got != "max-age=60" {
			t.Errorf("%s: Cache-Control %q, want max-age=60", key, got)
		}
	}
}

// Without extract, the artifact goes up as one zip archive, which Source/S3 gives back as the
// same files.
func TestDeployArchiveRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	files := map[string]string{"app/main": "binary (x)", "app/conf/app.yaml": "port: 8080", "app/current": "-> main", "README.md": "# app"}
	res, err := deploy(t, b.config(map[string]any{"objectKey": "releases/app.zip", "cacheControl": "no-cache"}), files)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"ObjectKey": "releases/app.zip", "ObjectCount": "1"}; !maps.Equal(res.Variables, want) {
		t.Errorf("variables = %v, want %v", res.Variables, want)
	}
	_, info := b.get(t, "releases/app.zip")
	if info.ContentType != "application/zip" || info.Metadata.Get("Cache-Control") != "no-cache" {
		t.Errorf("archive of type %q, Cache-Control %q", info.ContentType, info.Metadata.Get("Cache-Control"))
	}
	_, ws, err := fetch(t, b.config(map[string]any{"objectKey": "releases/app.zip"}), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := tree(t, ws.Dir); !maps.Equal(got, files) {
		t.Errorf("round trip: got %v, want %v", got, files)
	}
}

func TestDeployErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := deploy(t, b.config(nil), map[string]string{"a": "b"})
	wantFailed(t, err, "objectKey is required without extract")
	_, err = deploy(t, map[string]any{"bucket": b.bucket, "endpoint": b.endpoint, "objectKey": "x.zip"}, map[string]string{"a": "b"})
	wantFailed(t, err, "anonymous access refused")
	_, err = deploy(t, b.config(map[string]any{"extract": true, "bucket": "no-such-bucket-x2"}), map[string]string{"a": "b"})
	wantFailed(t, err, "bucket no-such-bucket-x2 does not exist")
}
