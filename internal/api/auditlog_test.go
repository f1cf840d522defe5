package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/audit"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/store"
)

// auditKey seals the audit log of the tests' servers.
var auditKey = bytes.Repeat([]byte{7}, audit.KeySize)

// withAuditLog makes the server record its audit log, and sets *st (when st is not nil) to
// its store, for audit.Verify.
func withAuditLog(t *testing.T, st *store.Store) func(*api.Options) {
	log, err := audit.New(auditKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	return func(o *api.Options) {
		o.Audit = log
		if st != nil {
			*st = o.Store
		}
	}
}

// auditEntry is a record as GET /api/v1/audit answers it, details decoded.
type auditEntry struct {
	Seq                                    int64
	Actor, Source, Action, Target, Outcome string
	Details                                map[string]any
	PrevHash, Hash                         string
}

// auditLog reads every entry through the API, newest first, a page at a time, and returns
// them with the raw answers (to look for what must never be there).
func (b *bundle) auditLog(query string) ([]auditEntry, string) {
	b.t.Helper()
	var all []auditEntry
	var raw strings.Builder
	before := ""
	for {
		q, err := url.ParseQuery(query)
		if err != nil {
			b.t.Fatal(err)
		}
		q.Set("limit", "7") // small pages: paging is part of what is tested
		if before != "" {
			q.Set("before", before)
		}
		a := b.call("GET", "/api/v1/audit?"+q.Encode(), nil, 200)
		raw.Write(a.body)
		var page struct {
			Entries    []auditEntry
			NextBefore int64
		}
		a.decode(b.t, &page)
		all = append(all, page.Entries...)
		if page.NextBefore == 0 {
			return all, raw.String()
		}
		if len(page.Entries) != 7 || page.Entries[6].Seq != page.NextBefore {
			b.t.Fatalf("page of %d entries with nextBefore %d: %s", len(page.Entries), page.NextBefore, a.body)
		}
		before = fmt.Sprint(page.NextBefore)
	}
}

// find returns the first (newest) entry of action on target; it fails the test when none.
func find(t *testing.T, entries []auditEntry, action, target string) auditEntry {
	t.Helper()
	for _, e := range entries {
		if e.Action == action && e.Target == target {
			return e
		}
	}
	t.Fatalf("no %s entry on %q among %d entries", action, target, len(entries))
	return auditEntry{}
}

// count counts the entries of action (on target, when not empty) with outcome.
func count(entries []auditEntry, action, target, outcome string) int {
	n := 0
	for _, e := range entries {
		if e.Action == action && (target == "" || e.Target == target) && e.Outcome == outcome {
			n++
		}
	}
	return n
}

// wantEntry checks an entry's actor, outcome and some of its details.
func wantEntry(t *testing.T, e auditEntry, actor, outcome string, details map[string]any) {
	t.Helper()
	if e.Actor != actor || e.Outcome != outcome || e.Source == "" {
		t.Errorf("%s %s: actor %q outcome %q source %q, want %q, %q and an address", e.Action, e.Target, e.Actor, e.Outcome, e.Source, actor, outcome)
	}
	for k, v := range details {
		if got, ok := e.Details[k]; !ok || fmt.Sprint(got) != fmt.Sprint(v) {
			t.Errorf("%s %s: details[%s] = %v, want %v (details %v)", e.Action, e.Target, k, got, v, e.Details)
		}
	}
}

// verifyAudit checks the chain with the API and with audit.Verify on the store, and returns
// how many entries it holds.
func (b *bundle) verifyAudit(st store.Store) int64 {
	b.t.Helper()
	var ans struct {
		OK      bool
		Entries int64
		Broken  any
	}
	b.call("GET", "/api/v1/audit/verify", nil, 200).decode(b.t, &ans)
	if !ans.OK || ans.Broken != nil {
		b.t.Fatalf("GET /api/v1/audit/verify: %+v", ans)
	}
	var rep audit.Report
	err := st.View(b.t.Context(), func(r store.Reader) error {
		var err error
		rep, err = audit.Verify(b.t.Context(), r, auditKey)
		return err
	})
	if err != nil {
		b.t.Fatalf("audit.Verify: %v", err)
	}
	if rep.Entries != ans.Entries {
		b.t.Fatalf("audit.Verify checked %d entries, the API %d", rep.Entries, ans.Entries)
	}
	return rep.Entries
}

// TestAuditRecordsEveryChange makes every kind of change and refusal through the API and
// reads the entries back: who, from where, what, on what, with what result and details (a
// pipeline edit's diff among them); no token, password or secret value shows in any; the
// chain verifies.
func TestAuditRecordsEveryChange(t *testing.T) {
	t.Parallel()
	var st store.Store
	b := setup(t, withAuditLog(t, &st), withSecrets(t))
	execution := func(id string) string { return "pipeline/p/execution/" + id }
	approve := func(id string, approved bool, comment string) {
		b.call("POST", "/api/v1/executions/"+id+"/stages/Approve/actions/Gate/approval",
			map[string]any{"approved": approved, "comment": comment}, 200)
	}

	// Pipelines: created, edited, put again unchanged; another created and deleted.
	b.put("p", matrixPipeline, 201)
	edited := strings.Replace(matrixPipeline, "default: gate", "default: gated", 1)
	b.put("p", edited, 200)
	b.put("p", edited, 200)
	b.put("q", otherPipeline, 201)
	b.call("DELETE", "/api/v1/pipelines/q", nil, 204)

	// Executions: start, approve, reject, stop, retry, override, transitions, rollback.
	deployed := b.start("p", map[string]any{"variables": map[string]string{"MODE": "gate"}, "clientRequestToken": "ci-1"}, 201)
	b.waitAction(deployed.ID, "Approve", "Gate", engine.ActionInProgress)
	if again := b.start("p", map[string]any{"clientRequestToken": "ci-1"}, 200); again.ID != deployed.ID {
		t.Fatalf("a repeated start made execution %s", again.ID)
	}
	approve(deployed.ID, true, "ship it")
	b.waitStatus(deployed.ID, engine.ExecSucceeded)
	rejected := b.start("p", nil, 201)
	b.waitAction(rejected.ID, "Approve", "Gate", engine.ActionInProgress)
	approve(rejected.ID, false, "not today")
	stopped := b.start("p", nil, 201)
	b.waitAction(stopped.ID, "Approve", "Gate", engine.ActionInProgress)
	b.call("POST", "/api/v1/executions/"+stopped.ID+"/stop", map[string]any{"reason": "enough"}, 200)
	failed := b.start("p", map[string]any{"variables": map[string]string{"MODE": "fail"}}, 201)
	b.waitStatus(failed.ID, engine.ExecFailed)
	b.call("POST", "/api/v1/executions/"+failed.ID+"/stages/Build/retry", map[string]any{"mode": "FAILED_ACTIONS"}, 200)
	blocked := b.start("p", map[string]any{"variables": map[string]string{"MODE": "block"}}, 201)
	b.waitStatus(blocked.ID, engine.ExecFailed)
	b.call("POST", "/api/v1/executions/"+blocked.ID+"/stages/Check/override-condition", nil, 200)
	b.call("PUT", "/api/v1/pipelines/p/stages/Deploy/transition", map[string]any{"enabled": false, "reason": "freeze"}, 200)
	b.call("PUT", "/api/v1/pipelines/p/stages/Deploy/transition", map[string]any{"enabled": true}, 200)
	var rb engine.Execution
	b.call("POST", "/api/v1/pipelines/p/stages/Deploy/rollback", map[string]any{"targetExecutionId": deployed.ID}, 201).decode(t, &rb)

	// Secrets: a global one, a pipeline's own, one deleted.
	const secretValue = "an-audited-secret-value"
	b.call("PUT", "/api/v1/secrets/deploy-key", map[string]any{"value": secretValue}, 201)
	b.call("PUT", "/api/v1/pipelines/p/secrets/deploy-key", map[string]any{"value": secretValue + "-p"}, 201)
	b.call("DELETE", "/api/v1/pipelines/p/secrets/deploy-key", nil, 204)

	// Accounts, and what a user's token is refused.
	const password, wrong = "alice's long passphrase", "not alice's passphrase"
	b.call("POST", "/api/v1/users", map[string]any{"name": "alice", "password": password, "groups": []string{"ops"}}, 201)
	b.call("PUT", "/api/v1/groups/devs/members/alice", nil, 200)
	b.call("DELETE", "/api/v1/groups/devs/members/alice", nil, 200)
	var tok tokenDoc
	b.call("POST", "/api/v1/tokens", map[string]any{"user": "alice", "description": "laptop"}, 201).decode(t, &tok)
	b.call("PUT", "/api/v1/grants", map[string]any{"role": "viewer", "user": "alice", "pipeline": "p"}, 201)
	alice := &bundle{t: t, url: b.url, token: tok.Token}
	alice.call("POST", "/api/v1/pipelines/p/executions", nil, 403) // a viewer: guard refuses
	alice.call("DELETE", "/api/v1/tokens/admin", nil, 403)         // not hers: the handler refuses
	b.call("DELETE", "/api/v1/grants?role=viewer&user=alice&pipeline=p", nil, 204)
	b.call("DELETE", "/api/v1/tokens/"+tok.ID, nil, 200)
	alice.call("GET", "/api/v1/pipelines", nil, 401) // revoked
	bogus := api.NewToken()
	(&bundle{t: t, url: b.url, token: bogus}).call("GET", "/api/v1/pipelines/p", nil, 401)
	b.call("POST", "/api/v1/auth/signin", map[string]any{"user": "alice", "password": wrong}, 401)
	var signed tokenDoc
	b.call("POST", "/api/v1/auth/signin", map[string]any{"user": "alice", "password": password}, 201).decode(t, &signed)

	entries, raw := b.auditLog("")
	admin := func(d map[string]any) map[string]any { d["token"] = "admin"; return d }
	ok, denied := audit.OK, audit.Denied

	created := find(t, entries, "pipeline.put", "pipeline/p")
	for _, e := range entries {
		if e.Action == "pipeline.put" && e.Target == "pipeline/p" && e.Details["created"] == true {
			created = e
		}
	}
	wantEntry(t, created, "admin", ok, admin(map[string]any{"version": 1, "created": true}))
	if d, _ := created.Details["diff"].(string); !strings.HasPrefix(d, "--- /dev/null\n+++ p v1\n@@ -0,0 +1,") || !strings.Contains(d, "\n+  \"name\": \"p\",\n") {
		t.Errorf("diff of the new pipeline:\n%s", d)
	}
	var edit, same auditEntry
	for _, e := range entries {
		switch {
		case e.Action == "pipeline.put" && e.Details["unchanged"] == true:
			same = e
		case e.Action == "pipeline.put" && e.Details["previousVersion"] != nil:
			edit = e
		}
	}
	wantEntry(t, edit, "admin", ok, admin(map[string]any{"version": 2, "previousVersion": 1}))
	if d, _ := edit.Details["diff"].(string); !strings.HasPrefix(d, "--- p v1\n+++ p v2\n@@ ") ||
		!strings.Contains(d, "\n-      \"default\": \"gate\"\n+      \"default\": \"gated\"\n") {
		t.Errorf("diff of the edit does not show the changed line:\n%s", d)
	}
	wantEntry(t, same, "admin", ok, admin(map[string]any{"version": 2}))
	if _, has := same.Details["diff"]; has {
		t.Errorf("a put that changed nothing has a diff: %v", same.Details)
	}
	wantEntry(t, find(t, entries, "pipeline.delete", "pipeline/q"), "admin", ok, admin(map[string]any{"version": 1}))

	first := entries[slices.IndexFunc(entries, func(e auditEntry) bool {
		return e.Action == "execution.start" && e.Target == execution(deployed.ID) && e.Details["repeated"] == nil
	})]
	wantEntry(t, first, "admin", ok, admin(map[string]any{"version": 2, "variables": map[string]any{"MODE": "gate"}, "clientRequestToken": "ci-1"}))
	if got := find(t, entries, "execution.start", execution(deployed.ID)); got.Details["repeated"] != true ||
		count(entries, "execution.start", execution(deployed.ID), ok) != 2 {
		t.Errorf("the repeated start (the newest entry) is not recorded as such: %v", got.Details)
	}
	a := find(t, entries, "approval.approve", execution(deployed.ID))
	wantEntry(t, a, "admin", ok, admin(map[string]any{"stage": "Approve", "action": "Gate", "approved": true,
		"comment": "ship it", "by": "admin", "attempt": 1}))
	if a.Details["from"] != a.Source {
		t.Errorf("approval from %v, source %s", a.Details["from"], a.Source)
	}
	wantEntry(t, find(t, entries, "approval.reject", execution(rejected.ID)), "admin", ok,
		admin(map[string]any{"approved": false, "comment": "not today"}))
	wantEntry(t, find(t, entries, "execution.stop", execution(stopped.ID)), "admin", ok, admin(map[string]any{"reason": "enough", "abandon": false}))
	wantEntry(t, find(t, entries, "execution.retry", execution(failed.ID)), "admin", ok, admin(map[string]any{"stage": "Build", "mode": "FAILED_ACTIONS"}))
	wantEntry(t, find(t, entries, "execution.override-condition", execution(blocked.ID)), "admin", ok, admin(map[string]any{"stage": "Check"}))
	wantEntry(t, find(t, entries, "transition.disable", "pipeline/p/stage/Deploy"), "admin", ok, admin(map[string]any{"reason": "freeze"}))
	wantEntry(t, find(t, entries, "transition.enable", "pipeline/p/stage/Deploy"), "admin", ok, admin(map[string]any{}))
	wantEntry(t, find(t, entries, "execution.rollback", execution(rb.ID)), "admin", ok,
		admin(map[string]any{"stage": "Deploy", "targetExecution": deployed.ID}))

	wantEntry(t, find(t, entries, "secret.put", "secret/deploy-key"), "admin", ok, admin(map[string]any{"created": true}))
	wantEntry(t, find(t, entries, "secret.put", "pipeline/p/secret/deploy-key"), "admin", ok, admin(map[string]any{"created": true}))
	wantEntry(t, find(t, entries, "secret.delete", "pipeline/p/secret/deploy-key"), "admin", ok, admin(map[string]any{}))

	wantEntry(t, find(t, entries, "user.create", "user/alice"), "admin", ok, admin(map[string]any{"hasPassword": true, "groups": []any{"ops"}}))
	wantEntry(t, find(t, entries, "group.add", "group/devs"), "admin", ok, admin(map[string]any{"user": "alice"}))
	wantEntry(t, find(t, entries, "group.remove", "group/devs"), "admin", ok, admin(map[string]any{"user": "alice"}))
	wantEntry(t, find(t, entries, "token.create", "token/"+tok.ID), "admin", ok, admin(map[string]any{"user": "alice", "scope": "api", "description": "laptop"}))
	wantEntry(t, find(t, entries, "grant.add", "user/alice"), "admin", ok, admin(map[string]any{"role": "viewer", "pipeline": "p", "added": true}))
	wantEntry(t, find(t, entries, "grant.remove", "user/alice"), "admin", ok, admin(map[string]any{"role": "viewer", "pipeline": "p"}))
	wantEntry(t, find(t, entries, "token.revoke", "token/"+tok.ID), "admin", ok, admin(map[string]any{"user": "alice"}))

	wantEntry(t, find(t, entries, "auth.forbidden", "pipeline/p"), "alice", denied,
		map[string]any{"token": tok.ID, "status": 403, "method": "POST", "path": "/api/v1/pipelines/p/executions"})
	own := find(t, entries, "auth.forbidden", "")
	wantEntry(t, own, "alice", denied, map[string]any{"token": tok.ID, "path": "/api/v1/tokens/admin"})
	if r, _ := own.Details["reason"].(string); !strings.Contains(r, "not a token of user alice") {
		t.Errorf("the handler's refusal is recorded with reason %q", r)
	}
	revoked := find(t, entries, "auth.refused", "")
	wantEntry(t, revoked, "alice", denied, map[string]any{"token": tok.ID, "status": 401, "path": "/api/v1/pipelines"})
	if r, _ := revoked.Details["reason"].(string); !strings.Contains(r, "revoked") {
		t.Errorf("a revoked token's refusal is recorded with reason %q", r)
	}
	wantEntry(t, find(t, entries, "auth.refused", "pipeline/p"), api.Anonymous, denied, map[string]any{"reason": "invalid token", "status": 401})
	var signinDenied, signinOK auditEntry
	for _, e := range entries {
		if e.Action == "auth.signin" && e.Outcome == denied {
			signinDenied = e
		} else if e.Action == "auth.signin" {
			signinOK = e
		}
	}
	if signinDenied.Target != "user/alice" || signinOK.Target != "user/alice" {
		t.Fatalf("sign-in entries: %+v and %+v", signinDenied, signinOK)
	}
	wantEntry(t, signinDenied, api.Anonymous, denied, map[string]any{"reason": "wrong password"})
	wantEntry(t, signinOK, "alice", ok, map[string]any{"issuedToken": signed.ID})

	// Nothing secret anywhere: not a token, not a password, not even the bogus token tried.
	for name, secret := range map[string]string{"the admin token": b.token, "alice's token": tok.Token, "the sign-in token": signed.Token,
		"the bogus token": bogus, "the password": password, "the wrong password": wrong, "a secret's value": secretValue} {
		if strings.Contains(raw, secret) {
			t.Errorf("the audit log shows %s", name)
		}
	}
	if n := b.verifyAudit(st); n != int64(len(entries)) {
		t.Errorf("verified %d entries, listed %d", n, len(entries))
	}

	// Filters: an actor, a pipeline, a time.
	byAlice, _ := b.auditLog("actor=alice")
	if len(byAlice) != 4 { // two 403s, the revoked token's 401, the sign-in
		t.Errorf("alice's entries: %d, want 4: %+v", len(byAlice), byAlice)
	}
	onP, _ := b.auditLog("pipeline=p")
	for _, e := range onP {
		if e.Target != "pipeline/p" && !strings.HasPrefix(e.Target, "pipeline/p/") {
			t.Errorf("?pipeline=p lists an entry on %s", e.Target)
		}
	}
	if len(onP) < 14 {
		t.Errorf("?pipeline=p lists %d entries", len(onP))
	}
	if later, _ := b.auditLog("since=2200-01-01T00:00:00Z"); len(later) != 0 {
		t.Errorf("entries since 2200: %d", len(later))
	}
	b.wantError(b.do("GET", "/api/v1/audit?since=yesterday", "", nil), 400, "bad_request")
	b.wantError(b.do("GET", "/api/v1/audit?pipeline=p&target=user/alice", "", nil), 400, "bad_request")
}

// TestAuditFailedChangeLeavesNoEntry checks that a change refused inside its transaction
// (by the rules, or by a handler's own check) leaves no ok entry, and the chain still verifies.
func TestAuditFailedChangeLeavesNoEntry(t *testing.T) {
	t.Parallel()
	var st store.Store
	b := setup(t, withAuditLog(t, &st))
	b.put("p", matrixPipeline, 201)
	e := b.start("p", nil, 201)
	b.waitAction(e.ID, "Approve", "Gate", engine.ActionInProgress)

	b.wantError(b.do("DELETE", "/api/v1/pipelines/p", "", nil), 409, "conflict") // an execution waits
	b.call("POST", "/api/v1/executions/"+e.ID+"/stop", map[string]any{"abandon": true}, 200)
	b.waitStatus(e.ID, engine.ExecStopped)
	b.wantError(b.call("POST", "/api/v1/executions/"+e.ID+"/stop", nil, 409), 409, "conflict")               // stopped already
	b.wantError(b.call("POST", "/api/v1/executions/"+e.ID+"/stages/Build/retry", nil, 409), 409, "conflict") // Build succeeded
	b.wantError(b.do("DELETE", "/api/v1/grants?role=admin&user=admin", "", nil), 409, "conflict")            // the last admin
	b.wantError(b.do("DELETE", "/api/v1/tokens/nope", "", nil), 404, "not_found")
	b.call("POST", "/api/v1/users", map[string]any{"name": "bob"}, 201)
	b.wantError(b.call("POST", "/api/v1/users", map[string]any{"name": "bob"}, 409), 409, "conflict")
	b.wantError(b.do("PUT", "/api/v1/grants", "application/json", []byte(`{"role":"viewer","user":"nobody"}`)), 404, "not_found")

	entries, _ := b.auditLog("")
	for _, c := range []struct {
		action, target string
		want           int
	}{
		{"pipeline.delete", "", 0},
		{"execution.stop", "", 1},
		{"execution.retry", "", 0},
		{"grant.remove", "", 0},
		{"token.revoke", "", 0},
		{"user.create", "user/bob", 1},
		{"grant.add", "", 0},
	} {
		if got := count(entries, c.action, c.target, audit.OK); got != c.want {
			t.Errorf("%s ok entries: %d, want %d", c.action, got, c.want)
		}
	}
	b.verifyAudit(st)
}

// TestAuditRefusalFlood checks that a flood of refused requests from one address writes a
// bounded number of entries, and is refused all the same.
func TestAuditRefusalFlood(t *testing.T) {
	t.Parallel()
	var st store.Store
	b := setup(t, withAuditLog(t, &st))
	bogus := &bundle{t: t, url: b.url, token: api.NewToken()}
	for range 75 {
		bogus.call("GET", "/api/v1/pipelines", nil, 401)
	}
	entries, _ := b.auditLog("actor=" + api.Anonymous)
	if n := count(entries, "auth.refused", "", audit.Denied); n != 60 {
		t.Errorf("auth.refused entries after 75 refusals: %d, want 60 (the cap per address and minute)", n)
	}
	b.verifyAudit(st)
}

// TestAuditVerifyWithoutLog checks the answer of a server that keeps no audit log.
func TestAuditVerifyWithoutLog(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.wantError(b.do("GET", "/api/v1/audit/verify", "", nil), 404, "not_found")
	var page struct{ Entries []json.RawMessage }
	b.call("GET", "/api/v1/audit", nil, 200).decode(t, &page)
	if page.Entries == nil || len(page.Entries) != 0 {
		t.Errorf("entries of a server without audit log: %v", page.Entries)
	}
}
