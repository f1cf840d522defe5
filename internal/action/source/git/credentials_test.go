package git

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/testenv"
)

const (
	testUser  = "ci-bot"
	testToken = "tok-5ecret-0123456789abcdef"
)

// serveAuthHTTP serves the repositories under root with git http-backend behind HTTP Basic
// authentication, as a forge serves a private repository: testUser with testToken.
func serveAuthHTTP(t *testing.T, root string) *httptest.Server {
	t.Helper()
	backend := "/usr/lib/git-core/git-http-backend"
	if out, err := exec.Command("git", "--exec-path").Output(); err == nil {
		backend = filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	}
	if _, err := os.Stat(backend); err != nil {
		t.Skip("no git-http-backend")
	}
	h := &cgi.Handler{
		Path:   backend,
		Env:    []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"},
		Stderr: io.Discard,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != testUser || p != testToken {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// noSecret fails the test when s shows the token.
func noSecret(t *testing.T, what, s string) {
	t.Helper()
	if strings.Contains(s, testToken) {
		t.Errorf("%s shows the token:\n%s", what, s)
	}
}

// TestHTTPSToken fetches a private repository served over HTTP with Basic authentication:
// the right token works, a wrong or missing one fails saying what to check, and neither the
// log nor the error ever shows the token.
func TestHTTPSToken(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	srv := serveAuthHTTP(t, filepath.Dir(r.dir))
	repo := srv.URL + "/app"

	for _, rev := range []string{"", r.first} { // a clone, and a fetch by id
		b := setup(t, map[string]any{"repository": repo, "username": testUser, "token": testToken + "\n", "revision": rev})
		res := b.mustRun(t)
		if want := cmpOr(rev, r.second); res.Variables["CommitId"] != want {
			t.Errorf("revision %q: CommitId = %s, want %s", rev, res.Variables["CommitId"], want)
		}
		noSecret(t, "the log", b.log.String())
		if _, err := os.Stat(filepath.Join(b.ws.Dir, ".git")); !os.IsNotExist(err) {
			t.Error(".git kept")
		}
	}

	b := setup(t, map[string]any{"repository": repo, "username": testUser, "token": "wrong-" + testToken})
	_, err := b.run(t)
	wantError(t, err, action.Failed, "repository "+repo+" refused the credentials: check token (and username)")
	noSecret(t, "the error", err.Error())
	noSecret(t, "the log", b.log.String())

	// The default user name is not the one the server knows.
	b = setup(t, map[string]any{"repository": repo, "token": testToken})
	_, err = b.run(t)
	wantError(t, err, action.Failed, "refused the credentials")
	noSecret(t, "the error", err.Error())

	b = setup(t, map[string]any{"repository": repo})
	_, err = b.run(t)
	wantError(t, err, action.Failed, "repository "+repo+" not found or not accessible: check the repository URL or path, and its credentials")

	// A token is for HTTP(S) only: never sent over SSH or read from a local path.
	b = setup(t, map[string]any{"repository": r.dir, "token": testToken})
	_, err = b.run(t)
	wantError(t, err, action.Failed, "configuration token is for an http:// or https:// repository")
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestRemoteCredentials: the poller's git ls-remote and the changed files' fetch
// authenticate as the action does.
func TestRemoteCredentials(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	srv := serveAuthHTTP(t, filepath.Dir(r.dir))
	repo := srv.URL + "/app"
	creds := Credentials{Username: testUser, Token: testToken}

	commit, name, err := (&Remote{}).Head(t.Context(), repo, "", "", creds)
	if err != nil || commit != r.second || name != "trunk" {
		t.Errorf("Head = %s, %s, %v; want %s, trunk", commit, name, err, r.second)
	}
	if commit, _, err := (&Remote{}).Head(t.Context(), repo, "", "feature", creds); err != nil || commit != r.feature {
		t.Errorf("Head feature = %s, %v", commit, err)
	}
	_, _, err = (&Remote{}).Head(t.Context(), repo, "", "", Credentials{Username: testUser, Token: "wrong"})
	if err == nil || !strings.Contains(err.Error(), "refused the credentials") {
		t.Errorf("wrong token: %v", err)
	}
	if _, _, err = (&Remote{}).Head(t.Context(), repo, "", "", Credentials{}); err == nil {
		t.Error("no token: no error")
	}

	m := &Mirror{Dir: t.TempDir()}
	files, err := m.ChangedFiles(t.Context(), repo, "", "refs/heads/trunk", r.first, r.second, false, creds)
	if err != nil || strings.Join(files, ",") != "a.txt" {
		t.Errorf("ChangedFiles = %q, %v", files, err)
	}
	_, err = (&Mirror{Dir: t.TempDir()}).ChangedFiles(t.Context(), repo, "", "refs/heads/trunk", r.first, r.second, false,
		Credentials{Username: testUser, Token: "wrong-" + testToken})
	if err == nil || !strings.Contains(err.Error(), "refused the credentials") {
		t.Errorf("ChangedFiles with a wrong token: %v", err)
	}
	if err != nil {
		noSecret(t, "the error", err.Error())
	}
}

// TestAuthFiles: the key and known_hosts are written in a private directory, readable by the
// owner only, and removed by close; the token is in no file and in the environment only.
func TestAuthFiles(t *testing.T) {
	// Not parallel: TestSSH checks that no key directory outlives its fetch.
	a, err := Credentials{SSHKey: "-----BEGIN KEY-----\r\nabc\r\n-----END KEY-----", KnownHosts: "h ssh-ed25519 AAAA"}.prepare("ssh://git@h/x.git")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(a.dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory: %v, %v", fi.Mode(), err)
	}
	key, err := os.ReadFile(filepath.Join(a.dir, "key"))
	if err != nil || string(key) != "-----BEGIN KEY-----\nabc\n-----END KEY-----\n" {
		t.Errorf("key = %q, %v", key, err)
	}
	for _, f := range []string{"key", "known_hosts"} {
		if fi, err := os.Stat(filepath.Join(a.dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v", f, fi.Mode(), err)
		}
	}
	a.close()
	if _, err := os.Stat(a.dir); !os.IsNotExist(err) {
		t.Errorf("%s left behind", a.dir)
	}

	a, err = Credentials{Token: testToken}.prepare("https://git.example.com:8443/org/app.git")
	if err != nil || a.dir != "" {
		t.Fatalf("token: %v, dir %q", err, a.dir)
	}
	g := &gitRunner{auth: a}
	env := strings.Join(g.env(), "\n")
	if !strings.Contains(env, "credential.https://git.example.com:8443.helper") || !strings.Contains(env, "CONVEYOR_GIT_USERNAME=x-access-token") {
		t.Errorf("environment:\n%s", env)
	}
	for _, kv := range g.env() {
		if strings.Contains(kv, testToken) && kv != "CONVEYOR_GIT_PASSWORD="+testToken {
			t.Errorf("the token is in %s", kv)
		}
	}

	for _, c := range []struct {
		cfg  map[string]any
		want string
	}{
		{map[string]any{"repository": "x", "sshKey": "k"}, "sshKey needs knownHosts"},
		{map[string]any{"repository": "x", "sshKey": "k", "knownHosts": " \n"}, "sshKey needs knownHosts"},
		{map[string]any{"repository": "x", "sshKey": "k", "knownHosts": "h k", "token": "t"}, "token and sshKey are both set"},
		{map[string]any{"repository": "x", "token": map[string]any{"secret": "T"}}, "the reference map[secret:T] was not resolved"},
		{map[string]any{"repository": "x", "token": "a\nb"}, "token must be one line"},
	} {
		if _, err := parseConfig(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseConfig(%v) = %v, want %q", c.cfg, err, c.want)
		}
	}
}

// TestProxyEnvironment: git gets the proxy and CA variables of the runner's environment, and
// nothing else of it.
func TestProxyEnvironment(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://proxy.example.com:3128")
	t.Setenv("no_proxy", "localhost")
	t.Setenv("GIT_SSL_CAINFO", "/etc/ca.pem")
	t.Setenv("CONVEYOR_DATABASE_URL", "postgres://secret")
	env := (&gitRunner{}).env()
	for _, want := range []string{"HTTPS_PROXY=http://proxy.example.com:3128", "no_proxy=localhost", "GIT_SSL_CAINFO=/etc/ca.pem"} {
		if !contains(env, want) {
			t.Errorf("%s missing from %q", want, env)
		}
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "CONVEYOR_DATABASE_URL=") {
			t.Errorf("git gets %s", kv)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestSubmodules fetches a private repository whose submodule, given by a relative URL as
// forges advise, is on the same server: with submodules its files come along (fetched with
// the same token), without it the directory is empty; no .git is left either way.
func TestSubmodules(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	lib, app := filepath.Join(root, "lib"), filepath.Join(root, "app")
	for _, d := range []string{lib, app} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		gitIn(t, d, "init", "-q", "-b", "main")
	}
	writeFile(t, filepath.Join(lib, "lib.go"), "package lib\n", 0o644)
	gitIn(t, lib, "add", ".")
	gitIn(t, lib, "commit", "-q", "-m", "lib")
	writeFile(t, filepath.Join(app, "main.go"), "package main\n", 0o644)
	gitIn(t, app, "-c", "protocol.file.allow=always", "submodule", "add", "-q", "../lib", "vendor/lib")
	gitIn(t, app, "add", ".")
	gitIn(t, app, "commit", "-q", "-m", "app with lib")
	srv := serveAuthHTTP(t, root)

	cfg := map[string]any{"repository": srv.URL + "/app", "username": testUser, "token": testToken, "submodules": true}
	b := setup(t, cfg)
	res := b.mustRun(t)
	if !exists(filepath.Join(b.ws.Dir, "vendor", "lib", "lib.go")) {
		t.Errorf("the submodule's files are missing; log:\n%s", b.log)
	}
	for _, p := range []string{".git", "vendor/lib/.git"} {
		if _, err := os.Lstat(filepath.Join(b.ws.Dir, p)); !os.IsNotExist(err) {
			t.Errorf("%s left behind", p)
		}
	}
	if !strings.Contains(res.Summary, "with submodules") {
		t.Errorf("summary %q", res.Summary)
	}
	noSecret(t, "the log", b.log.String())

	// keepGitMetadata keeps the submodule a working repository.
	b = setup(t, map[string]any{"repository": srv.URL + "/app", "username": testUser, "token": testToken, "submodules": true, "keepGitMetadata": true})
	b.mustRun(t)
	if got := gitIn(t, filepath.Join(b.ws.Dir, "vendor", "lib"), "log", "-1", "--format=%s"); got != "lib" {
		t.Errorf("submodule HEAD %q", got)
	}

	b = setup(t, map[string]any{"repository": srv.URL + "/app", "username": testUser, "token": testToken})
	b.mustRun(t)
	if exists(filepath.Join(b.ws.Dir, "vendor", "lib", "lib.go")) {
		t.Error("submodules fetched without submodules: true")
	}
	if !exists(filepath.Join(b.ws.Dir, "main.go")) {
		t.Error("main.go missing")
	}
}

// lfsPointer is how a file tracked by Git LFS starts in the repository.
const lfsPointer = "version https://git-lfs.github.com/spec/v1"

// TestLFS fetches a repository with a file tracked by Git LFS. git http-backend serves no LFS
// API, so the remote is a file:// URL, which git-lfs (3.0 and later) serves itself.
func TestLFS(t *testing.T) {
	t.Parallel()
	if out, err := exec.Command("git", "lfs", "version").CombinedOutput(); err != nil {
		testenv.Unavailable(t, "git-lfs", strings.TrimSpace(string(out)), "install git-lfs (apt-get install git-lfs)")
	}
	dir := filepath.Join(t.TempDir(), "lfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	gitIn(t, dir, "init", "-q", "-b", "main")
	gitIn(t, dir, "lfs", "install", "--local")
	gitIn(t, dir, "lfs", "track", "*.bin")
	content := strings.Repeat("large binary content\n", 100)
	writeFile(t, filepath.Join(dir, "model.bin"), content, 0o644)
	writeFile(t, filepath.Join(dir, "README"), "small\n", 0o644)
	gitIn(t, dir, "add", ".")
	gitIn(t, dir, "commit", "-q", "-m", "with lfs")
	repo := "file://" + dir

	for _, rev := range []string{"", gitIn(t, dir, "rev-parse", "HEAD")} {
		b := setup(t, map[string]any{"repository": repo, "lfs": true, "revision": rev})
		b.mustRun(t)
		if got, _ := os.ReadFile(filepath.Join(b.ws.Dir, "model.bin")); string(got) != content {
			t.Errorf("revision %q: model.bin = %.60q, want the file's content; log:\n%s", rev, got, b.log)
		}
	}

	b := setup(t, map[string]any{"repository": repo})
	b.mustRun(t)
	if got, _ := os.ReadFile(filepath.Join(b.ws.Dir, "model.bin")); !strings.HasPrefix(string(got), lfsPointer) {
		t.Errorf("without lfs: model.bin = %.60q, want the pointer", got)
	}

	// Where git-lfs is missing, the error says so. A git whose lfs command is unknown stands
	// for it.
	fake := filepath.Join(t.TempDir(), "git")
	real, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, fake, "#!/bin/sh\nif [ \"$1\" = lfs ]; then echo \"git: 'lfs' is not a git command. See 'git --help'.\" >&2; exit 1; fi\nexec "+real+" \"$@\"\n", 0o755)
	b = setup(t, map[string]any{"repository": repo, "lfs": true})
	b.p.Git = fake
	_, err = b.run(t)
	wantError(t, err, action.Failed, "git-lfs is not installed where the action runs")
}

// sshServer is an OpenSSH server on 127.0.0.1 letting the current user in with one key.
type sshServer struct {
	url        string // ssh://USER@127.0.0.1:PORT
	key        string // the client's private key
	knownHosts string // the server's host key, as ssh-keyscan prints it
	otherHost  string // another server's host key for the same address
	otherKey   string // a private key the server does not know
}

// startSSHD starts sshd as the current user (its own configuration, host key and
// authorized_keys), or skips the test saying why it cannot (fails when CONVEYOR_TEST_REQUIRE
// names sshd).
func startSSHD(t *testing.T) *sshServer {
	t.Helper()
	const howto = "install openssh-server (scripts/test-deps does)"
	sshd := "/usr/sbin/sshd"
	if _, err := os.Stat(sshd); err != nil {
		testenv.Unavailable(t, "sshd", "no "+sshd, howto)
	}
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		testenv.Unavailable(t, "sshd", "no ssh-keygen", howto)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// sshd refuses to start without its privilege separation directory, which the
		// package's service makes at boot; a container never booted it.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			testenv.Unavailable(t, "sshd", "create /run/sshd: "+err.Error(), "run the tests as root, or create /run/sshd")
		}
	}
	dir := t.TempDir()
	keygen := func(name string) string {
		path := filepath.Join(dir, name)
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		pub, err := os.ReadFile(path + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(pub))
	}
	hostPub, otherPub, clientPub := keygen("host"), keygen("other"), keygen("client")
	writeFile(t, filepath.Join(dir, "authorized_keys"), clientPub+"\n", 0o600)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	config := fmt.Sprintf(`ListenAddress 127.0.0.1
HostKey %[1]s/host
PidFile none
AuthorizedKeysFile %[1]s/authorized_keys
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers %[2]s
UsePAM no
LogLevel ERROR
`, dir, u.Username)
	writeFile(t, filepath.Join(dir, "sshd_config"), config, 0o600)
	var log bytes.Buffer
	cmd := exec.Command(sshd, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"), "-p", fmt.Sprint(port))
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		testenv.Unavailable(t, "sshd", "start sshd: "+err.Error(), howto)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	// Ready when it greets: SSH-2.0-...
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			testenv.Unavailable(t, "sshd", fmt.Sprintf("sshd exited: %s", strings.TrimSpace(log.String())), howto)
		default:
		}
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "SSH-2.0-") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd on port %d did not answer within 10s: %s", port, log.String())
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline: sshd signals nothing
	}
	key, err := os.ReadFile(filepath.Join(dir, "client"))
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := os.ReadFile(filepath.Join(dir, "other"))
	if err != nil {
		t.Fatal(err)
	}
	hostField := fmt.Sprintf("[127.0.0.1]:%d ", port)
	return &sshServer{
		url:        fmt.Sprintf("ssh://%s@127.0.0.1:%d", u.Username, port),
		key:        string(key),
		knownHosts: "# ssh-keyscan output\n" + hostField + fieldsKey(hostPub),
		otherHost:  hostField + fieldsKey(otherPub),
		otherKey:   string(otherKey),
	}
}

// fieldsKey is "TYPE KEY" of a public key line, without its comment.
func fieldsKey(pub string) string {
	f := strings.Fields(pub)
	return f[0] + " " + f[1]
}

// TestSSH fetches over SSH from a real sshd with a deploy key: the right key and host key
// work (and the key file is gone after), a host key that does not match fails saying to
// update knownHosts, and a key without knownHosts is refused before ssh runs.
func TestSSH(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	s := startSSHD(t)
	repo := s.url + r.dir

	before, _ := filepath.Glob(filepath.Join(os.TempDir(), "conveyor-ssh-*"))
	b := setup(t, map[string]any{"repository": repo, "sshKey": strings.ReplaceAll(s.key, "\n", "\r\n"), "knownHosts": s.knownHosts, "branch": "feature"})
	res := b.mustRun(t)
	if res.Variables["CommitId"] != r.feature || !exists(filepath.Join(b.ws.Dir, "feature.txt")) {
		t.Errorf("CommitId %s, want %s", res.Variables["CommitId"], r.feature)
	}
	// No other test of the package writes keys while this one runs (TestAuthFiles is not
	// parallel): every directory of a key must be gone at the end.
	defer func() {
		after, _ := filepath.Glob(filepath.Join(os.TempDir(), "conveyor-ssh-*"))
		for _, d := range after {
			if !contains(before, d) {
				t.Errorf("%s left behind", d)
			}
		}
	}()

	if commit, _, err := (&Remote{}).Head(t.Context(), repo, "", "trunk", Credentials{SSHKey: s.key, KnownHosts: s.knownHosts}); err != nil || commit != r.second {
		t.Errorf("Head over ssh = %s, %v", commit, err)
	}

	b = setup(t, map[string]any{"repository": repo, "sshKey": s.key, "knownHosts": s.otherHost})
	_, err := b.run(t)
	wantError(t, err, action.Failed, "the SSH host key of "+repo+" is not in knownHosts, or does not match the one there")
	wantError(t, err, action.Failed, "update knownHosts with the line `ssh-keyscan -p ")

	b = setup(t, map[string]any{"repository": repo, "sshKey": s.key, "knownHosts": "github.com " + fieldsKey(s.knownHosts[strings.LastIndexByte(s.knownHosts, ']')+3:])})
	_, err = b.run(t)
	wantError(t, err, action.Failed, "is not in knownHosts")

	// Another key: the server refuses it.
	b = setup(t, map[string]any{"repository": repo, "sshKey": s.otherKey, "knownHosts": s.knownHosts})
	_, err = b.run(t)
	wantError(t, err, action.Failed, "refused the SSH key")

	b = setup(t, map[string]any{"repository": repo, "sshKey": "not a key", "knownHosts": s.knownHosts})
	_, err = b.run(t)
	wantError(t, err, action.Failed, "configuration sshKey: ssh cannot read the key")

	b = setup(t, map[string]any{"repository": repo, "sshKey": s.key})
	_, err = b.run(t)
	wantError(t, err, action.Failed, "sshKey needs knownHosts")
}
