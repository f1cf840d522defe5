package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/artifact/artifacttest"
	"github.com/conveyorci/conveyor/internal/artifact/s3"
	"github.com/conveyorci/conveyor/internal/keyring"
	"github.com/conveyorci/conveyor/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// creds returns Options with the test server's credentials.
func creds() s3.Options {
	access, secret := testenv.S3Credentials()
	return s3.Options{AccessKey: access, SecretKey: secret}
}

// open returns a Blobs over a fresh bucket, removed when t ends, and the URL it was opened
// with.
func open(t *testing.T) (*s3.Blobs, string) {
	t.Helper()
	rawURL := testenv.S3(t)
	b, err := s3.Open(context.Background(), rawURL, creds())
	if err != nil {
		t.Fatal(err)
	}
	return b, rawURL
}

// withPrefix returns rawURL with its prefix replaced.
func withPrefix(t *testing.T, rawURL, prefix string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + prefix
	return u.String()
}

// rawClient returns a minio-go client of the bucket of rawURL, to look behind the backend.
func rawClient(t *testing.T, rawURL string) (*minio.Client, string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	endpoint, err := url.Parse(u.Query().Get("endpoint"))
	if err != nil {
		t.Fatal(err)
	}
	access, secret := testenv.S3Credentials()
	c, err := minio.New(endpoint.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(access, secret, ""),
		Secure:       endpoint.Scheme == "https",
		Region:       "us-east-1",
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, u.Host
}

func TestConformance(t *testing.T) {
	start := time.Now()
	t.Cleanup(func() { t.Logf("conformance suite over MinIO: %v", time.Since(start).Round(time.Millisecond)) })
	artifacttest.Run(t, func(t *testing.T) artifact.Blobs {
		b, _ := open(t)
		return b
	})
}

func TestOpenBadURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, want string }{
		{"%zz", "bad s3 URL"},
		{"http://bucket/prefix", "scheme must be s3"},
		{"s3:///prefix", "missing bucket name"},
		{"s3:bucket", "want s3://BUCKET/PREFIX"},
		{"s3://Not_A_Bucket/prefix", `bucket name "Not_A_Bucket"`},
		{"s3://key:secret@bucket/prefix", "credentials do not belong in the URL"},
		{"s3://bucket/a/../b", "prefix"},
		{"s3://bucket/prefix?endpoint=http://127.0.0.1:9000&regoin=us-east-1", `unknown parameter "regoin"`},
		{"s3://bucket/prefix?endpoint=ftp://127.0.0.1:9000", `parameter "endpoint"`},
		{"s3://bucket/prefix?endpoint=http://", `parameter "endpoint"`},
		{"s3://bucket/prefix?endpoint=http://127.0.0.1:9000/path", `parameter "endpoint"`},
		{"s3://bucket/prefix?endpoint=http://a&endpoint=http://b", `parameter "endpoint" given 2 times`},
		{"s3://bucket/prefix?region=", `parameter "region"`},
	} {
		_, err := s3.Open(context.Background(), tc.url, s3.Options{AccessKey: "a", SecretKey: "b"})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q) = %v; want an error containing %q", tc.url, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret@") {
			t.Errorf("Open(%q) = %v; the error shows the secret", tc.url, err)
		}
	}
	if _, err := s3.Open(context.Background(), "s3://bucket", s3.Options{AccessKey: "a"}); err == nil {
		t.Error("Open with an access key and no secret key succeeded")
	}
}

func TestOpenMissingBucket(t *testing.T) {
	t.Parallel()
	rawURL := testenv.S3(t)
	u, _ := url.Parse(rawURL)
	u.Host = "conveyor-no-such-bucket"
	_, err := s3.Open(context.Background(), u.String(), creds())
	for _, want := range []string{"bucket " + u.Host + " does not exist at " + u.Query().Get("endpoint"), "mc mb"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open of a missing bucket = %v; want an error containing %q", err, want)
		}
	}
}

func TestOpenBadCredentials(t *testing.T) {
	t.Parallel()
	rawURL := testenv.S3(t)
	access, _ := testenv.S3Credentials()
	for _, o := range []s3.Options{
		{AccessKey: "nobody", SecretKey: "not-a-secret"},
		{AccessKey: access, SecretKey: "the-wrong-secret"},
	} {
		_, err := s3.Open(context.Background(), rawURL, o)
		if err == nil || !strings.Contains(err.Error(), "check the credentials") {
			t.Errorf("Open with access key %q and a wrong secret = %v; want an error about credentials", o.AccessKey, err)
		}
	}
}

// Without Options' keys, the credentials come from the environment.
func TestOpenCredentialsFromEnvironment(t *testing.T) {
	rawURL := testenv.S3(t)
	access, secret := testenv.S3Credentials()
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	b, err := s3.Open(context.Background(), rawURL, s3.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(context.Background(), "k/env", strings.NewReader("env")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "the-wrong-secret")
	if _, err := s3.Open(context.Background(), rawURL, s3.Options{}); err == nil || !strings.Contains(err.Error(), "check the credentials") {
		t.Errorf("Open with a wrong AWS_SECRET_ACCESS_KEY = %v; want an error about credentials", err)
	}
}

// randomFile writes n pseudo-random bytes to a file and returns it, rewound, with its SHA-256.
func randomFile(t *testing.T, n int64, seed uint64) (*os.File, [32]byte) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "blob"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	h := sha256.New()
	src := io.LimitReader(rand.NewChaCha8([32]byte{byte(seed)}), n)
	if _, err := io.Copy(io.MultiWriter(f, h), src); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	return f, [32]byte(h.Sum(nil))
}

func getSum(t *testing.T, b *s3.Blobs, key string) (int64, [32]byte) {
	t.Helper()
	rc, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return n, [32]byte(h.Sum(nil))
}

// hideType hides every method but Read, as a pipe or a network stream would.
type hideType struct{ io.Reader }

// A blob over 16 MiB goes up in parts, from a file or from a stream of unknown size, and
// neither way holds it whole in memory.
func TestLargeBlobMultipart(t *testing.T) {
	// Not parallel: it measures allocations, which other tests would blur.
	ctx := context.Background()
	b, rawURL := open(t)
	client, bucket := rawClient(t, rawURL)
	const size = 40<<20 + 12345
	for _, tc := range []struct {
		name     string
		reader   func(f *os.File) io.Reader
		maxAlloc uint64
	}{
		// Read from the file by offset, a part at a time: nothing buffered.
		{"file", func(f *os.File) io.Reader { return f }, 12 << 20},
		// One 16 MiB part buffered.
		{"stream", func(f *os.File) io.Reader { return hideType{f} }, 16<<20 + 12<<20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, sum := randomFile(t, size, 7)
			key := "blobs/la/large-" + tc.name
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			if err := b.Put(ctx, key, tc.reader(f)); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("Put of %d MiB allocated %.1f MiB", size>>20, float64(alloc)/(1<<20))
			if alloc > tc.maxAlloc {
				t.Errorf("Put of %d bytes allocated %d MiB; want at most %d MiB", size, alloc>>20, tc.maxAlloc>>20)
			}
			if n, err := b.Stat(ctx, key); err != nil || n != size {
				t.Errorf("Stat = %d, %v; want %d", n, err, size)
			}
			info, err := client.StatObject(ctx, bucket, "conveyor-test/"+key, minio.StatObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(info.ETag, "-3") { // a multipart upload's ETag ends in -<parts>
				t.Errorf("ETag %q: not a multipart upload of 3 parts", info.ETag)
			}
			if n, got := getSum(t, b, key); n != size || got != sum {
				t.Errorf("Get returned %d bytes with SHA-256 %x; want %d bytes, %x", n, got, size, sum)
			}
		})
	}

	// Put reads a file from where it stands, not from its start.
	f, _ := randomFile(t, 1000, 8)
	if _, err := f.Seek(600, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "k/tail", f); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Stat(ctx, "k/tail"); err != nil || n != 400 {
		t.Errorf("Stat of a file put from offset 600 of 1000 = %d, %v; want 400", n, err)
	}
}

// Stores on two prefixes of one bucket do not see each other's blobs.
func TestPrefixesAreIsolated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rawURL := testenv.S3(t)
	stores := map[string]*s3.Blobs{}
	for _, prefix := range []string{"team", "team-b", "team/nested"} {
		b, err := s3.Open(ctx, withPrefix(t, rawURL, prefix), creds())
		if err != nil {
			t.Fatal(err)
		}
		stores[prefix] = b
		if err := b.Put(ctx, "blobs/ab/key", strings.NewReader("in "+prefix)); err != nil {
			t.Fatal(err)
		}
	}
	if err := stores["team-b"].Put(ctx, "blobs/ab/only-b", strings.NewReader("b")); err != nil {
		t.Fatal(err)
	}
	if err := stores["team"].Delete(ctx, "blobs/ab/key"); err != nil {
		t.Fatal(err)
	}
	for prefix, b := range stores {
		want := "in " + prefix
		if prefix == "team" {
			want = ""
		}
		rc, err := b.Get(ctx, "blobs/ab/key")
		switch {
		case want == "" && !errors.Is(err, artifact.ErrNotFound):
			t.Errorf("%s: Get of a deleted blob = %v; want ErrNotFound", prefix, err)
		case want != "" && err != nil:
			t.Errorf("%s: Get = %v", prefix, err)
		case want != "":
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || string(got) != want {
				t.Errorf("%s: Get = %q, %v; want %q", prefix, got, err, want)
			}
		}
		if _, err := b.Stat(ctx, "blobs/ab/only-b"); (prefix == "team-b") != (err == nil) {
			t.Errorf("%s: Stat of team-b's blob = %v", prefix, err)
		}
	}
	// The bucket holds what it should, each under its prefix.
	client, bucket := rawClient(t, rawURL)
	var names []string
	for o := range client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		names = append(names, o.Key)
	}
	slices.Sort(names)
	if want := []string{"team-b/blobs/ab/key", "team-b/blobs/ab/only-b", "team/nested/blobs/ab/key"}; !slices.Equal(names, want) {
		t.Errorf("bucket holds %q; want %q", names, want)
	}
}

// Presigned URLs work with plain net/http, no credentials.
func TestPresign(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := open(t)
	data := bytes.Repeat([]byte("presigned "), 100_000)

	put, err := b.PresignPut(ctx, "blobs/pr/up", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, put.String(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT to the presigned URL: %s: %s", resp.Status, body)
	}
	if n, err := b.Stat(ctx, "blobs/pr/up"); err != nil || n != int64(len(data)) {
		t.Errorf("Stat after a presigned PUT = %d, %v; want %d", n, err, len(data))
	}

	get, err := b.PresignGet(ctx, "blobs/pr/up", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get(get.String())
	if err != nil {
		t.Fatal(err)
	}
	body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Errorf("GET of the presigned URL: %s, %d bytes, %v; want 200 and the %d bytes put", resp.Status, len(body), err, len(data))
	}

	// A URL is for one key and one method.
	missing, err := b.PresignGet(ctx, "blobs/pr/missing", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, url string
		want        int
	}{
		{http.MethodGet, missing.String(), http.StatusNotFound},
		{http.MethodDelete, get.String(), http.StatusForbidden},
		{http.MethodGet, strings.Replace(get.String(), "blobs/pr/up", "blobs/pr/other", 1), http.StatusForbidden},
	} {
		req, _ := http.NewRequestWithContext(ctx, tc.method, tc.url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %s; want %d", tc.method, tc.url, resp.Status, tc.want)
		}
	}
	if _, err := b.PresignGet(ctx, "../escape", time.Minute); err == nil {
		t.Error("PresignGet of an invalid key succeeded")
	}
	if _, err := b.PresignPut(ctx, "k/x", 8*24*time.Hour); err == nil {
		t.Error("PresignPut for 8 days succeeded; S3 allows 7 at most")
	}
}

// An artifact.Store with encryption over S3: the bucket holds ciphertext and a key blob, and
// the artifact round-trips.
func TestStoreEncrypted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, rawURL := open(t)
	ring, err := keyring.Create(filepath.Join(t.TempDir(), "master.keys"))
	if err != nil {
		t.Fatal(err)
	}
	store := artifact.New(b, artifact.Options{TempDir: t.TempDir(), Keys: ring})
	src := t.TempDir()
	secret := strings.Repeat("DATABASE_PASSWORD=correct-horse-battery-staple\n", 50)
	if err := os.WriteFile(filepath.Join(src, "secrets.env"), []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	ref, err := store.Save(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	client, bucket := rawClient(t, rawURL)
	var names []string
	for o := range client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		names = append(names, o.Key)
		obj, err := client.GetObject(ctx, bucket, o.Key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(obj)
		obj.Close()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte("correct-horse")) {
			t.Errorf("%s holds plaintext", o.Key)
		}
	}
	slices.Sort(names)
	if len(names) != 2 || !strings.HasPrefix(names[0], "conveyor-test/blobs/") || !strings.HasPrefix(names[1], "conveyor-test/keys/") {
		t.Errorf("bucket holds %q; want a blob and its key blob under conveyor-test/", names)
	}
	dest := filepath.Join(t.TempDir(), "out")
	if err := store.Restore(ctx, ref, dest); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dest, "secrets.env")); err != nil || string(got) != secret {
		t.Errorf("restored %q, %v", got, err)
	}
	if err := store.Delete(ctx, ref); err != nil {
		t.Fatal(err)
	}
	for o := range client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		t.Errorf("left after Delete: %s %v", o.Key, o.Err)
	}
}
