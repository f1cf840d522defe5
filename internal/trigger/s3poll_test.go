package trigger

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/conveyorci/conveyor/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// s3Bucket returns a fresh bucket's name and endpoint, and a client of it.
func s3Bucket(t *testing.T) (bucket, endpoint string, client *minio.Client) {
	t.Helper()
	u, err := url.Parse(testenv.S3(t))
	if err != nil {
		t.Fatal(err)
	}
	endpoint = u.Query().Get("endpoint")
	e, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	access, secret := testenv.S3Credentials()
	client, err = minio.New(e.Host, &minio.Options{Creds: credentials.NewStaticV4(access, secret, ""),
		Region: "us-east-1", BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	return u.Host, endpoint, client
}

func s3Put(t *testing.T, c *minio.Client, bucket, key, content string) minio.UploadInfo {
	t.Helper()
	info, err := c.PutObject(context.Background(), bucket, key, strings.NewReader(content), int64(len(content)), minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// s3Pipeline is a pipeline whose source is an object, its credentials taken from secrets.
func s3Pipeline(name, bucket, endpoint, more string) string {
	return `name: ` + name + `
secrets: [S3_KEY, S3_SECRET]
stages:
  - name: Source
    actions:
      - name: Fetch
        category: Source
        provider: S3
        configuration:
          bucket: ` + bucket + `
          objectKey: app.zip
          endpoint: ` + endpoint + `
          accessKeyId: { secret: S3_KEY }
          secretAccessKey: { secret: S3_SECRET }
` + more + `
        outputArtifacts: [Src]
  - name: Build
    actions:
      - { name: Make, category: Build, provider: Commands, inputArtifacts: [Src], configuration: { commands: ["true"] } }
`
}

// TestPollerS3: the first version of an object is a baseline; a new version starts exactly one
// execution pinned to its VersionId (an ETag in a bucket without versioning); the
// credentials come from the pipeline's secrets through Options.Secrets.
func TestPollerS3(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bucket, endpoint, client := s3Bucket(t)
	if err := client.EnableVersioning(context.Background(), bucket); err != nil {
		t.Fatal(err)
	}
	plainBucket, _, _ := s3Bucket(t)
	v1 := s3Put(t, client, bucket, "app.zip", "one")
	plain1 := s3Put(t, client, plainBucket, "app.zip", "one")
	b.apply(s3Pipeline("versioned", bucket, endpoint, ""))
	b.apply(s3Pipeline("plain", plainBucket, endpoint, ""))
	b.apply(s3Pipeline("off", bucket, endpoint, `          pollInterval: "0"`))
	// With triggers, an S3 source is polled only when it sets pollInterval.
	b.apply(s3Pipeline("scheduled", bucket, endpoint, "") + `triggers:
  - schedule: { cron: "0 3 * * *" }
`)
	access, secret := testenv.S3Credentials()
	var mu sync.Mutex
	polls := map[string]int{} // per pipeline: each poll reads the secrets once (SecretsTTL 1 ns: none kept)
	polled := func(p string) int {
		mu.Lock()
		defer mu.Unlock()
		return polls[p]
	}
	secrets := func(ctx context.Context, pipeline string, names []string) (map[string]string, error) {
		mu.Lock()
		polls[pipeline]++
		mu.Unlock()
		return map[string]string{"S3_KEY": access, "S3_SECRET": secret}, nil
	}
	run(t, NewPoller(PollOptions{Options: Options{Loop: b.eng.Loop, Store: b.eng.Store, Owner: "s1",
		Reload: 10 * time.Millisecond, Secrets: secrets, SecretsTTL: time.Nanosecond}, Every: 5 * time.Millisecond, Concurrency: 1}).Run)

	eventually(t, "baseline of the versioned object", func() bool { return b.state("poll:versioned:Source.Fetch") == v1.VersionID })
	plainETag := strings.Trim(plain1.ETag, `"`)
	eventually(t, "baseline of the unversioned object", func() bool { return b.state("poll:plain:Source.Fetch") == plainETag })
	for _, p := range []string{"versioned", "plain"} {
		if n := len(b.executions(p)); n != 0 {
			t.Fatalf("%s: a baseline started %d executions", p, n)
		}
	}

	v2 := s3Put(t, client, bucket, "app.zip", "two")
	plain2 := s3Put(t, client, plainBucket, "app.zip", "two")
	eventually(t, "execution for the new version", func() bool { return len(b.executions("versioned")) == 1 })
	eventually(t, "execution for the new ETag", func() bool { return len(b.executions("plain")) == 1 })
	// Many more polls of the same version start nothing more.
	eventually(t, "state of the new version", func() bool { return b.state("poll:versioned:Source.Fetch") == v2.VersionID })
	for _, p := range []string{"versioned", "plain"} {
		n := polled(p)
		eventually(t, "more polls of "+p, func() bool { return polled(p) >= n+10 })
	}
	for p, want := range map[string]string{"versioned": v2.VersionID, "plain": strings.Trim(plain2.ETag, `"`)} {
		list := b.executions(p)
		if len(list) != 1 {
			t.Fatalf("%s: %d executions, want 1", p, len(list))
		}
		e := list[0]
		if got := e.Sources["Source.Fetch"].Revision; got != want {
			t.Errorf("%s: execution pinned to %q, want %q", p, got, want)
		}
		if e.Trigger.Type != "Poll" || !strings.Contains(e.Trigger.Detail, "new version of s3://") {
			t.Errorf("%s: trigger %+v", p, e.Trigger)
		}
	}
	for _, p := range []string{"off", "scheduled"} {
		if n := len(b.executions(p)); n != 0 {
			t.Errorf("%s: not polled, yet %d executions", p, n)
		}
		if s := b.state("poll:" + p + ":Source.Fetch"); s != "" {
			t.Errorf("%s: not polled, yet state %q", p, s)
		}
	}
}
