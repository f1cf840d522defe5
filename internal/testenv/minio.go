package testenv

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// The credentials of the MinIO server S3 starts.
const (
	minioUser     = "minioadmin"
	minioPassword = "minioadmin123"
)

const s3Howto = "build it with scripts/minio (scripts/test-deps does), or set CONVEYOR_MINIO to a minio " +
	"binary, or CONVEYOR_TEST_S3 (with CONVEYOR_TEST_S3_ACCESS_KEY and _SECRET_KEY) to a server's URL"

var (
	s3Once   sync.Once
	s3Server struct {
		endpoint *url.URL // http://127.0.0.1:PORT
		why      string   // why there is no server: then Unavailable
		err      error    // why the server failed: then the test fails
	}
)

// S3 returns the URL of a fresh, empty bucket on an S3-compatible server, for artifact/s3's
// Open: s3://BUCKET/PREFIX?endpoint=http://127.0.0.1:PORT&region=us-east-1. The bucket and
// everything in it are removed when t ends. The server is the one at CONVEYOR_TEST_S3 if
// set, else a MinIO started once per test binary (stopped by Main). Its credentials are
// those of S3Credentials; S3 sets no environment variable.
func S3(t testing.TB) (rawURL string) {
	t.Helper()
	s3Once.Do(startS3)
	switch {
	case s3Server.why != "":
		Unavailable(t, "s3", s3Server.why, s3Howto)
	case s3Server.err != nil:
		t.Fatalf("s3: %v", s3Server.err)
	}
	access, secret := S3Credentials()
	ctx := context.Background()
	client, err := minio.New(s3Server.endpoint.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(access, secret, ""),
		Secure:       s3Server.endpoint.Scheme == "https",
		Region:       "us-east-1",
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatalf("s3: client for %s: %v", s3Server.endpoint, err)
	}
	bucket := bucketName(t.Name())
	if err := client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatalf("s3: create bucket %s at %s: %v", bucket, s3Server.endpoint, err)
	}
	t.Cleanup(func() {
		if err := emptyAndRemoveBucket(context.WithoutCancel(ctx), client, bucket); err != nil {
			t.Errorf("s3: remove bucket %s at %s: %v", bucket, s3Server.endpoint, err)
		}
	})
	q := url.Values{"endpoint": {s3Server.endpoint.String()}, "region": {"us-east-1"}}
	return "s3://" + bucket + "/conveyor-test?" + q.Encode()
}

// S3Credentials returns the access and secret keys of the server S3 uses.
func S3Credentials() (access, secret string) {
	if os.Getenv("CONVEYOR_TEST_S3") != "" {
		return os.Getenv("CONVEYOR_TEST_S3_ACCESS_KEY"), os.Getenv("CONVEYOR_TEST_S3_SECRET_KEY")
	}
	return minioUser, minioPassword
}

var notBucketChars = regexp.MustCompile(`[^a-z0-9]+`)

// bucketName makes a valid, unique bucket name that says which test it belongs to.
func bucketName(test string) string {
	name := strings.Trim(notBucketChars.ReplaceAllString(strings.ToLower(test), "-"), "-")
	if len(name) > 40 {
		name = strings.TrimRight(name[:40], "-")
	}
	var b [6]byte
	rand.Read(b[:])
	return "t-" + name + "-" + hex.EncodeToString(b[:])
}

// emptyAndRemoveBucket removes every object (every version of it, in a versioned bucket) and
// unfinished upload of the bucket, then the bucket itself.
func emptyAndRemoveBucket(ctx context.Context, client *minio.Client, bucket string) error {
	objects := client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) // a versioned bucket too
	for rerr := range client.RemoveObjects(ctx, bucket, objects, minio.RemoveObjectsOptions{}) {
		if rerr.Err != nil {
			return fmt.Errorf("remove %s: %w", rerr.ObjectName, rerr.Err)
		}
	}
	for up := range client.ListIncompleteUploads(ctx, bucket, "", true) {
		if up.Err != nil {
			return fmt.Errorf("list unfinished uploads: %w", up.Err)
		}
		if err := client.RemoveIncompleteUpload(ctx, bucket, up.Key); err != nil {
			return fmt.Errorf("abort upload of %s: %w", up.Key, err)
		}
	}
	return client.RemoveBucket(ctx, bucket)
}

// startS3 sets s3Server: the server of CONVEYOR_TEST_S3, or a MinIO started here.
func startS3() {
	if raw := os.Getenv("CONVEYOR_TEST_S3"); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			s3Server.err = fmt.Errorf("CONVEYOR_TEST_S3=%q is not an http(s)://host[:port] URL", raw)
			return
		}
		if os.Getenv("CONVEYOR_TEST_S3_ACCESS_KEY") == "" || os.Getenv("CONVEYOR_TEST_S3_SECRET_KEY") == "" {
			s3Server.err = errors.New("CONVEYOR_TEST_S3 is set but CONVEYOR_TEST_S3_ACCESS_KEY or CONVEYOR_TEST_S3_SECRET_KEY is not")
			return
		}
		s3Server.endpoint = &url.URL{Scheme: u.Scheme, Host: u.Host}
		return
	}
	bin, why := findMinio()
	if bin == "" {
		s3Server.why = why
		return
	}
	// Another process may take the free port before MinIO does: try a few.
	for range 3 {
		var retry bool
		s3Server.endpoint, retry, s3Server.err = startMinio(bin)
		if !retry {
			return
		}
	}
}

// findMinio returns the MinIO binary to run, or why there is none.
func findMinio() (bin, why string) {
	if p := os.Getenv("CONVEYOR_MINIO"); p != "" {
		if err := isExecutable(p); err != nil {
			return "", fmt.Sprintf("CONVEYOR_MINIO=%s: %v", p, err)
		}
		return p, ""
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, ""
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Sprintf("no minio in PATH, and no cache directory: %v", err)
	}
	pattern := filepath.Join(cache, "conveyor-minio", "*", "minio")
	matches, _ := filepath.Glob(pattern)
	var newest time.Time
	for _, m := range matches {
		fi, err := os.Stat(m)
		if err == nil && isExecutable(m) == nil && fi.ModTime().After(newest) {
			bin, newest = m, fi.ModTime()
		}
	}
	if bin == "" {
		return "", "no minio binary: CONVEYOR_MINIO is not set, none in PATH, none at " + pattern
	}
	return bin, ""
}

func isExecutable(p string) error {
	fi, err := os.Stat(p)
	switch {
	case err != nil:
		return err
	case !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("not an executable file (%v)", fi.Mode())
	}
	return nil
}

// startMinio starts MinIO on a free port of 127.0.0.1 and waits until it is ready. retry
// says the failure may be a lost race for the port.
func startMinio(bin string) (endpoint *url.URL, retry bool, err error) {
	dir, err := os.MkdirTemp("", "conveyor-minio-*")
	if err != nil {
		return nil, false, fmt.Errorf("start minio: %w", err)
	}
	logPath := filepath.Join(dir, "minio.log")
	failed := func(err error) error {
		// Keep the log for the failure message; drop the data.
		os.RemoveAll(filepath.Join(dir, "data"))
		return fmt.Errorf("start minio %s: %w (its output: %s)", bin, err, logPath)
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		os.RemoveAll(dir)
		return nil, false, fmt.Errorf("start minio: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor
	port, err := freePort()
	if err != nil {
		return nil, false, failed(err)
	}
	addr := net.JoinHostPort("127.0.0.1", port)
	cmd := exec.Command(bin, "server", filepath.Join(dir, "data"), "--address", addr, "--quiet")
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+minioUser, "MINIO_ROOT_PASSWORD="+minioPassword, "MINIO_BROWSER=off",
		"MINIO_UPDATE=off")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// MinIO dies with the test binary, even one killed by a test timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, false, failed(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Kill()
		<-exited
		os.RemoveAll(dir)
	}

	ready := "http://" + addr + "/minio/health/ready"
	probe := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var last string
		resp, err := probe.Get(ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case err := <-exited:
			return nil, true, failed(fmt.Errorf("exited before it was ready: %v", cmp.Or(err, errors.New("status 0"))))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return nil, false, failed(fmt.Errorf("%s did not answer 200 within 30s (last: %s)", ready, last))
		}
	}
	atExit(stop)
	return &url.URL{Scheme: "http", Host: addr}, false, nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}
