package s3

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/conveyorci/conveyor/internal/action"
	s3store "github.com/conveyorci/conveyor/internal/artifact/s3"
)

// conn is where an action's bucket is and how to reach it: the configuration properties
// both S3 actions share.
type conn struct {
	bucket    string
	endpoint  *url.URL // nil: Amazon S3
	region    string
	accessKey string
	secretKey string
}

// str returns a string property ("" when absent or of another type).
func str(cfg map[string]any, name string) string {
	s, _ := cfg[name].(string)
	return s
}

// parseConn reads bucket, endpoint, region, accessKeyId and secretAccessKey.
func parseConn(cfg map[string]any) (*conn, error) {
	c := &conn{bucket: str(cfg, "bucket"), region: str(cfg, "region"),
		accessKey: str(cfg, "accessKeyId"), secretKey: str(cfg, "secretAccessKey")}
	if c.bucket == "" {
		return nil, errors.New("configuration: bucket is required")
	}
	if err := s3utils.CheckValidBucketName(c.bucket); err != nil {
		return nil, fmt.Errorf("configuration: bucket %q: %w", c.bucket, err)
	}
	for _, name := range []string{"accessKeyId", "secretAccessKey"} {
		if v, ok := cfg[name]; ok {
			if _, isString := v.(string); !isString {
				return nil, fmt.Errorf("configuration: %s must be a secret's value; got %T (is it { secret: NAME }, with NAME listed in the pipeline's secrets?)", name, v)
			}
		}
	}
	if (c.accessKey == "") != (c.secretKey == "") {
		return nil, errors.New("configuration: accessKeyId and secretAccessKey go together: set both, or neither for anonymous access")
	}
	if raw := str(cfg, "endpoint"); raw != "" {
		e, err := s3store.ParseEndpoint(raw)
		if err != nil {
			return nil, fmt.Errorf("configuration: %w", err)
		}
		c.endpoint = e
	}
	return c, nil
}

// client returns a client of the bucket's server, anonymous without keys.
func (c *conn) client() (*minio.Client, error) {
	// Static credentials with empty keys make minio-go send unsigned requests.
	creds := credentials.NewStaticV4(c.accessKey, c.secretKey, "")
	cl, err := s3store.NewClient(c.endpoint, c.region, creds, nil)
	if err != nil {
		return nil, fmt.Errorf("s3 client for %s: %w", c.server(), err)
	}
	return cl, nil
}

// server names the endpoint for messages.
func (c *conn) server() string {
	if c.endpoint == nil {
		return "Amazon S3"
	}
	return c.endpoint.String()
}

// location is s3://BUCKET/KEY, for messages and summaries.
func (c *conn) location(key string) string { return "s3://" + c.bucket + "/" + key }

// explain turns an error of a request about key (of version, when set) into a failure that
// says what to check. Errors that are not the server's answer (a refused connection, a bad
// host name) are failures too: the endpoint is the pipeline's.
func (c *conn) explain(err error, verb, key, version string) error {
	what := c.location(key)
	if version != "" {
		what += " (version " + version + ")"
	}
	var resp minio.ErrorResponse
	if !errors.As(err, &resp) {
		return &action.Error{Kind: action.Failed, Message: fmt.Sprintf("%s %s at %s: check endpoint", verb, what, c.server()), Err: err}
	}
	var msg string
	if code, refused := s3store.AccessRefused(err); refused {
		if c.accessKey == "" {
			msg = fmt.Sprintf("%s %s: anonymous access refused by %s (%s): set accessKeyId and secretAccessKey "+
				"({ secret: NAME }), or allow anonymous access in the bucket's policy", verb, what, c.server(), code)
		} else {
			msg = fmt.Sprintf("%s %s: access refused by %s (%s): check accessKeyId and secretAccessKey, "+
				"and that they are allowed to %s in bucket %s", verb, what, c.server(), code, verb, c.bucket)
		}
		return &action.Error{Kind: action.Failed, Message: msg, Err: err}
	}
	switch resp.Code {
	case minio.NoSuchBucket:
		msg = fmt.Sprintf("%s %s: bucket %s does not exist at %s: check bucket and endpoint", verb, what, c.bucket, c.server())
	case minio.NoSuchKey:
		msg = fmt.Sprintf("%s %s: no such object in bucket %s at %s: check objectKey", verb, what, c.bucket, c.server())
	case "NoSuchVersion":
		msg = fmt.Sprintf("%s %s: no such version of the object: check the revision (a VersionId of the object)", verb, what)
	case "PreconditionFailed":
		msg = fmt.Sprintf("%s %s: the object changed: it no longer has ETag %s (the revision this execution is pinned to)", verb, what, version)
	case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
		msg = fmt.Sprintf("%s %s at %s: wrong region (%s): check region", verb, what, c.server(), resp.Code)
	default:
		msg = fmt.Sprintf("%s %s at %s", verb, what, c.server())
	}
	return &action.Error{Kind: action.Failed, Message: msg, Err: err}
}

// etagPattern is what an S3 ETag looks like: the hex MD5 of the object, or of its parts
// followed by their number.
var etagPattern = regexp.MustCompile(`^"?[0-9a-f]{32}(-[0-9]+)?"?$`)

// IsETag reports whether a source revision is an ETag (an unversioned object's revision)
// rather than a VersionId.
func IsETag(revision string) bool { return etagPattern.MatchString(revision) }

// Revision is what an execution pins a Source/S3 action to: the object's VersionId, or its
// ETag when the bucket is not versioned.
func Revision(etag, versionID string) string {
	if versionID != "" {
		return versionID
	}
	return etag
}

// unquote returns an ETag without its quotes.
func unquote(etag string) string { return strings.Trim(etag, `"`) }

// versionOf returns the VersionId a server answered: "" for an unversioned object ("null"
// is the version of objects written while versioning was off or suspended).
func versionOf(id string) string {
	if id == "null" {
		return ""
	}
	return id
}

// Head returns the current ETag (without quotes) and VersionId ("" when unversioned) of the
// object of a Source/S3 action, whose configuration holds the credentials' values in place of
// the secrets' references, as a job's does. Its error says what to check.
func Head(ctx context.Context, configuration map[string]any) (etag, versionID string, err error) {
	c, err := parseConn(configuration)
	if err != nil {
		return "", "", err
	}
	key := str(configuration, "objectKey")
	if key == "" {
		return "", "", errors.New("configuration: objectKey is required")
	}
	cl, err := c.client()
	if err != nil {
		return "", "", err
	}
	info, err := cl.StatObject(ctx, c.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return "", "", c.explain(err, "read", key, "")
	}
	return unquote(info.ETag), versionOf(info.VersionID), nil
}

// failure classifies what Run returns once ctx or the job's timeout ended it.
func failure(ctx, runCtx context.Context, job *action.Job, err error) error {
	switch {
	case ctx.Err() != nil:
		return &action.Error{Kind: action.Stopped, Message: "stopped"}
	case runCtx.Err() != nil:
		return &action.Error{Kind: action.TimedOut, Message: fmt.Sprintf("timed out after %v", job.Timeout)}
	}
	if _, ok := errors.AsType[*action.Error](err); ok {
		return err
	}
	return &action.Error{Kind: action.Errored, Err: err}
}

// withTimeout returns ctx bounded by the job's timeout, when it has one.
func withTimeout(ctx context.Context, job *action.Job) (context.Context, context.CancelFunc) {
	if job.Timeout > 0 {
		return context.WithTimeout(ctx, job.Timeout)
	}
	return context.WithCancel(ctx)
}
