// Package remote is the HTTP side of the job protocol: the Backend of `conveyor worker`,
// which leases jobs from a Conveyor server and reports to it, and the messages both ends
// exchange (the server's handlers are in internal/api, workers.go).
//
// A worker authenticates with a worker token (scope "worker") to lease. Each lease comes
// with a job token: short-lived, signed by the server, good for that job's endpoints only
// and only under that lease's epoch. Every call about the job (heartbeat, log, artifacts,
// secrets, result) carries it, so a call made under a lease that was lost (expired, and the
// job leased again or failed) is refused with 409: the fencing the store does with epochs,
// carried over the network. Each heartbeat answers with a renewed job token.
//
// Outputs are uploaded to the server, which verifies and stores them. Inputs are read straight
// from the artifact store when the server grants it (DirectInput: a signed URL and the blob's
// own data key), else, or when that fails, through the server.
package remote

import (
	"net/url"
	"time"

	"github.com/conveyorci/conveyor/internal/engine"
)

// Paths of the worker endpoints, under the server's URL.
const (
	PathLease = "/api/v1/worker/lease"
	// PathJob prefixes the job endpoints (JobPath): ID + "/heartbeat", "/log", "/complete",
	// "/secrets", "/inputs/" + NAME, "/inputs/" + NAME + "/direct", "/outputs/" + NAME,
	// "/cache?key=" + KEY.
	PathJob = "/api/v1/worker/jobs/"
)

// JobPath returns the path of a job endpoint: JobPath(id, "heartbeat"). Job IDs hold
// slashes, escaped here as %2F: the ID is one path segment.
func JobPath(id, endpoint string) string {
	return PathJob + url.PathEscape(id) + "/" + endpoint
}

// JobTokenPrefix starts every job token.
const JobTokenPrefix = "cvj_"

// HeaderDigest carries an artifact's digest with its bytes (download and upload).
const HeaderDigest = "X-Conveyor-Digest"

// HeaderRef carries a cache's artifact.Ref, as JSON, with its download: the worker verifies
// the bytes against it as it unpacks them.
const HeaderRef = "X-Conveyor-Artifact"

// DirectInput is a grant to read one of the job's input artifacts straight from the artifact
// store (GET PathJob + ID + "/inputs/" + NAME + "/direct"), when the store can sign URLs (S3):
// the worker downloads the blob from URL, decrypts it with DataKey, and verifies it against the
// input's Ref as it unpacks it. A store that cannot (disk) answers 404 with the code
// CodeDirectUnavailable, and the worker reads the input through the server (GET
// PathJob + ID + "/inputs/" + NAME), as it does after any failure of the direct read.
type DirectInput struct {
	// URL downloads the blob with a plain GET, without credentials, until Expires: a few
	// minutes, never much past the job's lease.
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
	// DataKey is the blob's own data key (32 bytes, base64 in JSON), unwrapped by the server;
	// none for a blob stored unencrypted. It decrypts this blob and no other.
	DataKey []byte `json:"dataKey,omitempty"`
	// Digest is the input's digest, Size the blob's bytes as stored (compressed, encrypted).
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// CodeDirectUnavailable is the error code of a direct-read request the artifact store cannot
// serve (it signs no URLs): read the input through the server.
const CodeDirectUnavailable = "direct_unavailable"

// CachePath returns the path of a job's cache endpoint for key: GET downloads the cache
// (404 when there is none), PUT uploads it.
func CachePath(id, key string) string {
	return JobPath(id, "cache") + "?key=" + url.QueryEscape(key)
}

// LeaseRequest asks for a job (POST PathLease).
type LeaseRequest struct {
	// Worker names the worker process (unique per process; shown in the job's lease).
	Worker string `json:"worker"`
	// Providers are the "Category/Provider" keys the worker runs.
	Providers []string `json:"providers"`
	// Labels are what the worker offers to actions' runOn.
	Labels []string `json:"labels,omitempty"`
	// WaitMS is how long the server may hold the request for a job to come (at most
	// MaxWait); 0 answers at once.
	WaitMS int64 `json:"waitMs,omitempty"`
	// Slots is how many jobs the worker runs at once, Version its build: what the workers
	// registry shows of it (GET /api/v1/workers), with Labels and Providers.
	Slots   int    `json:"slots,omitempty"`
	Version string `json:"version,omitempty"`
}

// MaxWait bounds a lease request's long poll.
const MaxWait = 30 * time.Second

// Job is a leased job (the answer to a lease, or the next job with a result), or nothing:
// a lease request that found none is answered 204 No Content.
type Job struct {
	ID          string         `json:"id"`
	ExecutionID string         `json:"executionId"`
	Pipeline    string         `json:"pipeline"`
	Provider    string         `json:"provider"`
	Spec        engine.JobSpec `json:"spec"`
	Epoch       int64          `json:"epoch"`
	LeaseUntil  time.Time      `json:"leaseUntil"`
	// LeaseMS is the lease's length; heartbeats should come every third of it.
	LeaseMS int64 `json:"leaseMs"`
	// Token authenticates the calls about this job under this lease.
	Token string `json:"token"`
	// Nonce, for a custom action's job, is what its worker acknowledges the job with
	// (POST PathJob + ID + "/acknowledge"); built-in providers' jobs have none.
	Nonce string `json:"nonce,omitempty"`
}

// Heartbeat is the answer to a heartbeat: the lease was extended; use the new token.
type Heartbeat struct {
	LeaseUntil time.Time `json:"leaseUntil"`
	Token      string    `json:"token"`
}

// Complete reports a job's result (POST PathJob + ID + "/complete").
type Complete struct {
	// Event is the result: Type is action.succeeded or action.failed; what it is about
	// (execution, stage, action, attempt) comes from the job, never from the worker.
	Event engine.Event `json:"event"`
	// Log is the last chunk of the job's output.
	Log []byte `json:"log,omitempty"`
	// Next, when set, leases the worker's next job with the result: the answer is then
	// that Job, or 204 when there is none.
	Next *LeaseRequest `json:"next,omitempty"`
}
