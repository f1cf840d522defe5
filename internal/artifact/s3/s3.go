package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/conveyorci/conveyor/internal/artifact"
)

var (
	_ artifact.Blobs     = (*Blobs)(nil)
	_ artifact.Presigner = (*Blobs)(nil) // direct reads by remote workers
)

// awsEndpoint is where a URL without an endpoint parameter goes; minio-go turns it into the
// bucket's regional, virtual-hosted endpoint.
const awsEndpoint = "https://s3.amazonaws.com"

// partSize is the part size of a multipart upload whose size is unknown beforehand. minio-go
// buffers one part in memory, so such a Put holds at most 16 MiB, and can store up to
// 10,000 parts, 156 GiB, far above artifact.DefaultMaxSize. Puts of a known size (an
// *os.File, as artifact.Store passes, or an in-memory reader) read their parts from the
// source instead, with 16 MiB parts too for blobs under 156 GiB.
const partSize = 16 << 20

// Options configure Open. The zero value takes the credentials from the environment.
type Options struct {
	// AccessKey and SecretKey, if both set, are the credentials used, with SessionToken for
	// temporary ones. Otherwise they come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
	// AWS_SESSION_TOKEN, else the shared credentials file (AWS_SHARED_CREDENTIALS_FILE or
	// ~/.aws/credentials, profile AWS_PROFILE or "default"), else the IAM role of the machine
	// or container.
	AccessKey    string
	SecretKey    string
	SessionToken string
	// Transport carries the requests; nil means minio-go's default transport.
	Transport http.RoundTripper
}

// Blobs keeps blobs as objects named PREFIX/KEY in a bucket. It is safe for concurrent use,
// also by several processes sharing the bucket.
type Blobs struct {
	client   *minio.Client
	bucket   string
	prefix   string // "" or ending with "/"
	endpoint string // for error messages
}

// Open connects to the bucket named by rawURL, of the form
//
//	s3://BUCKET[/PREFIX][?endpoint=http://127.0.0.1:9000&region=us-east-1]
//
// and checks that it exists and that the credentials are good. Without endpoint, the bucket
// is on Amazon S3; with one, its scheme (http or https) says whether to use TLS, and buckets
// are addressed by path, as most S3-compatible servers expect. Blobs live under PREFIX/, so
// stores with different prefixes share a bucket without seeing each other's blobs.
func Open(ctx context.Context, rawURL string, opts Options) (*Blobs, error) {
	cfg, err := parseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("open s3 blob store: %w", err)
	}
	creds := credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{},
		&credentials.IAM{},
	})
	if opts.AccessKey != "" || opts.SecretKey != "" {
		if opts.AccessKey == "" || opts.SecretKey == "" {
			return nil, errors.New("open s3 blob store: an access key needs a secret key, and the other way round")
		}
		creds = credentials.NewStaticV4(opts.AccessKey, opts.SecretKey, opts.SessionToken)
	}
	endpoint := cfg.endpoint
	if !cfg.custom {
		endpoint = nil
	}
	client, err := NewClient(endpoint, cfg.region, creds, opts.Transport)
	if err != nil {
		return nil, fmt.Errorf("open s3 blob store at %s: %w", cfg.endpoint.Redacted(), err)
	}
	b := &Blobs{client: client, bucket: cfg.bucket, prefix: cfg.prefix, endpoint: cfg.endpoint.String()}

	// A cheap call that needs valid credentials: refuse a bad configuration now rather than at
	// the first artifact.
	ok, err := client.BucketExists(ctx, b.bucket)
	if err != nil {
		if code, refused := AccessRefused(err); refused {
			return nil, fmt.Errorf("open s3 bucket %s at %s: access refused (%s): check the credentials "+
				"(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE) and their permissions: %w",
				b.bucket, b.endpoint, code, err)
		}
		return nil, fmt.Errorf("open s3 bucket %s at %s: %w", b.bucket, b.endpoint, err)
	}
	if !ok {
		return nil, fmt.Errorf("open s3 blob store: bucket %s does not exist at %s: create it, e.g. with `mc mb`",
			b.bucket, b.endpoint)
	}
	return b, nil
}

type config struct {
	endpoint *url.URL
	custom   bool // not Amazon's endpoint
	region   string
	bucket   string
	prefix   string
}

// parseURL reads s3://BUCKET/PREFIX?endpoint=...&region=... .
func parseURL(rawURL string) (config, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return config{}, fmt.Errorf("bad s3 URL: %w", err)
	}
	var c config
	switch {
	case u.Scheme != "s3":
		return c, fmt.Errorf("bad s3 URL %q: the scheme must be s3://", u.Redacted())
	case u.User != nil:
		return c, fmt.Errorf("bad s3 URL %q: credentials do not belong in the URL: set AWS_ACCESS_KEY_ID "+
			"and AWS_SECRET_ACCESS_KEY", u.Redacted())
	case u.Opaque != "":
		return c, fmt.Errorf("bad s3 URL %q: want s3://BUCKET/PREFIX", rawURL)
	case u.Host == "":
		return c, fmt.Errorf("bad s3 URL %q: missing bucket name (s3://BUCKET/PREFIX)", rawURL)
	case u.Fragment != "":
		return c, fmt.Errorf("bad s3 URL %q: unexpected fragment #%s", rawURL, u.Fragment)
	}
	c.bucket = u.Host
	if err := s3utils.CheckValidBucketNameStrict(c.bucket); err != nil {
		return c, fmt.Errorf("bad s3 URL %q: bucket name %q: %w", rawURL, c.bucket, err)
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		if err := artifact.CheckKey(p); err != nil {
			return c, fmt.Errorf("bad s3 URL %q: prefix %q is not a clean relative path", rawURL, p)
		}
		c.prefix = p + "/"
	}

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return c, fmt.Errorf("bad s3 URL %q: query: %w", rawURL, err)
	}
	for _, name := range slices.Sorted(maps.Keys(q)) {
		if name != "endpoint" && name != "region" {
			return c, fmt.Errorf("bad s3 URL %q: unknown parameter %q (known: endpoint, region)", rawURL, name)
		}
		if len(q[name]) != 1 {
			return c, fmt.Errorf("bad s3 URL %q: parameter %q given %d times", rawURL, name, len(q[name]))
		}
	}
	c.region = q.Get("region")
	if _, ok := q["region"]; ok && (c.region == "" || strings.ContainsAny(c.region, "/ ")) {
		return c, fmt.Errorf("bad s3 URL %q: parameter \"region\": invalid region %q", rawURL, c.region)
	}
	raw, custom := q["endpoint"]
	c.custom = custom
	if !c.custom {
		c.endpoint, _ = url.Parse(awsEndpoint)
		return c, nil
	}
	e, err := ParseEndpoint(raw[0])
	if err != nil {
		return c, fmt.Errorf("bad s3 URL %q: parameter \"endpoint\": %w", rawURL, err)
	}
	c.endpoint = e
	return c, nil
}

// ParseEndpoint reads the URL of an S3-compatible server: http:// or https:// (which says
// whether to use TLS) and a host, with nothing else but a trailing slash.
func ParseEndpoint(raw string) (*url.URL, error) {
	e, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, err
	case e.Scheme != "http" && e.Scheme != "https":
		return nil, fmt.Errorf("endpoint %q: the scheme must be http or https", raw)
	case e.Host == "":
		return nil, fmt.Errorf("endpoint %q: missing host", raw)
	case e.User != nil || strings.Trim(e.Path, "/") != "" || e.RawQuery != "" || e.Fragment != "":
		return nil, fmt.Errorf("endpoint %q: want only scheme://host[:port]", raw)
	}
	e.Path = ""
	return e, nil
}

// NewClient returns a minio-go client of endpoint (as ParseEndpoint returns it), or of
// Amazon S3 when endpoint is nil. Amazon's buckets are addressed by virtual host in their
// region, found on first use; another server's by path, as most S3-compatible servers
// expect. region may be "" and transport nil (minio-go's default).
func NewClient(endpoint *url.URL, region string, creds *credentials.Credentials, transport http.RoundTripper) (*minio.Client, error) {
	lookup := minio.BucketLookupPath
	if endpoint == nil {
		endpoint, _ = url.Parse(awsEndpoint)
		lookup = minio.BucketLookupAuto
	}
	return minio.New(endpoint.Host, &minio.Options{
		Creds:        creds,
		Secure:       endpoint.Scheme == "https",
		Transport:    transport,
		Region:       region,
		BucketLookup: lookup,
	})
}

// AccessRefused reports whether err is the server refusing a request for its credentials or
// their permissions, and the server's error code.
func AccessRefused(err error) (code string, refused bool) {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && slices.Contains([]string{"AccessDenied", "InvalidAccessKeyId",
		"SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "AllAccessDisabled"}, resp.Code) {
		return resp.Code, true
	}
	return "", false
}

// object returns the object name of key.
func (b *Blobs) object(key string) (string, error) {
	if err := artifact.CheckKey(key); err != nil {
		return "", err
	}
	return b.prefix + key, nil
}

// Put uploads the blob in one PUT, or a multipart upload for blobs over 16 MiB; either way
// the object appears whole or not at all, and a failed multipart upload is aborted. An
// *os.File (what artifact.Store passes) or a reader with a Len is uploaded from its size,
// other readers in 16 MiB parts buffered one at a time.
func (b *Blobs) Put(ctx context.Context, key string, r io.Reader) (err error) {
	name, err := b.object(key)
	if err != nil {
		return fmt.Errorf("put blob: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put blob %s: %w", key, err)
	}
	r, size, err := sized(r)
	if err != nil {
		return fmt.Errorf("put blob %s: %w", key, err)
	}
	_, err = b.client.PutObject(ctx, b.bucket, name, r, size, minio.PutObjectOptions{
		PartSize:    partSize,
		ContentType: "application/octet-stream",
	})
	if err != nil {
		return fmt.Errorf("put blob %s: %w", key, b.explain(err))
	}
	return nil
}

// sized returns r with its size, or -1 when unknown. A regular file, or another reader that
// can seek and read at offsets, is read from its current offset to its end through a
// ReaderAt, which lets minio-go upload parts in parallel without buffering them.
func sized(r io.Reader) (io.Reader, int64, error) {
	if f, ok := r.(*os.File); ok {
		fi, err := f.Stat()
		if err != nil {
			return nil, 0, err
		}
		if !fi.Mode().IsRegular() { // a pipe, a device: stream it
			return r, -1, nil
		}
	}
	switch rr := r.(type) {
	case interface {
		io.ReaderAt
		io.Seeker
	}: // *os.File, bytes.Reader, strings.Reader
		off, err := rr.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, 0, err
		}
		end, err := rr.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, 0, err
		}
		if _, err := rr.Seek(off, io.SeekStart); err != nil {
			return nil, 0, err
		}
		n := max(end-off, 0)
		return io.NewSectionReader(rr, off, n), n, nil
	case interface{ Len() int }: // bytes.Buffer
		return r, int64(rr.Len()), nil
	}
	return r, -1, nil
}

// Get returns a reader streaming the blob. The GET is sent before Get returns, so a missing
// blob is reported here rather than at the first Read, and the whole blob is read from its
// answer: the blob as it was then, even if it is replaced or deleted meanwhile (a pointer
// put again, a cache evicted). It is minio-go's first Read that does so: Stat would send a
// HEAD, and make the GET of the first Read conditional on the ETag it saw, failing for a
// blob replaced in between.
func (b *Blobs) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	name, err := b.object(key)
	if err != nil {
		return nil, fmt.Errorf("get blob: %w", err)
	}
	obj, err := b.client.GetObject(ctx, b.bucket, name, minio.GetObjectOptions{})
	var first [1]byte
	n := 0
	if err == nil {
		n, err = obj.Read(first[:])
		if err == io.EOF {
			err = nil // an empty blob
		}
		if err != nil {
			obj.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("get blob %s: %w", key, b.explain(err))
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(first[:n]), obj), obj}, nil
}

// Stat returns the blob's size.
func (b *Blobs) Stat(ctx context.Context, key string) (int64, error) {
	name, err := b.object(key)
	if err != nil {
		return 0, fmt.Errorf("stat blob: %w", err)
	}
	info, err := b.client.StatObject(ctx, b.bucket, name, minio.StatObjectOptions{})
	if err != nil {
		return 0, fmt.Errorf("stat blob %s: %w", key, b.explain(err))
	}
	return info.Size, nil
}

// Delete removes the blob; a missing blob is not an error, as S3 has it.
func (b *Blobs) Delete(ctx context.Context, key string) error {
	name, err := b.object(key)
	if err != nil {
		return fmt.Errorf("delete blob: %w", err)
	}
	if err := b.client.RemoveObject(ctx, b.bucket, name, minio.RemoveObjectOptions{}); err != nil {
		if err := b.explain(err); !errors.Is(err, artifact.ErrNotFound) {
			return fmt.Errorf("delete blob %s: %w", key, err)
		}
	}
	return nil
}

// List lists the objects under PREFIX/prefix. An upload in progress (multipart) is no
// object yet, so it is not listed.
func (b *Blobs) List(ctx context.Context, prefix string) ([]artifact.BlobInfo, error) {
	if strings.ContainsAny(prefix, "\\\x00") {
		return nil, fmt.Errorf("list blobs: invalid prefix %q", prefix)
	}
	var out []artifact.BlobInfo
	for obj := range b.client.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: b.prefix + prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("list blobs %s: %w", prefix, b.explain(obj.Err))
		}
		out = append(out, artifact.BlobInfo{Key: strings.TrimPrefix(obj.Key, b.prefix), Size: obj.Size})
	}
	slices.SortFunc(out, func(a, b artifact.BlobInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// PresignGet returns a URL that downloads the blob with a plain GET, without credentials,
// for ttl (at most 7 days). It is signed locally: the blob need not exist yet.
func (b *Blobs) PresignGet(ctx context.Context, key string, ttl time.Duration) (*url.URL, error) {
	name, err := b.object(key)
	if err != nil {
		return nil, fmt.Errorf("presign get blob: %w", err)
	}
	u, err := b.client.PresignedGetObject(ctx, b.bucket, name, ttl, nil)
	if err != nil {
		return nil, fmt.Errorf("presign get blob %s: %w", key, b.explain(err))
	}
	return u, nil
}

// PresignPut returns a URL that stores the blob with a plain PUT of its content, without
// credentials, for ttl (at most 7 days). A single PUT takes up to 5 GiB on Amazon S3.
func (b *Blobs) PresignPut(ctx context.Context, key string, ttl time.Duration) (*url.URL, error) {
	name, err := b.object(key)
	if err != nil {
		return nil, fmt.Errorf("presign put blob: %w", err)
	}
	u, err := b.client.PresignedPutObject(ctx, b.bucket, name, ttl)
	if err != nil {
		return nil, fmt.Errorf("presign put blob %s: %w", key, b.explain(err))
	}
	return u, nil
}

// explain makes a missing object an artifact.ErrNotFound, and a missing bucket a clear
// error, keeping the original error too.
func (b *Blobs) explain(err error) error {
	var resp minio.ErrorResponse
	if !errors.As(err, &resp) {
		return err
	}
	switch resp.Code {
	case minio.NoSuchKey:
		return fmt.Errorf("%w: %w", artifact.ErrNotFound, err)
	case minio.NoSuchBucket:
		return fmt.Errorf("bucket %s no longer exists at %s: %w", b.bucket, b.endpoint, err)
	}
	return err
}
