package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/job/remote"
	"github.com/conveyorci/conveyor/internal/store"
)

// The job-worker protocol of custom actions (CodePipeline's PollForJobs, AcknowledgeJob,
// PutJobSuccessResult, PutJobFailureResult), on the remote workers' endpoints (workers.go):
//
//   - poll: POST /api/v1/worker/lease with providers ["Category/Provider"] of a registered
//     type; the job comes with its job token and a nonce (derived from the lease: job and
//     epoch), and a follow-up job with the continuation token in its spec;
//   - acknowledge: POST /api/v1/worker/jobs/{id}/acknowledge {nonce}. A job not acknowledged
//     within the acknowledgement timeout goes back to the queue, when a worker next polls
//     for its type (its lease is fenced: the slow worker's calls are refused with 409). Left
//     unpolled, it expires with its lease as any job;
//   - heartbeat: as any job;
//   - result: POST /api/v1/worker/jobs/{id}/complete, only once acknowledged: a success with
//     summary, externalId, externalUrl, outputs and an optional continuationToken, or a
//     failure whose "failure" is one of failureTypes, with a message.

// DefaultAckTimeout is how long a custom worker has to acknowledge a job it polled.
const DefaultAckTimeout = 10 * time.Second

// failureTypes are the failures a custom worker reports (CodePipeline's FailureDetails
// types), with the class each is recorded as: the action's work failed, or the system did.
var failureTypes = map[string]string{
	"JobFailed":           "failed",
	"ConfigurationError":  "failed",
	"PermissionError":     "failed",
	"RevisionOutOfSync":   "failed",
	"RevisionUnavailable": "failed",
	"SystemUnavailable":   "error",
}

// Bounds of what a custom worker reports, CodePipeline's.
const (
	maxContinuationToken = 2048
	maxExternalID        = 1500
	maxResultSummary     = 2048
	maxFailureMessage    = 5000
)

// jobNonce is the nonce of a job's lease under epoch: what a custom worker acknowledges
// with. It derives from the job token key, so any server checks it and none stores it.
func jobNonce(key []byte, id string, epoch int64) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("nonce\n" + id + "\n" + strconv.FormatInt(epoch, 10)))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// nonceOf returns the nonce of a leased custom job ("" for a built-in one: its workers do
// not acknowledge).
func (ws *workers) nonceOf(j *store.Job) string {
	if !isCustom(j.Provider) {
		return ""
	}
	return jobNonce(ws.key, j.ID, j.Epoch)
}

// requeueUnacknowledged puts back in the queue the leases of custom jobs of providers that
// were not acknowledged within the acknowledgement timeout: a worker that polled and then
// went away must not hold the job until its lease expires (which fails a Deploy action).
func (ws *workers) requeueUnacknowledged(ctx context.Context, tx store.Tx, providers []string) error {
	if !slices.ContainsFunc(providers, isCustom) {
		return nil
	}
	leased, err := tx.Jobs(ctx, store.JobLeased)
	if err != nil {
		return err
	}
	var now time.Time // by the lease clock, which set LeaseUntil (read when needed)
	for _, j := range leased {
		if !isCustom(j.Provider) || !slices.Contains(providers, j.Provider) {
			continue
		}
		if now.IsZero() {
			if now, err = tx.LeaseClock(ctx); err != nil {
				return err
			}
		}
		// A lease runs lease long from its start or its last heartbeat.
		if !j.LeaseUntil.Add(-ws.lease).Add(ws.ackTimeout).Before(now) {
			continue
		}
		ok, err := tx.JobAcknowledged(ctx, j.ID, j.Epoch)
		if err != nil {
			return err
		}
		if ok {
			continue
		}
		if err := tx.RequeueJob(ctx, j.ID, j.Epoch); err != nil && !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("requeue unacknowledged job %s: %w", j.ID, err)
		}
	}
	return nil
}

// acknowledgeBody is the body of POST .../acknowledge.
type acknowledgeBody struct {
	Nonce string `json:"nonce"`
}

// handleAcknowledge acknowledges a custom job under the lease of the request's job token,
// with the lease's nonce, and extends the lease: the answer is a heartbeat's.
func (ws *workers) handleAcknowledge(w http.ResponseWriter, r *http.Request) {
	var body acknowledgeBody
	if err := decodeJSON(w, r, &body); err != nil {
		fail(w, err)
		return
	}
	c := claimOf(r)
	if !hmac.Equal([]byte(body.Nonce), []byte(jobNonce(ws.key, c.job, c.epoch))) {
		fail(w, &badRequest{http.StatusBadRequest, "invalid_nonce",
			fmt.Sprintf("nonce %q is not the nonce of job %s under epoch %d: send the nonce the job came with", body.Nonce, c.job, c.epoch)})
		return
	}
	ws.extendLease(w, r, func(tx store.Tx) error { return tx.AcknowledgeJob(r.Context(), c.job, c.epoch, ws.now()) })
}

// customResult checks the result of job j and makes it an engine event: a custom job's must
// come once acknowledged, its failure be typed (recorded as its class, the type leading the
// message); only a custom job continues.
func (ws *workers) customResult(r *http.Request, j *store.Job, ev *engine.Event) error {
	if !isCustom(j.Provider) {
		if ev.ContinuationToken != "" || ev.ExternalID != "" {
			return errBad("event: continuationToken and externalId are for custom actions; %s is a built-in provider", j.Provider)
		}
		return nil
	}
	var acked bool
	err := ws.st.View(r.Context(), func(rd store.Reader) error {
		var err error
		acked, err = rd.JobAcknowledged(r.Context(), j.ID, j.Epoch)
		return err
	})
	if err != nil {
		return err
	}
	if !acked {
		return errConflict("job %s was not acknowledged: acknowledge it first (POST %s with its nonce)", j.ID, remote.JobPath(j.ID, "acknowledge"))
	}
	switch {
	case len(ev.ContinuationToken) > maxContinuationToken:
		return errBad("event.continuationToken: at most %d bytes", maxContinuationToken)
	case len(ev.ExternalID) > maxExternalID:
		return errBad("event.externalId: at most %d bytes", maxExternalID)
	case len(ev.Summary) > maxResultSummary:
		return errBad("event.summary: at most %d bytes", maxResultSummary)
	case len(ev.Message) > maxFailureMessage:
		return errBad("event.message: at most %d bytes", maxFailureMessage)
	}
	if ev.Type == engine.EvActionSucceeded {
		return nil
	}
	if ev.ContinuationToken != "" {
		return errBad("event.continuationToken: a failure does not continue")
	}
	class, ok := failureTypes[ev.Failure]
	if !ok {
		types := make([]string, 0, len(failureTypes))
		for t := range failureTypes {
			types = append(types, t)
		}
		slices.Sort(types)
		return errBad("event.failure %q: a custom action's failure is one of %s", ev.Failure, strings.Join(types, ", "))
	}
	ev.Message = strings.TrimSuffix(ev.Failure+": "+ev.Message, ": ")
	ev.Failure = class
	return nil
}
