package api_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/audit"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/job"
	"github.com/conveyorci/conveyor/internal/keyring"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/vault"
)

// The tests an attacker would run: SQL injection in every parameter, path traversal towards a
// file next to the data directory, oversized and malformed bodies, hostile YAML. Each refusal
// must be a 4xx in the API's error format, none may take the server down, and the database
// must come out intact. Routes and their parameters come from the route table and
// openapi.yaml, so a new route is probed without a change here (or the test says what it
// lacks).

// slowest is how long any one hostile request may take: generous, for a shared 2-core machine
// running every package's tests at once under -race (the 50k-alias document takes 1-2 s
// alone there, 5 s under that load); what it guards against, a parse that blows up
// exponentially or a request that hangs, takes minutes.
const slowest = 15 * time.Second

// attackEnv is a real server over a real engine whose data directory has a canary file
// next to it, with pipelines p and q, users, tokens, grants and executions to attack.
type attackEnv struct {
	url     string
	dataDir string
	canary  string // the canary file's content: no answer may ever hold it
	canaryF string // its path

	admin  *bundle
	viewer *bundle // vic, viewer of p only
	worker *bundle // a worker token of the admin
	job    *bundle // the job token of probeJob, leased by worker
	jobID  string  // probeJob's ID (slashes included, as every job ID)

	st       store.Store
	auditKey []byte

	exec    string // an execution of p waiting at Approve.Gate, Build done with a log and Out
	qExec   string // an execution of q that succeeded
	tokenID string // a token of vera's
	n       atomic.Int64
}

func newAttackEnv(t *testing.T) *attackEnv {
	t.Helper()
	root := t.TempDir()
	e := &attackEnv{dataDir: filepath.Join(root, "data"), canaryF: filepath.Join(root, "canary.txt")}
	secret := make([]byte, 16)
	rand.Read(secret)
	e.canary = "CANARY-" + hex.EncodeToString(secret)
	if err := os.WriteFile(e.canaryF, []byte(e.canary+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A second canary inside the data directory's parent under a name a traversal would try.
	if err := os.WriteFile(filepath.Join(root, "conveyor.db"), []byte(e.canary), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	eng, err := local.Open(ctx, local.Options{DataDir: e.dataDir, Workers: 4})
	if err != nil {
		t.Fatalf("open engine: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	token := api.NewToken()
	if err := eng.Store.Update(ctx, func(tx store.Tx) error {
		return tx.PutToken(ctx, "admin", api.HashToken(token), time.Now())
	}); err != nil {
		t.Fatalf("put token: %v", err)
	}
	e.st, e.auditKey = eng.Store, bytes.Repeat([]byte{9}, audit.KeySize)
	log, err := audit.New(e.auditKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.Create(filepath.Join(root, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	opts := api.Options{Loop: eng.Loop, Store: eng.Store, Artifacts: eng.Artifacts, Audit: log, Secrets: vault.New(eng.Store, ring)}
	opts.Artifacts = presigningStore(t, e.dataDir) // the same blobs, read directly too (inputs/{name}/direct)
	withLinks(t)(&opts)
	srv := httptest.NewServer(api.New(opts))
	t.Cleanup(func() {
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("engine: %v", err)
		}
		eng.Close()
	})
	e.url = srv.URL
	b := &bundle{t: t, url: srv.URL, token: token}
	e.admin = b
	b.put("p", matrixPipeline, 201)
	b.put("q", otherPipeline, 201)
	b.call("POST", "/api/v1/users", map[string]any{"name": "vic"}, 201)
	b.call("PUT", "/api/v1/grants", map[string]any{"role": "viewer", "user": "vic", "pipeline": "p"}, 201)
	e.viewer = &bundle{t: t, url: srv.URL, token: b.newToken("vic", "api", 201)}
	b.call("POST", "/api/v1/users", map[string]any{"name": "vera", "groups": []string{"devs"}}, 201)
	b.call("PUT", "/api/v1/grants", map[string]any{"role": "operator", "group": "devs", "pipeline": "q"}, 201)
	var tok struct{ ID string }
	b.call("POST", "/api/v1/tokens", map[string]any{"user": "vera", "description": "probe target"}, 201).decode(t, &tok)
	e.tokenID = tok.ID
	q := b.start("q", nil, 201)
	f := &fixture{}
	e.exec = f.waiting(b)
	b.waitStatus(q.ID, engine.ExecSucceeded)
	e.qExec = q.ID
	e.leaseProbeJob(t, ctx)
	// A cache of p for the probe job's cache routes to find (baseQuery).
	if err := job.PointCache(ctx, eng.Artifacts, &store.Job{Pipeline: "p"}, "probe", e.admin.execution(e.exec).Artifacts["Out"]); err != nil {
		t.Fatal(err)
	}
	return e
}

// workerClient sends the worker routes' probes from another loopback address: refusals are
// recorded in the audit log at a bounded rate per source address, and the job routes' many
// 401s must not use up the budget that the viewer's 403s are checked against.
var workerClient = &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
	LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}}).DialContext}}

// leaseProbeJob queues a job of a provider no in-process worker runs, for an action of the
// waiting execution, and leases it as a remote worker does: the job endpoints are probed
// with its job token.
func (e *attackEnv) leaseProbeJob(t *testing.T, ctx context.Context) {
	t.Helper()
	e.worker = &bundle{t: t, url: e.url, token: e.admin.newToken("admin", "worker", 201)}
	e.jobID = e.exec + "/Build/Make/9"
	j := &store.Job{ID: e.jobID, ExecutionID: e.exec, Pipeline: "p", Provider: "Test/Probe", State: store.JobQueued,
		Spec: engine.JobSpec{Stage: "Build", Action: "Make", Attempt: 9, Outputs: []engine.OutputSpec{{Name: "Out"}},
			Inputs: []engine.NamedArtifact{{Name: "Out", Ref: e.admin.execution(e.exec).Artifacts["Out"]}}},
		CreatedAt: time.Now()}
	if err := e.st.Update(ctx, func(tx store.Tx) error { _, err := tx.AddJob(ctx, j); return err }); err != nil {
		t.Fatal(err)
	}
	var leased struct{ ID, Token string }
	e.worker.call("POST", "/api/v1/worker/lease", map[string]any{"worker": "probe", "providers": []string{"Test/Probe"}}, 200).decode(t, &leased)
	if leased.ID != e.jobID {
		t.Fatalf("leased %q, want the probe job %q", leased.ID, e.jobID)
	}
	e.job = &bundle{t: t, url: e.url, token: leased.Token}
	// The probes take longer than a lease: heartbeat as a worker would, until the end.
	hbCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-hbCtx.Done():
				return
			case <-time.After(api.DefaultWorkerLease / 3):
			}
			req, _ := http.NewRequestWithContext(hbCtx, "POST", e.url+"/api/v1/worker/jobs/"+url.PathEscape(e.jobID)+"/heartbeat", nil)
			req.Header.Set("Authorization", "Bearer "+leased.Token)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}()
	t.Cleanup(func() { stop(); <-done })
}

// as returns who calls ri in the probes: the route's own kind of credential.
func (e *attackEnv) as(ri routeInfo) *bundle {
	switch {
	case strings.HasPrefix(ri.path, "/api/v1/worker/jobs/"):
		return e.job
	case strings.HasPrefix(ri.path, "/api/v1/worker/"):
		return e.worker
	}
	return e.admin
}

func (e *attackEnv) unique(prefix string) string { return fmt.Sprintf("%s%d", prefix, e.n.Add(1)) }

// send makes a request with a path sent as written (escapes and dots included) and reads the
// answer; an event stream is closed as soon as it opens. It fails t when the request takes
// longer than slowest or the answer holds the canary.
func (e *attackEnv) send(t *testing.T, as *bundle, method, path, contentType string, body io.Reader) answer {
	t.Helper()
	a, _ := e.sendFollow(t, as, method, path, contentType, body)
	return a
}

// sendFollow is send that also returns the path of the last request when the answer came
// after redirects ("" when none).
func (e *attackEnv) sendFollow(t *testing.T, as *bundle, method, path, contentType string, body io.Reader) (answer, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*slowest)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.url+path, body)
	if err != nil {
		t.Fatalf("%s %q: %v", method, path, err)
	}
	if as != nil && as.token != "" {
		req.Header.Set("Authorization", "Bearer "+as.token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	start := time.Now()
	client := http.DefaultClient
	if as != nil && (as == e.job || as == e.worker) {
		client = workerClient
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, short(path), err)
	}
	defer resp.Body.Close()
	var data []byte
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		if data, err = io.ReadAll(resp.Body); err != nil {
			t.Fatalf("%s %s: read: %v", method, short(path), err)
		}
	}
	if d := time.Since(start); d > slowest {
		t.Errorf("%s %s: took %v", method, short(path), d)
	}
	a := answer{resp.StatusCode, data, resp.Header}
	e.noCanary(t, method+" "+short(path), a)
	final := ""
	if resp.Request != req {
		final = resp.Request.URL.EscapedPath()
	}
	return a, final
}

func (e *attackEnv) noCanary(t *testing.T, what string, a answer) {
	t.Helper()
	if bytes.Contains(a.body, []byte(e.canary)) {
		t.Errorf("%s: the answer holds the content of %s, outside the data directory", what, e.canaryF)
	}
	for k, vs := range a.header {
		for _, v := range vs {
			if strings.Contains(v, e.canary) {
				t.Errorf("%s: header %s holds the canary", what, k)
			}
		}
	}
}

// refused checks that a is a client error in the API's format: a 4xx (one of want, when
// given) with a JSON {"error": {"code", "message"}}.
func refused(t *testing.T, what string, a answer, want ...int) {
	t.Helper()
	if a.status < 400 || a.status > 499 || len(want) > 0 && !slices.Contains(want, a.status) {
		t.Errorf("%s: status %d, want a 4xx %v: %s", what, a.status, want, short(string(a.body)))
		return
	}
	var e apiErr
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: status %d with Content-Type %q, want application/json", what, a.status, ct)
	}
	if err := json.Unmarshal(a.body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Errorf("%s: status %d without the API's error body: %s", what, a.status, short(string(a.body)))
	}
}

// short abbreviates what a failure quotes.
func short(s string) string {
	if len(s) > 160 {
		return fmt.Sprintf("%s...(%d bytes)", s[:160], len(s))
	}
	return s
}

// The route table and openapi.yaml.

// routeInfo is one served route with what openapi.yaml documents of it.
type routeInfo struct {
	pattern, method, path string
	pathParams            []string
	query                 []string          // documented query parameters
	bodyType              string            // media type of the documented request body, "" without one
	props                 map[string]string // JSON body properties → their schema type
}

func attackRoutes(t *testing.T) []routeInfo {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatalf("parse openapi.yaml: %v", err)
	}
	resolve := func(v any) map[string]any {
		m, _ := v.(map[string]any)
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		cur := any(doc)
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			cur = cur.(map[string]any)[part]
		}
		m, _ = cur.(map[string]any)
		return m
	}
	paths, _ := doc["paths"].(map[string]any)
	var out []routeInfo
	for _, pattern := range api.Patterns() {
		method, path, _ := strings.Cut(pattern, " ")
		ri := routeInfo{pattern: pattern, method: method, path: path}
		for _, seg := range strings.Split(path, "/") {
			if strings.HasPrefix(seg, "{") {
				ri.pathParams = append(ri.pathParams, strings.Trim(seg, "{}."))
			}
		}
		item, _ := paths[path].(map[string]any)
		op := resolve(item[strings.ToLower(method)])
		params, _ := op["parameters"].([]any)
		for _, p := range params {
			if pm := resolve(p); pm["in"] == "query" {
				ri.query = append(ri.query, pm["name"].(string))
			}
		}
		if rb := resolve(op["requestBody"]); rb != nil {
			content, _ := rb["content"].(map[string]any)
			for _, mt := range []string{"application/yaml", "application/json"} {
				if _, ok := content[mt]; ok && ri.bodyType == "" {
					ri.bodyType = mt
				}
			}
			if c, ok := content["application/json"].(map[string]any); ok && ri.bodyType == "application/json" {
				schema := resolve(c["schema"])
				props, _ := schema["properties"].(map[string]any)
				ri.props = map[string]string{}
				for name, p := range props {
					typ, _ := resolve(p)["type"].(string)
					ri.props[name] = typ
				}
			}
		}
		out = append(out, ri)
	}
	return out
}

// value returns the value of a path parameter that names something real, so that a probe
// in another parameter gets past this one.
func (e *attackEnv) value(ri routeInfo, param string) (string, bool) {
	switch ri.pattern + " " + param {
	case "GET /api/v1/executions/{id}/artifacts/{name} name":
		return "Out", true
	case "DELETE /api/v1/tokens/{id} id":
		return e.tokenID, true
	case "DELETE /api/v1/groups/{group}/members/{user} user":
		return "vic", true // not vera, whom the PUT probes add to groups the DELETE probes name
	}
	if strings.HasSuffix(ri.path, "/approval") {
		switch param {
		case "stage":
			return "Approve", true
		case "action":
			return "Gate", true
		}
	}
	if strings.HasPrefix(ri.path, "/api/v1/worker/jobs/") {
		switch param {
		case "id":
			return e.jobID, true
		case "name":
			return "Out", true
		}
	}
	switch param {
	case "name":
		return "p", true
	case "id":
		return e.exec, true
	case "stage":
		return "Build", true
	case "action":
		return "Make", true
	case "group":
		return "devs", true
	case "secret":
		return "s1", true
	case "user":
		return "vera", true
	case "category":
		return "Deploy", true
	case "provider":
		return "Attack", true
	}
	return "", false
}

// baseQuery is the query a route needs besides the parameter probed.
func baseQuery(ri routeInfo) url.Values {
	if ri.pattern == "DELETE /api/v1/grants" {
		return url.Values{"role": {"viewer"}, "user": {"vera"}, "pipeline": {"nosuchpipeline"}}
	}
	if strings.HasSuffix(ri.pattern, "/worker/jobs/{id}/cache") {
		return url.Values{"key": {"probe"}}
	}
	return url.Values{}
}

// baseBody is a body that a route would take, so that a probe in a parameter reaches what
// comes after the body's checks: its content type and data ("" and nil: none).
func (e *attackEnv) baseBody(ri routeInfo) (string, []byte) {
	var v any
	switch ri.pattern {
	case "PUT /api/v1/pipelines/{name}":
		return "application/yaml", []byte(matrixPipeline)
	case "PUT /api/v1/pipelines/{name}/stages/{stage}/transition":
		v = map[string]any{"enabled": true, "reason": "probe"}
	case "POST /api/v1/pipelines/{name}/stages/{stage}/rollback":
		v = map[string]any{"targetExecutionId": e.qExec}
	case "POST /api/v1/executions/{id}/stop":
		v = map[string]any{"reason": "probe"}
	case "PUT /api/v1/pipelines/{name}/link":
		v = map[string]any{"repository": filepath.Join(e.dataDir, "no-such-repository")}
	case "POST /api/v1/executions/{id}/allow":
		v = map[string]any{"allowed": false, "comment": "probe"}
	case "POST /api/v1/executions/{id}/stages/{stage}/actions/{action}/approval":
		v = map[string]any{"approved": false, "comment": "probe"}
	case "POST /api/v1/auth/signin":
		v = map[string]any{"user": "vera", "password": "not her password"}
	case "POST /api/v1/users":
		v = map[string]any{"name": e.unique("user")}
	case "POST /api/v1/tokens":
		v = map[string]any{"user": "vera", "description": "probe"}
	case "PUT /api/v1/grants":
		v = map[string]any{"role": "viewer", "user": "vera", "pipeline": e.unique("probe")}
	default:
		if ri.bodyType != "application/json" {
			return "", nil
		}
		v = map[string]any{}
	}
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return "application/json", data
}

// injections are the values every parameter is probed with.
var injections = []string{
	`' OR '1'='1`,
	`' OR 1=1 --`,
	`"; DROP TABLE executions; --`,
	`'); DELETE FROM users; --`,
	`1 UNION SELECT name, password_hash, created_at FROM users --`,
	`1; SELECT load_extension('x')`,
	`%27`, `%2527`, `%00`,
	`%`, `_`, `*`, `\`, `"`, `'`, `;`,
	"a\x00b",
	"\r\nX-Injected: 1",
	"../../../../etc/passwd",
	"-1", "0", "99999999999999999999999", "1e9", "0x10",
	"ünïcödé ☃ 𝔘𝔫𝔦", "\u202egnp.exe", "\xff\xfe\xfd",
	strings.Repeat("A", 16<<10),
	`{"$ne": null}`, `${jndi:ldap://x/a}`, `{{7*7}}`, `#{variables.MODE}`,
}

// filters are query parameters that select among what a list holds: a probe may only
// narrow the list, to nothing, never widen it.
var filters = map[string]bool{"status": true, "succeededInStage": true, "user": true, "group": true,
	"pipeline": true, "actor": true, "target": true, "since": true}

// items counts the elements of every JSON array in body, and whether it is JSON.
func items(body []byte) (int, bool) {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return 0, false
	}
	var count func(any) int
	count = func(v any) int {
		n := 0
		switch x := v.(type) {
		case []any:
			n += len(x)
			for _, y := range x {
				n += count(y)
			}
		case map[string]any:
			for _, y := range x {
				n += count(y)
			}
		}
		return n
	}
	return count(v), true
}

// onlyMatching reports whether every element of every list in the JSON body mentions value
// in one of its strings: what a list filtered by value may hold (nothing, in most cases;
// an audit entry about the very request that used value as a name, say).
func onlyMatching(body []byte, value string) bool {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return false
	}
	var mentions func(any) bool
	mentions = func(v any) bool {
		switch x := v.(type) {
		case string:
			return strings.Contains(x, value)
		case []any:
			return slices.ContainsFunc(x, mentions)
		case map[string]any:
			for _, y := range x {
				if mentions(y) {
					return true
				}
			}
		}
		return false
	}
	top, ok := v.(map[string]any)
	if !ok {
		return false
	}
	for _, y := range top {
		if list, ok := y.([]any); ok {
			for _, el := range list {
				if !mentions(el) {
					return false
				}
			}
		}
	}
	return true
}

// dbState is what the store's file holds: its tables and the rows of those with seeded data.
type dbState struct {
	tables []string
	rows   map[string]int
}

// seeded are the tables whose rows the tests make before the probes.
var seeded = []string{"pipeline_versions", "executions", "stage_locks", "users", "group_members", "grants", "tokens"}

// snapshot opens the store's file alongside the server (read-only), checks its integrity and
// returns its tables and row counts.
func (e *attackEnv) snapshot(t *testing.T) dbState {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(e.dataDir, "conveyor.db")+"?_pragma=query_only(1)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("PRAGMA integrity_check: %q, %v", check, err)
	}
	s := dbState{rows: map[string]int{}}
	rows, err := db.Query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		s.tables = append(s.tables, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	for _, table := range seeded {
		var n int
		if err := db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
			t.Fatalf("count %s: %v", table, err)
		}
		s.rows[table] = n
	}
	return s
}

// TestAttackInjection sends SQL (and template, header and path) injection payloads in every
// path parameter and every documented query parameter of every route, as a global admin and
// as a viewer of one pipeline. None may get a 5xx; a refusal is the API's JSON error; a list
// filtered by a payload is empty; and the database keeps its tables, its rows and its
// integrity.
func TestAttackInjection(t *testing.T) {
	t.Parallel()
	e := newAttackEnv(t)
	before := e.snapshot(t)
	if before.rows["executions"] < 2 || before.rows["tokens"] < 3 || before.rows["grants"] < 3 {
		t.Fatalf("not enough seeded data to tell a filter that lets everything through: %v", before.rows)
	}
	probed := 0
	var mu sync.Mutex
	accepted := map[string]int{} // by route: the probes a mutating route took
	t.Run("probes", func(t *testing.T) {
		for _, ri := range attackRoutes(t) {
			if len(ri.pathParams) == 0 && len(ri.query) == 0 {
				continue
			}
			base := map[string]string{}
			for _, p := range ri.pathParams {
				v, ok := e.value(ri, p)
				if !ok {
					t.Errorf("route %s: no value for path parameter {%s}: add one to attackEnv.value so it is probed", ri.pattern, p)
				}
				base[p] = v
			}
			probed++
			t.Run(ri.pattern, func(t *testing.T) {
				t.Parallel()
				if n := e.probeRoute(t, ri, base); n > 0 {
					mu.Lock()
					accepted[ri.pattern] = n
					mu.Unlock()
				}
			})
		}
	})
	if probed < 15 {
		t.Errorf("only %d routes with parameters probed", probed)
	}
	after := e.snapshot(t)
	if !slices.Equal(before.tables, after.tables) {
		t.Errorf("tables changed: %v, then %v", before.tables, after.tables)
	}
	// A group name is anything well formed: adding vera to one is what the route is for, and
	// each such probe adds one membership. Nothing else may change what was seeded.
	added := map[string]int{"group_members": accepted["PUT /api/v1/groups/{group}/members/{user}"]}
	for _, table := range seeded {
		if after.rows[table] != before.rows[table]+added[table] {
			t.Errorf("table %s: %d rows before the probes, %d after, want %d (mutating routes that took a probe: %v)",
				table, before.rows[table], after.rows[table], before.rows[table]+added[table], accepted)
		}
	}
	// What was seeded still reads back through the API.
	var list struct{ Pipelines []struct{ Name string } }
	e.admin.call("GET", "/api/v1/pipelines", nil, 200).decode(t, &list)
	if len(list.Pipelines) != 2 {
		t.Errorf("pipelines after the probes: %+v", list.Pipelines)
	}
	if x := e.admin.execution(e.exec); x.Status != engine.ExecInProgress {
		t.Errorf("execution %s after the probes: %s", e.exec, x.Status)
	}
	// The viewer's refusals are in the audit log, whose chain holds.
	if n := len(e.auditEntries(t, "auth.forbidden")); n == 0 {
		t.Errorf("no auth.forbidden entry in the audit log after the viewer's probes")
	}
}

// auditEntries verifies the audit log's chain and returns its entries of action.
func (e *attackEnv) auditEntries(t *testing.T, action string) []*store.AuditEntry {
	t.Helper()
	ctx := context.Background()
	var out []*store.AuditEntry
	err := e.st.View(ctx, func(rd store.Reader) error {
		if _, err := audit.Verify(ctx, rd, e.auditKey); err != nil {
			return err
		}
		list, err := rd.AuditEntries(ctx, store.AuditFilter{})
		for _, en := range list {
			if en.Action == action {
				if en.Outcome != audit.Denied {
					t.Errorf("audit entry %d (%s): outcome %q, want %q", en.Seq, action, en.Outcome, audit.Denied)
				}
				out = append(out, en)
			}
		}
		return err
	})
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	return out
}

// TestAttackForgedTokens presents forged, mangled and revoked credentials: each is a 401
// with a challenge and the API's error, recorded in the audit log without the token sent.
func TestAttackForgedTokens(t *testing.T) {
	t.Parallel()
	e := newAttackEnv(t)
	good := e.admin.token
	var revoked struct{ Token, ID string }
	e.admin.call("POST", "/api/v1/tokens", map[string]any{"user": "vera"}, 201).decode(t, &revoked)
	e.admin.call("DELETE", "/api/v1/tokens/"+revoked.ID, nil, 200)
	forged := []string{
		"", "Bearer", "Bearer ", "Bearer ' OR '1'='1", "Bearer cvy_' OR 1=1 --", "Bearer %00",
		"Bearer " + api.TokenPrefix, "Bearer " + api.TokenPrefix + strings.Repeat("A", 43),
		"Bearer " + good[:len(good)-1], "Bearer " + good + "x", "Bearer " + strings.ToUpper(good),
		"Bearer " + hex.EncodeToString(api.HashToken(good)), "Bearer " + good + " " + good,
		"bearer " + good, "Basic " + good, "Token " + good, good, "Bearer\t" + good,
		"Bearer " + revoked.Token, "Bearer " + strings.Repeat("x", 60<<10),
	}
	for _, h := range forged {
		req, err := http.NewRequest("GET", e.url+"/api/v1/whoami", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", h)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("Authorization %q: %v", short(h), err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		a := answer{resp.StatusCode, data, resp.Header}
		refused(t, fmt.Sprintf("Authorization %q", short(h)), a, 401)
		if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("Authorization %q: WWW-Authenticate %q", short(h), resp.Header.Get("WWW-Authenticate"))
		}
	}
	entries := e.auditEntries(t, "auth.refused")
	if len(entries) == 0 {
		t.Fatal("no auth.refused entry in the audit log")
	}
	revokedSeen := false
	for _, en := range entries {
		for _, secret := range []string{good, revoked.Token, good[len(api.TokenPrefix):]} {
			if bytes.Contains(en.Details, []byte(secret)) || strings.Contains(en.Actor, secret) {
				t.Errorf("audit entry %d holds a token sent: %s", en.Seq, short(string(en.Details)))
			}
		}
		revokedSeen = revokedSeen || en.Actor == "vera"
	}
	if !revokedSeen {
		t.Errorf("the use of vera's revoked token is not recorded with vera as actor")
	}
	// The good token still works, spaces around it included.
	if a := e.send(t, &bundle{token: " " + good + " "}, "GET", "/api/v1/whoami", "", nil); a.status != 200 {
		t.Errorf("the good token with spaces around: status %d: %s", a.status, a.body)
	}
}

// pathOf renders the route's path with the parameter values given, path-escaped.
func pathOf(ri routeInfo, values map[string]string) string {
	segs := strings.Split(ri.path, "/")
	for i, seg := range segs {
		if strings.HasPrefix(seg, "{") {
			segs[i] = url.PathEscape(values[strings.Trim(seg, "{}.")])
		}
	}
	return strings.Join(segs, "/")
}

// rawQueries are query values sent as written, not escaped: a ';' separator, bad escapes.
// net/http drops a pair it cannot read, so a filter so written must not silently vanish.
var rawQueries = []string{"x;y", "%zz", "%", "%%27", "%27%20OR%20%271%27=%271", "a&", "=x"}

// probeRoute sends every payload in every path and query parameter of ri and returns how
// many probes a mutating route accepted (a 2xx).
func (e *attackEnv) probeRoute(t *testing.T, ri routeInfo, base map[string]string) int {
	callers := []*bundle{e.as(ri)}
	if ri.method == "GET" && e.as(ri) == e.admin {
		callers = append(callers, e.viewer)
	}
	// The answer without a probe, for GET routes, before and after the probes (a list such as
	// the audit log grows meanwhile): a probe in a parameter that is no filter may answer the
	// same, never more.
	type sized struct {
		what         string
		items, bytes int
	}
	var answered []sized
	baseline := func() (int, int) {
		q := baseQuery(ri).Encode()
		a := e.send(t, e.as(ri), "GET", pathOf(ri, base)+"?"+q, "", nil)
		if a.status != 200 {
			t.Fatalf("baseline %s: status %d: %s", pathOf(ri, base), a.status, short(string(a.body)))
		}
		n, _ := items(a.body)
		return n, len(a.body)
	}
	if ri.method == "GET" {
		baseline()
		defer func() {
			maxItems, maxBytes := baseline()
			for _, a := range answered {
				if a.items > maxItems || a.bytes > maxBytes {
					t.Errorf("%s: %d items in %d bytes, more than the %d in %d bytes without the probe", a.what, a.items, a.bytes, maxItems, maxBytes)
				}
			}
		}()
	}
	accepted := 0
	check := func(what string, filter bool, value string, a answer) {
		t.Helper()
		if strings.Contains(strings.Join(a.header.Values("X-Injected"), ""), "1") {
			t.Errorf("%s: a header was injected", what)
		}
		if a.status >= 400 {
			refused(t, what, a)
			return
		}
		if a.status >= 300 {
			t.Errorf("%s: status %d", what, a.status)
			return
		}
		if ri.method != "GET" {
			accepted++
			return
		}
		if a.body == nil { // an event stream, closed at once
			return
		}
		n, isJSON := items(a.body)
		if filter && isJSON && !onlyMatching(a.body, value) {
			t.Errorf("%s: filtered by a payload, the list holds items that do not mention it: %s", what, short(string(a.body)))
		}
		answered = append(answered, sized{what, n, len(a.body)})
	}
	for _, as := range callers {
		who := "admin"
		if as == e.viewer {
			who = "viewer"
		}
		query := func(qp, raw string) string {
			q := baseQuery(ri)
			q.Del(qp)
			if enc := q.Encode(); enc != "" {
				return enc + "&" + url.QueryEscape(qp) + "=" + raw
			}
			return url.QueryEscape(qp) + "=" + raw
		}
		payloads := injections
		if as == e.viewer {
			payloads = injections[:8] // the viewer's probes are about access, the admin's about everything
		}
		for _, payload := range payloads {
			for _, p := range ri.pathParams {
				values := maps.Clone(base)
				values[p] = payload
				path := pathOf(ri, values)
				if q := baseQuery(ri).Encode(); q != "" {
					path += "?" + q
				}
				ct, body := e.baseBody(ri)
				a := e.send(t, as, ri.method, path, ct, bytes.NewReader(body))
				check(fmt.Sprintf("%s: %s {%s}=%q", who, ri.pattern, p, short(payload)), false, payload, a)
			}
			for _, qp := range ri.query {
				ct, body := e.baseBody(ri)
				a := e.send(t, as, ri.method, pathOf(ri, base)+"?"+query(qp, url.QueryEscape(payload)), ct, bytes.NewReader(body))
				check(fmt.Sprintf("%s: %s ?%s=%q", who, ri.pattern, qp, short(payload)), filters[qp], payload, a)
			}
		}
		for _, raw := range rawQueries {
			for _, qp := range ri.query {
				ct, body := e.baseBody(ri)
				a := e.send(t, as, ri.method, pathOf(ri, base)+"?"+query(qp, raw), ct, bytes.NewReader(body))
				value, err := url.QueryUnescape(raw)
				if err != nil {
					value = raw
				}
				check(fmt.Sprintf("%s: %s ?%s=%s (raw)", who, ri.pattern, qp, raw), filters[qp], value, a)
			}
		}
	}
	return accepted
}

// TestAttackBodyStrings sends the injection payloads in every string property of every
// documented JSON body. Whatever a route makes of them (a refusal, or a value stored as
// given), no answer is a 5xx and no row seeded before is lost.
func TestAttackBodyStrings(t *testing.T) {
	t.Parallel()
	e := newAttackEnv(t)
	before := e.snapshot(t)
	t.Run("probes", func(t *testing.T) {
		for _, ri := range attackRoutes(t) {
			if ri.bodyType != "application/json" {
				continue
			}
			t.Run(ri.pattern, func(t *testing.T) {
				t.Parallel()
				e.probeBody(t, ri)
			})
		}
	})
	after := e.snapshot(t)
	if !slices.Equal(before.tables, after.tables) {
		t.Errorf("tables changed: %v, then %v", before.tables, after.tables)
	}
	for _, table := range seeded {
		if after.rows[table] < before.rows[table] {
			t.Errorf("table %s: %d rows before the probes, %d after", table, before.rows[table], after.rows[table])
		}
	}
	// The stored payloads read back as sent: a transition's reason, verbatim.
	reason := `'); DROP TABLE stage_locks; -- ` + "\x00ü"
	e.admin.call("PUT", "/api/v1/pipelines/p/stages/Deploy/transition", map[string]any{"enabled": false, "reason": reason}, 200)
	var st struct {
		Stages []struct {
			Name       string
			Transition struct{ Reason string }
		}
	}
	e.admin.call("GET", "/api/v1/pipelines/p/state", nil, 200).decode(t, &st)
	i := slices.IndexFunc(st.Stages, func(s struct {
		Name       string
		Transition struct{ Reason string }
	}) bool {
		return s.Name == "Deploy"
	})
	if i < 0 || st.Stages[i].Transition.Reason != reason {
		t.Errorf("transition reason read back: %+v, want %q", st.Stages, reason)
	}
}

// probeBody sends the payloads in each string property of ri's body.
func (e *attackEnv) probeBody(t *testing.T, ri routeInfo) {
	base := map[string]string{}
	for _, p := range ri.pathParams {
		base[p], _ = e.value(ri, p)
	}
	for prop, typ := range ri.props {
		if typ != "string" {
			continue
		}
		for _, payload := range injections {
			_, data := e.baseBody(ri)
			var body map[string]any
			if err := json.Unmarshal(data, &body); err != nil {
				t.Fatal(err)
			}
			body[prop] = payload
			data, _ = json.Marshal(body)
			path := pathOf(ri, base)
			if q := baseQuery(ri).Encode(); q != "" {
				path += "?" + q
			}
			a := e.send(t, e.as(ri), ri.method, path, "application/json", bytes.NewReader(data))
			what := fmt.Sprintf("%s: %q: %q", ri.pattern, prop, short(payload))
			if a.status >= 400 {
				refused(t, what, a)
			} else if a.status >= 300 {
				t.Errorf("%s: status %d", what, a.status)
			}
		}
	}
}

// TestAttackTraversal asks for artifacts, logs, pipelines and executions by names that climb
// out of the data directory, raw, escaped, double-escaped, absolute and with backslashes and
// NULs. Each is a 4xx, and no answer holds the canary file next to the data directory.
func TestAttackTraversal(t *testing.T) {
	t.Parallel()
	e := newAttackEnv(t)
	abs := e.canaryF
	rel := "../../canary.txt"
	names := []string{
		rel, "../" + rel, "../../../../../../../../" + abs,
		"..%2f..%2fcanary.txt", "..%2F..%2F..%2Fcanary.txt",
		"%2e%2e/%2e%2e/canary.txt", "%2e%2e%2f%2e%2e%2fcanary.txt",
		"%252e%252e%252fcanary.txt", "..%252f..%252fcanary.txt",
		"..%5c..%5ccanary.txt", `..\..\canary.txt`,
		url.PathEscape(abs), url.PathEscape(filepath.Join(e.dataDir, "conveyor.db")),
		"file:" + url.PathEscape(abs), "Out%00.tar.zst", "Out%00/../../canary.txt",
		"....//....//canary.txt", "..;/..;/canary.txt", "%c0%ae%c0%ae/%c0%ae%c0%ae/canary.txt",
		"Out/../../../canary.txt", "./Out", "Out/", "sha256:" + strings.Repeat("0", 64),
		"..", ".", "%2e%2e", "%2e", "Out%2f..%2f..", "%2fOut",
	}
	x := "/api/v1/executions/" + e.exec
	var targets []string
	for _, n := range names {
		targets = append(targets,
			x+"/artifacts/"+n,
			x+"/stages/"+n+"/actions/Make/log",
			x+"/stages/Build/actions/"+n+"/log",
			x+"/stages/Build/actions/"+n+"/log?follow=true",
			"/api/v1/executions/"+n,
			"/api/v1/executions/"+n+"/artifacts/Out",
			"/api/v1/pipelines/"+n,
			"/api/v1/pipelines/"+n+"/versions",
			"/api/v1/pipelines/"+n+"/state",
			"/api/v1/pipelines/p?version="+url.QueryEscape(n),
			x+"/stages/Build/actions/Make/log?attempt="+url.QueryEscape(n),
		)
	}
	redirects := 0
	for _, path := range targets {
		for _, as := range []*bundle{e.admin, e.viewer} {
			a, final := e.sendFollow(t, as, "GET", path, "", nil)
			what := "GET " + short(path)
			switch {
			case final == "":
				refused(t, what, a)
			case slices.Contains(strings.Split(final, "/"), ".."):
				t.Errorf("%s: redirected to %s", what, final)
			case a.status >= 500:
				t.Errorf("%s: redirected to %s: status %d", what, final, a.status)
			case a.status >= 400 && strings.HasPrefix(final, "/api/"):
				refused(t, what+" → "+final, a)
			default:
				// Dot segments sent raw: the HTTP server cleans the path and redirects to the
				// resource it names (inside the API, under the same access checks).
				redirects++
			}
		}
	}
	if redirects == 0 {
		t.Errorf("no raw dot segment was redirected: are they still sent as written?")
	}
	// The real artifact and log answer, so the refusals above are not for another reason.
	if a := e.send(t, e.admin, "GET", x+"/artifacts/Out", "", nil); a.status != 200 || len(a.body) == 0 {
		t.Errorf("artifact Out: status %d, %d bytes", a.status, len(a.body))
	}
	if a := e.send(t, e.admin, "GET", x+"/stages/Build/actions/Make/log", "", nil); a.status != 200 {
		t.Errorf("log of Build.Make: status %d", a.status)
	}
	// A pipeline file cannot name its artifacts, stages or actions so that they climb out.
	for _, field := range []string{"- name: Out", "- name: Make", "- name: Build"} {
		for _, n := range []string{"../../canary", `..\\canary`, "/etc/passwd", "a/b", `x\u0000y`} {
			doc := strings.Replace(matrixPipeline, field, "- name: \""+n+`"`, 1)
			a := e.send(t, e.admin, "PUT", "/api/v1/pipelines/p", "application/yaml", strings.NewReader(doc))
			refused(t, fmt.Sprintf("pipeline with %s renamed %q", field, n), a, 400)
		}
	}
	a := e.send(t, e.admin, "PUT", "/api/v1/pipelines/..%2f..%2fx", "application/yaml", strings.NewReader(strings.Replace(otherPipeline, "name: q", "name: ../../x", 1)))
	refused(t, "pipeline named ../../x", a, 400)
	if entries, err := os.ReadDir(filepath.Dir(e.dataDir)); err != nil || len(entries) != 4 {
		t.Errorf("next to the data directory: %v, %v (want data, master.key, canary.txt and conveyor.db only)", entries, err)
	}
}

// bodyCase is one hostile body: what to send and which statuses may answer it.
type bodyCase struct {
	name string
	ct   string
	body func() io.Reader
	want []int // nil: any 4xx, or a 2xx (a body a route may take)
}

func reader(s string) func() io.Reader { return func() io.Reader { return strings.NewReader(s) } }

// jsonCases are the hostile bodies of a JSON route whose properties are props.
func jsonCases(props map[string]string) []bodyCase {
	big := `{"x":"` + strings.Repeat("a", api.MaxBody) + `"}`
	deep := strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)
	cases := []bodyCase{
		{"over MaxBody", "application/json", reader(big), []int{413}},
		{"over MaxBody, chunked", "application/json", func() io.Reader {
			return io.MultiReader(strings.NewReader(big)) // no length: sent chunked
		}, []int{413}},
		{"endless, chunked", "application/json", func() io.Reader {
			return io.LimitReader(spaces{}, 64<<20)
		}, []int{413}},
		{"invalid JSON", "application/json", reader(`{"`), []int{400}},
		{"truncated JSON", "application/json", reader(`{"a": [1, 2`), []int{400}},
		{"two values", "application/json", reader(`{} {}`), []int{400}},
		{"trailing garbage", "application/json", reader(`{}x`), []int{400}},
		{"array", "application/json", reader(`[]`), []int{400}},
		{"string", "application/json", reader(`"x"`), []int{400}},
		{"number", "application/json", reader(`1e999`), []int{400}},
		{"unknown field", "application/json", reader(`{"__proto__": {"admin": true}}`), []int{400}},
		{"100k levels deep", "application/json", reader(deep), []int{400}},
		{"100k levels deep in a field", "application/json", reader(`{"x":` + deep + `}`), []int{400}},
		{"text/plain", "text/plain", reader(`{}`), []int{415}},
		{"form", "application/x-www-form-urlencoded", reader(`a=b`), []int{415}},
		{"multipart", "multipart/form-data; boundary=x", reader("--x--\r\n"), []int{415}},
		{"xml", "application/xml", reader(`<a/>`), []int{415}},
		{"bad content type", "application/json; charset", reader(`{}`), []int{415}},
		{"invalid UTF-8", "application/json", reader("{\"\xff\": 1}"), []int{400}},
		{"empty", "", reader(""), nil},
		{"empty object", "application/json", reader("{}"), nil},
		{"null", "application/json", reader("null"), nil},
		{"whitespace", "application/json", reader(" \n\t "), nil},
	}
	for prop, typ := range props {
		var wrong []string
		switch typ {
		case "string":
			wrong = []string{`12`, `{}`, `[]`, `true`}
		case "boolean":
			wrong = []string{`"true"`, `1`, `{}`}
		case "integer":
			wrong = []string{`"1"`, `1.5`, `1e400`, `123456789012345678901234567890`, `-99999999999999999999`, `{}`}
		case "object":
			wrong = []string{`[]`, `"x"`, `{"a": 1}`, `{"a": {"b": "c"}}`}
		case "array":
			wrong = []string{`{}`, `"x"`, `[1]`, `[[]]`}
		}
		for _, w := range wrong {
			cases = append(cases, bodyCase{fmt.Sprintf("%s: %s", prop, w), "application/json", reader(`{"` + prop + `": ` + w + `}`), []int{400}})
		}
		// Duplicate keys: whatever the route makes of them, not a 5xx.
		cases = append(cases, bodyCase{prop + " twice", "application/json", reader(`{"` + prop + `": null, "` + prop + `": null}`), nil})
	}
	return cases
}

// spaces is an endless reader of spaces, a body that never ends.
type spaces struct{}

func (spaces) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// TestAttackBodies sends every documented request body hostile bodies: over MaxBody (413,
// with and without a length), malformed, of the wrong types, 100k levels deep, with huge
// numbers, duplicate keys, the wrong Content-Type (415), empty and truncated. Each answer
// is the API's 4xx error (or a 2xx for a body the route may take), quickly.
func TestAttackBodies(t *testing.T) {
	t.Parallel()
	e := newAttackEnv(t)
	n := 0
	for _, ri := range attackRoutes(t) {
		if ri.bodyType == "" {
			continue
		}
		n++
		base := map[string]string{}
		for _, p := range ri.pathParams {
			base[p], _ = e.value(ri, p)
		}
		path := pathOf(ri, base)
		var cases []bodyCase
		switch ri.bodyType {
		case "application/json":
			cases = jsonCases(ri.props)
		case "application/octet-stream", "application/zstd": // a log chunk, an artifact archive
			cases = []bodyCase{
				{"over MaxBody, or not an archive", ri.bodyType, reader(strings.Repeat("a", api.MaxBody+1)), []int{413, 422}},
				{"endless, chunked", ri.bodyType, func() io.Reader { return io.LimitReader(spaces{}, 64<<20) }, []int{413, 422}},
				{"garbage", ri.bodyType, reader("\x28\xb5\x2f\xfd garbage"), nil},
			}
		default: // a pipeline file
			cases = []bodyCase{
				{"over MaxBody", ri.bodyType, reader("# " + strings.Repeat("a", api.MaxBody)), []int{413}},
				{"endless, chunked", ri.bodyType, func() io.Reader { return io.LimitReader(spaces{}, 64<<20) }, []int{413}},
				{"invalid YAML", ri.bodyType, reader("name: [p\n"), []int{400}},
				{"tabs", ri.bodyType, reader("name: p\n\tstages: []\n"), []int{400}},
				{"empty", ri.bodyType, reader(""), []int{400}},
				{"no content type", "", reader(matrixPipeline), []int{415}},
				{"text/plain", "text/plain", reader(matrixPipeline), []int{415}},
				{"bad content type", "application/yaml; =", reader(matrixPipeline), []int{415}},
				{"invalid JSON as JSON", "application/json", reader(`{"name": "p",`), []int{400}},
				{"invalid UTF-8", ri.bodyType, reader("name: \xff\xfe\n"), []int{400}},
				{"two documents", ri.bodyType, reader(matrixPipeline + "---\n" + matrixPipeline), []int{400}},
				{"huge number", ri.bodyType, reader(strings.Replace(matrixPipeline, "executionMode: PARALLEL", "executionMode: PARALLEL\nmaxConcurrency: 1e400", 1)), []int{400}},
				{"huge integer", ri.bodyType, reader(strings.Replace(matrixPipeline, "executionMode: PARALLEL", "executionMode: PARALLEL\nmaxConcurrency: 123456789012345678901234567890", 1)), []int{400}},
				{"duplicate keys", ri.bodyType, reader("name: p\n" + matrixPipeline), []int{400}},
				{"wrong types", ri.bodyType, reader("name: [p]\nstages: {a: 1}\n"), []int{400}},
			}
		}
		for _, c := range cases {
			what := fmt.Sprintf("%s: %s", ri.pattern, c.name)
			a := e.send(t, e.as(ri), ri.method, path, c.ct, c.body())
			switch {
			case c.want != nil:
				refused(t, what, a, c.want...)
			case a.status >= 400:
				refused(t, what, a)
			case a.status >= 300:
				t.Errorf("%s: status %d", what, a.status)
			}
			if a.status == 413 {
				var ae apiErr
				if json.Unmarshal(a.body, &ae) == nil && ae.Error.Code != "too_large" {
					t.Errorf("%s: 413 with code %q, want too_large", what, ae.Error.Code)
				}
			}
		}
		// A body cut short: the client promises more than it sends, then stops.
		e.truncated(t, ri, path)
	}
	if n < 8 {
		t.Errorf("only %d routes with a body", n)
	}
}

// truncated sends a request whose body ends before its Content-Length, over a raw
// connection, and checks the answer is a 400 (or no answer at all, the connection closed).
func (e *attackEnv) truncated(t *testing.T, ri routeInfo, path string) {
	t.Helper()
	u, _ := url.Parse(e.url)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(slowest))
	ct := ri.bodyType
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: 1000\r\n\r\n{\"a",
		ri.method, path, u.Host, e.as(ri).token, ct)
	conn.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return // the server may just close the connection
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	refused(t, ri.pattern+": truncated body", answer{resp.StatusCode, data, resp.Header}, 400)
}

// hostileYAML are pipeline files built to exhaust a YAML reader.
func hostileYAML() map[string]string {
	laughs := `a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]` + "\n"
	for c := 'b'; c <= 'z'; c++ {
		p := "*" + string(c-1)
		laughs += fmt.Sprintf("%c: &%c [%s,%s,%s,%s,%s,%s,%s,%s,%s]\n", c, c, p, p, p, p, p, p, p, p, p)
	}
	merge := "x0: &x0 {a: 1}\n"
	for i := 1; i < 30; i++ {
		merge += fmt.Sprintf("x%d: &x%d {<<: *x%d, b: *x%d, c: *x%d}\n", i, i, i-1, i-1, i-1)
	}
	var block strings.Builder
	block.WriteString("name: p\nstages:\n")
	for i := range 1400 {
		block.WriteString(strings.Repeat(" ", i+2) + "- a:\n")
	}
	return map[string]string{
		"billion laughs":             laughs + "name: p\n",
		"billion laughs in stages":   laughs + "name: p\nstages: *z\n",
		"billion laughs in commands": strings.Replace(matrixPipeline, `commands: ["true"]`, "commands: *z", 1) + laughs,
		"merge-key bomb":             merge + "name: p\n",
		"self-referencing alias":     "name: &a [*a]\nstages: *a\n",
		"50k aliases":                "a: &a x\nname: p\nstages: [" + strings.Repeat("*a,", 50_000) + "*a]\n",
		"deep block nesting":         block.String(),
		"deep flow nesting, 5k":      "name: p\nstages: " + strings.Repeat("[", 5_000) + strings.Repeat("]", 5_000),
		"deep flow nesting, 100k":    "name: p\nstages: " + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000),
		"deep flow mappings, 100k":   strings.Repeat(`{"a":`, 100_000) + "1" + strings.Repeat("}", 100_000),
		"deep JSON, 100k":            strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000),
		"unclosed flow, 500k":        "name: p\nstages: " + strings.Repeat("[", 500_000),
		"compact sequences, 200k":    strings.Repeat("- ", 200_000) + "x\n",
		"50k keys":                   strings.Repeat("k: 1\n", 50_000),
		"long scalar":                "name: " + strings.Repeat("p", api.MaxBody/4) + "\n",
		"many escapes":               `name: "` + strings.Repeat(`\U0001F600`, 90_000) + `"` + "\n",
		"tags":                       "name: !!binary cA==\nstages: !!python/object:os.system [ls]\n",
	}
}

// TestAttackPipelineYAML puts hostile pipeline files: each is refused with 400 within
// slowest, and the server allocates a bounded amount for it. Not parallel, so that the
// allocations measured are this test's.
func TestAttackPipelineYAML(t *testing.T) {
	e := newAttackEnv(t)
	const maxAlloc = 1 << 30 // for a body of at most 1 MiB
	for name, doc := range hostileYAML() {
		t.Run(name, func(t *testing.T) {
			// Sent as YAML: a JSON body goes through the same parser.
			var m0, m1 runtimeMem
			m0.read()
			start := time.Now()
			a := e.send(t, e.admin, "PUT", "/api/v1/pipelines/p", "application/yaml", strings.NewReader(doc))
			took := time.Since(start)
			m1.read()
			refused(t, name, a, 400, 413)
			if took > slowest {
				t.Errorf("%s: took %v", name, took)
			}
			if d := m1.total - m0.total; d > maxAlloc {
				t.Errorf("%s: the server allocated %d MiB", name, d>>20)
			}
		})
	}
	// The pipeline is still the one seeded, at version 1.
	var pv struct{ Version int }
	e.admin.call("GET", "/api/v1/pipelines/p", nil, 200).decode(t, &pv)
	if pv.Version != 1 {
		t.Errorf("pipeline p at version %d after the hostile files, want 1", pv.Version)
	}
}

// runtimeMem is what the process allocated in all.
type runtimeMem struct{ total uint64 }

func (m *runtimeMem) read() {
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	m.total = s.TotalAlloc
}

// TestAttackLongURL sends a path and a query over the server's header limit: the HTTP
// server refuses them (431) before the API sees them, and serves the next request.
func TestAttackLongURL(t *testing.T) {
	t.Parallel()
	e := newAttackEnv(t)
	long := strings.Repeat("a", 2<<20)
	for _, path := range []string{"/api/v1/pipelines/" + long, "/api/v1/pipelines/p/executions?succeededInStage=" + long} {
		a := e.send(t, e.admin, "GET", path, "", nil)
		if a.status != http.StatusRequestHeaderFieldsTooLarge && a.status != http.StatusRequestURITooLong {
			t.Errorf("GET %s: status %d, want 431 or 414", short(path), a.status)
		}
	}
	// Many requests at once with hostile parameters leave the server serving.
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			p := injections[i%len(injections)]
			a := e.send(t, e.viewer, "GET", "/api/v1/pipelines/"+url.PathEscape(p)+"/executions?status="+url.QueryEscape(p), "", nil)
			refused(t, "concurrent probe", a)
		})
	}
	wg.Wait()
	e.admin.call("GET", "/api/v1/pipelines/p/executions", nil, 200)
}
