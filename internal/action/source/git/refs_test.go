package git

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/conveyorci/conveyor/internal/run"
)

// countingExec runs processes on the host and counts them.
type countingExec struct {
	run.Host
	n atomic.Int64
}

func (c *countingExec) Run(ctx context.Context, cmd run.Cmd) (int, error) {
	c.n.Add(1)
	return c.Host.Run(ctx, cmd)
}

// headCase is one question to Head and what git ls-remote answers to it.
type headCase struct {
	what, repository, branch string
	creds                    Credentials
}

// sameAsLsRemote asks Head each case, checks that the answer (commit, name, or the error's
// text) is git ls-remote's and that no process ran when wantProcs is false.
func sameAsLsRemote(t *testing.T, cases []headCase, wantProcs bool) {
	t.Helper()
	for _, c := range cases {
		ex := &countingExec{}
		commit, name, err := (&Remote{Executor: ex}).Head(t.Context(), c.repository, "", c.branch, c.creds)
		repo, rerr := resolveRepository(c.repository, "")
		if rerr != nil {
			t.Fatal(rerr)
		}
		wc, wn, werr := (&Remote{}).lsRemote(t.Context(), repo, c.branch, c.creds)
		if commit != wc || name != wn || (err == nil) != (werr == nil) {
			t.Errorf("%s: Head = %q, %q, %v; git ls-remote: %q, %q, %v", c.what, commit, name, err, wc, wn, werr)
		}
		if procs := ex.n.Load(); (procs > 0) != wantProcs {
			t.Errorf("%s: %d processes", c.what, procs)
		}
	}
}

// TestLocalHead reads branch heads from a repository's files, as git ls-remote reads them,
// without a process: loose refs, packed refs (after git pack-refs), the default branch
// through a symbolic HEAD (and a detached one), a bare repository, a linked work tree, a
// missing branch; what the files do not tell plainly (not a repository) runs git.
func TestLocalHead(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	cases := []headCase{
		{what: "loose default", repository: r.dir},
		{what: "loose feature", repository: r.dir, branch: "feature"},
		{what: "missing branch", repository: r.dir, branch: "nope"},
		{what: "a ref climbing out", repository: r.dir, branch: "../../HEAD"},
	}
	sameAsLsRemote(t, cases[:3], false)
	if _, _, err := (&Remote{}).Head(t.Context(), r.dir, "", "nope", Credentials{}); err == nil || err.Error() != "check "+r.dir+": branch nope not found" {
		t.Errorf("missing branch: %v", err)
	}
	if c, _, err := localHead(r.dir, "../../HEAD"); err != errFallback || c != "" {
		t.Errorf("a ref name climbing out of refs/ was read: %q, %v", c, err)
	}

	gitIn(t, r.dir, "pack-refs", "--all", "--prune")
	if isFile(filepath.Join(r.dir, ".git", "refs", "heads", "trunk")) {
		t.Fatal("pack-refs left the loose ref")
	}
	sameAsLsRemote(t, []headCase{
		{what: "packed default", repository: r.dir},
		{what: "packed feature", repository: r.dir, branch: "feature"},
		{what: "packed, missing", repository: r.dir, branch: "nope"},
		{what: "file:// URL", repository: "file://" + r.dir, branch: "feature"},
	}, false)
	// A loose ref newer than its packed line wins.
	gitIn(t, r.dir, "update-ref", "refs/heads/feature", r.first)
	sameAsLsRemote(t, []headCase{{what: "loose over packed", repository: r.dir, branch: "feature"}}, false)

	bare := filepath.Join(t.TempDir(), "bare.git")
	gitIn(t, "", "clone", "-q", "--bare", r.dir, bare)
	wt := filepath.Join(t.TempDir(), "wt")
	gitIn(t, r.dir, "worktree", "add", "-q", "-b", "side", wt, r.first)
	sameAsLsRemote(t, []headCase{
		{what: "bare default", repository: bare},
		{what: "bare feature", repository: bare, branch: "feature"},
		{what: "linked work tree: its own HEAD", repository: wt},
		{what: "linked work tree: a shared branch", repository: wt, branch: "trunk"},
	}, false)

	gitIn(t, r.dir, "checkout", "-q", "--detach", r.first)
	sameAsLsRemote(t, []headCase{{what: "detached HEAD", repository: r.dir}}, false)

	// Not a repository's top: git answers (and fails).
	sameAsLsRemote(t, []headCase{{what: "a subdirectory", repository: filepath.Join(r.dir, "sub")}}, true)
	// Credentials given for a local path: git's checks say what is wrong.
	if _, _, err := (&Remote{}).Head(t.Context(), r.dir, "", "", Credentials{Token: "x"}); err == nil ||
		!strings.Contains(err.Error(), "configuration token is for an http:// or https:// repository") {
		t.Errorf("a token for a local path: %v", err)
	}
}

// TestHTTPHead asks git http-backend (protocol version 2, as git asks) for branch heads in
// Go, with and without HTTP Basic authentication: the answers are git ls-remote's, no
// process runs, a wrong or missing token fails saying so without showing it.
func TestHTTPHead(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	open := serveHTTP(t, filepath.Dir(r.dir))
	private := serveAuthHTTP(t, filepath.Dir(r.dir))
	creds := Credentials{Username: testUser, Token: testToken}
	sameAsLsRemote(t, []headCase{
		{what: "default", repository: open.URL + "/app"},
		{what: "feature", repository: open.URL + "/app", branch: "feature"},
		{what: "missing branch", repository: open.URL + "/app", branch: "nope"},
		{what: "private default", repository: private.URL + "/app", creds: creds},
		{what: "private feature", repository: private.URL + "/app", branch: "feature", creds: creds},
	}, false)
	commit, name, err := (&Remote{}).Head(t.Context(), private.URL+"/app", "", "", creds)
	if commit != r.second || name != "trunk" || err != nil {
		t.Errorf("Head = %s, %s, %v; want %s, trunk", commit, name, err, r.second)
	}
	_, _, err = (&Remote{}).Head(t.Context(), private.URL+"/app", "", "", Credentials{Username: testUser, Token: "wrong-" + testToken})
	if err == nil || !strings.Contains(err.Error(), "refused the credentials") {
		t.Errorf("wrong token: %v", err)
	} else {
		noSecret(t, "the error", err.Error())
	}
	if _, _, err = (&Remote{}).Head(t.Context(), private.URL+"/app", "", "", Credentials{}); err == nil ||
		!strings.Contains(err.Error(), "not found or not accessible") {
		t.Errorf("no token: %v", err)
	}
	if _, _, err = (&Remote{}).Head(t.Context(), open.URL+"/nope", "", "", Credentials{}); err == nil ||
		!strings.Contains(err.Error(), "not found or not accessible") {
		t.Errorf("no such repository: %v", err)
	}

	// Protocol version 0 (a client that does not ask for 2): the refs in the advertisement,
	// HEAD's branch among the capabilities.
	resp, err := http.Get(open.URL + "/app/info/refs?service=git-upload-pack")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	adv, err := parseAdvertisement(resp.Body)
	if err != nil || adv.version != 0 || adv.value("symref") != "HEAD:refs/heads/trunk" {
		t.Fatalf("version 0 advertisement: %+v, %v", adv, err)
	}
	got := map[string]string{}
	for _, ref := range adv.refs {
		got[ref.name] = ref.id
	}
	if got["HEAD"] != r.second || got["refs/heads/trunk"] != r.second || got["refs/heads/feature"] != r.feature {
		t.Errorf("version 0 refs: %v", got)
	}
}

// FuzzParseAdvertisement: the parsers of what a smart-HTTP server says never panic, and
// what they return is well formed.
func FuzzParseAdvertisement(f *testing.F) {
	id := strings.Repeat("a1", 20)
	var v0, v2, ls bytes.Buffer
	writePkt(&v0, "# service=git-upload-pack\n")
	v0.WriteString("0000")
	writePkt(&v0, id+" HEAD\x00multi_ack symref=HEAD:refs/heads/main agent=git/2.39\n")
	writePkt(&v0, id+" refs/heads/main\n")
	v0.WriteString("0000")
	writePkt(&v2, "# service=git-upload-pack\n")
	v2.WriteString("0000")
	writePkt(&v2, "version 2\n")
	writePkt(&v2, "ls-refs=unborn\n")
	writePkt(&v2, "object-format=sha1\n")
	v2.WriteString("0000")
	writePkt(&ls, id+" HEAD symref-target:refs/heads/main\n")
	writePkt(&ls, "unborn refs/heads/x\n")
	ls.WriteString("0000")
	for _, s := range [][]byte{v0.Bytes(), v2.Bytes(), ls.Bytes(), []byte("0000"), []byte("fff0"), []byte("0003"), nil} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if adv, err := parseAdvertisement(bytes.NewReader(b)); err == nil {
			for _, r := range adv.refs {
				if !isObjectID(r.id) || r.name == "" {
					t.Fatalf("bad ref %+v", r)
				}
			}
		}
		if refs, err := parseLsRefs(bytes.NewReader(b)); err == nil {
			for _, r := range refs {
				if !isObjectID(r.id) || r.name == "" {
					t.Fatalf("bad ref %+v", r)
				}
			}
		}
		br := bufio.NewReader(bytes.NewReader(b))
		for range 100 {
			kind, p, err := readPkt(br)
			if err != nil {
				break
			}
			if kind != pktData && p != nil || len(p) > maxPkt {
				t.Fatalf("kind %d with %d bytes", kind, len(p))
			}
		}
	})
}
