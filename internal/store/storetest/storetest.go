// Package storetest is the conformance suite of store.Store. Every implementation runs it
// from its own tests, so that SQLite and PostgreSQL keep the same behaviour:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openFresh(t) })
//	}
//
// The suite uses only the store interfaces. Each test asks open for a new, empty store, and
// runs in parallel with the others.
package storetest

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/store"
)

// Run runs the whole suite. open must return a fresh, empty store and close it at the end of
// the test (t.Cleanup); Close may already have been called by the test, and a second Close
// must then be harmless.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"PipelineVersions", testPipelineVersions},
		{"CreateExecutionAssignsSeq", testCreateExecutionAssignsSeq},
		{"CreateExecutionDuplicate", testCreateExecutionDuplicate},
		{"ExecutionRoundTrip", testExecutionRoundTrip},
		{"ExecutionNotFound", testExecutionNotFound},
		{"ExecutionsList", testExecutionsList},
		{"ExecutionsPaging", testExecutionsPaging},
		{"ExecutionsSucceededInStage", testExecutionsSucceededInStage},
		{"StageLocks", testStageLocks},
		{"CountExecutions", testCountExecutions},
		{"NamedLocks", testNamedLocks},
		{"Inbox", testInbox},
		{"InboxClaim", testInboxClaim},
		{"InboxProcessedOnAdd", testInboxProcessedOnAdd},
		{"InboxLimit", testInboxLimit},
		{"JobAdd", testJobAdd},
		{"JobLeaseOldestFirst", testJobLeaseOldestFirst},
		{"JobLeaseByProvider", testJobLeaseByProvider},
		{"JobLeaseByLabels", testJobLeaseByLabels},
		{"JobHeartbeat", testJobHeartbeat},
		{"JobHeartbeatCancelled", testJobHeartbeatCancelled},
		{"JobEpochs", testJobEpochs},
		{"JobSetProcess", testJobSetProcess},
		{"JobFinish", testJobFinish},
		{"JobCancel", testJobCancel},
		{"JobsExpired", testJobsExpired},
		{"JobsList", testJobsList},
		{"Timers", testTimers},
		{"Outbox", testOutbox},
		{"UpdateRollback", testUpdateRollback},
		{"UpdateRollbackStoreError", testUpdateRollbackStoreError},
		{"UpdateReadsOwnWrites", testUpdateReadsOwnWrites},
		{"UpdateConcurrentFailures", testUpdateConcurrentFailures},
		{"UpdateCancelledContext", testUpdateCancelledContext},
		{"ViewSnapshot", testViewSnapshot},
		{"Notify", testNotify},
		{"Concurrency", testConcurrency},
		{"Close", testClose},
		{"PipelinesList", testPipelinesList},
		{"DeletePipeline", testDeletePipeline},
		{"EventByKey", testEventByKey},
		{"Audit", testAudit},
		{"Tokens", testTokens}, {"TokenRevokeTouch", testTokenRevokeTouch}, {"Users", testUsers}, {"Grants", testGrants},
		{"Secrets", testSecrets},
		{"TriggerLeases", testTriggerLeases},
		{"ActionTypes", testActionTypes}, {"JobAcknowledge", testJobAcknowledge},
		{"Workers", testWorkers},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// t0 has nanoseconds so that a store rounding times would be caught.
var t0 = time.Date(2026, 11, 26, 10, 0, 0, 123456789, time.UTC)

// at returns t0 plus n seconds.
func at(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

func update(t *testing.T, s store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	if err := s.Update(t.Context(), fn); err != nil {
		t.Fatalf("update: %v", err)
	}
}

func view(t *testing.T, s store.Store, fn func(r store.Reader) error) {
	t.Helper()
	if err := s.View(t.Context(), fn); err != nil {
		t.Fatalf("view: %v", err)
	}
}

// wantErr fails unless err wraps target.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

// equal compares got and want after normalising every time.Time in them (UTC, no monotonic
// reading): a store may hand times back in another zone.
func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	g, w := reflect.ValueOf(&got).Elem(), reflect.ValueOf(&want).Elem()
	normTimes(g)
	normTimes(w)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %#v\nwant %#v", what, got, want)
	}
}

var timeType = reflect.TypeFor[time.Time]()

// normTimes rewrites, in place, the times reachable from v.
func normTimes(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			normTimes(v.Elem())
		}
	case reflect.Interface:
		if !v.IsNil() && v.CanSet() {
			e := reflect.New(v.Elem().Type()).Elem()
			e.Set(v.Elem())
			normTimes(e)
			v.Set(e)
		}
	case reflect.Struct:
		if v.Type() == timeType {
			if v.CanSet() {
				v.Set(reflect.ValueOf(v.Interface().(time.Time).Round(0).UTC()))
			}
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				normTimes(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			normTimes(v.Index(i))
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			normTimes(e)
			v.SetMapIndex(k, e)
		}
	}
}

// sameTime fails unless got and want are the same instant.
func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

// waitNotify waits for a signal on ch, for at most a generous deadline.
func waitNotify(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("no notification after %s", what)
	}
}

// drain empties a notification channel.
func drain(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

var errBoom = errors.New("boom")
