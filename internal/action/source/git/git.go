package git

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/run"
)

// Provider runs Git source actions. The zero value is ready to use.
type Provider struct {
	// Git is the git program; empty means git from the PATH.
	Git string
	// Grace is how long git has between SIGTERM and SIGKILL when the action is stopped or
	// times out; zero means run.DefaultGrace.
	Grace time.Duration
	// Executor runs git; nil means run.Host, directly on this machine.
	Executor run.Executor
}

var _ action.Provider = (*Provider)(nil)

// maxMessage caps CommitMessage, in bytes.
const maxMessage = 4 << 10

// Run fetches the configured revision into ws.Dir, or copies job.SourceDir's working tree
// there. It returns an *action.Error: Failed when the configuration is wrong or the
// repository, branch or revision is not found, TimedOut past job.Timeout, Stopped when ctx is
// done, Errored when git cannot be run or the workspace cannot be written.
func (p *Provider) Run(ctx context.Context, job *action.Job, ws *action.Workspace) (*action.Result, error) {
	cfg, err := parseConfig(job.Configuration)
	if err != nil {
		return nil, &action.Error{Kind: action.Failed, Message: err.Error()}
	}
	runCtx := ctx
	if job.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, job.Timeout)
		defer cancel()
	}
	g := &gitRunner{
		exec:    p.Executor,
		ctx:     runCtx,
		git:     cmp.Or(p.Git, "git"),
		log:     cmp.Or[io.Writer](ws.Log, io.Discard),
		started: ws.Started,
		grace:   p.Grace,
	}
	var res *action.Result
	if job.SourceDir != "" {
		res, err = workTree(g, job.SourceDir, ws.Dir)
	} else {
		res, err = fetch(g, cfg, job, ws.Dir)
	}
	if err == nil {
		return res, nil
	}
	switch {
	case ctx.Err() != nil:
		return nil, &action.Error{Kind: action.Stopped, Message: "stopped"}
	case runCtx.Err() != nil:
		return nil, &action.Error{Kind: action.TimedOut, Message: fmt.Sprintf("timed out after %v", job.Timeout)}
	}
	if _, ok := errors.AsType[*action.Error](err); ok {
		return nil, err
	}
	if _, ok := errors.AsType[*run.StartError](err); ok {
		return nil, &action.Error{Kind: action.Errored, Message: "run git", Err: err}
	}
	return nil, &action.Error{Kind: action.Errored, Err: err}
}

type config struct {
	repository      string
	branch          string
	revision        string
	depth           int
	depthSet        bool
	keepGitMetadata bool
	creds           Credentials
	submodules      bool
	lfs             bool
}

var knownKeys = []string{"repository", "branch", "revision", "depth", "keepGitMetadata", "username", "token", "sshKey", "knownHosts",
	"submodules", "lfs", "pollInterval", "webhookSecret"}

func parseConfig(m map[string]any) (config, error) {
	var c config
	for k, v := range m {
		var err error
		switch k {
		case "repository":
			c.repository, err = str(k, v)
		case "branch":
			c.branch, err = str(k, v)
		case "revision":
			c.revision, err = str(k, v)
		case "depth":
			c.depth, err = integer(k, v)
			c.depthSet = true
		case "keepGitMetadata":
			c.keepGitMetadata, err = boolean(k, v)
		case "username":
			c.creds.Username, err = str(k, v)
		case "token":
			c.creds.Token, err = secretValue(k, v)
		case "sshKey":
			c.creds.SSHKey, err = secretValue(k, v)
		case "knownHosts":
			c.creds.KnownHosts, err = str(k, v)
		case "submodules":
			c.submodules, err = boolean(k, v)
		case "lfs":
			c.lfs, err = boolean(k, v)
		case "webhookSecret":
			// The server checks webhook deliveries with it (package webhook); fetching ignores it.
		case "pollInterval":
			// The server's poller reads it (package trigger); fetching ignores it.
		default:
			err = fmt.Errorf("unknown configuration key %q (known: %s)", k, strings.Join(knownKeys, ", "))
		}
		if err != nil {
			return c, err
		}
	}
	if c.repository == "" {
		return c, errors.New("configuration repository is required: a URL, a path, or . for the repository holding the pipeline file")
	}
	for _, ref := range []struct{ key, v string }{{"branch", c.branch}, {"revision", c.revision}} {
		if strings.HasPrefix(ref.v, "-") || strings.ContainsAny(ref.v, " \t\n\x00") {
			return c, fmt.Errorf("configuration %s %q is not a valid Git ref", ref.key, ref.v)
		}
	}
	return c, c.creds.validate()
}

// secretValue is the value of a property that references a secret: the worker puts the
// secret's value in place of the reference ({ secret: NAME }) before the action runs.
func secretValue(key string, v any) (string, error) {
	if s, ok := v.(string); ok {
		return s, nil
	}
	return "", fmt.Errorf("configuration %s must be a secret's value; the reference %v was not resolved (run the action through a worker, which puts secrets in place)", key, v)
}

func str(key string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("configuration %s must be a string, not %T", key, v)
	}
	return s, nil
}

func integer(key string, v any) (int, error) {
	var n int
	switch v := v.(type) {
	case int:
		n = v
	case int64:
		n = int(v)
	case uint64:
		n = int(v)
	case float64:
		if v != float64(int(v)) {
			return 0, fmt.Errorf("configuration %s must be a whole number, not %v", key, v)
		}
		n = int(v)
	case string:
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			return 0, fmt.Errorf("configuration %s must be a whole number, not %q", key, v)
		}
	default:
		return 0, fmt.Errorf("configuration %s must be a whole number, not %T", key, v)
	}
	if n < 0 {
		return 0, fmt.Errorf("configuration %s must not be negative", key)
	}
	return n, nil
}

func boolean(key string, v any) (bool, error) {
	switch v := v.(type) {
	case bool:
		return v, nil
	case string:
		if b, err := strconv.ParseBool(v); err == nil {
			return b, nil
		}
	}
	return false, fmt.Errorf("configuration %s must be true or false, not %v", key, v)
}

// fetch fetches the configured revision into dir, an empty directory.
func fetch(g *gitRunner, cfg config, job *action.Job, dir string) (*action.Result, error) {
	repo, err := resolveRepository(cfg.repository, job.PipelineDir)
	if err != nil {
		return nil, err
	}
	if g.auth, err = cfg.creds.prepare(repo.url); err != nil {
		return nil, &action.Error{Kind: action.Failed, Message: err.Error()}
	}
	defer g.auth.close()
	g.lfs = cfg.lfs
	if cfg.lfs {
		if err := g.run("", io.Discard, "lfs", "version"); err != nil {
			if _, ok := errors.AsType[*gitError](err); ok {
				return nil, &action.Error{Kind: action.Failed, Message: "configuration lfs is true, but git-lfs is not installed where the action runs: " +
					"install it (apt-get install git-lfs), or set lfs: false to get the LFS pointer files", Err: err}
			}
			return nil, err
		}
	}
	revision := cmp.Or(job.SourceRevision, cfg.revision)
	depth := cfg.depth
	if !cfg.depthSet && !cfg.keepGitMetadata {
		depth = 1
	}
	var depthArgs []string
	if depth > 0 {
		depthArgs = []string{"--depth", strconv.Itoa(depth)}
	}

	var what string // for the summary
	if isCommitID(revision) {
		what = "commit " + revision[:10]
		if err := g.run(dir, nil, "init", "-q", "--template="); err != nil {
			return nil, err
		}
		if err := addOrigin(dir, repo.url); err != nil {
			return nil, err
		}
		if err := fetchCommit(g, dir, repo, job.SourceRef, revision, depthArgs); err != nil {
			return nil, err
		}
		if job.SourceRef != "" {
			what += " of " + job.SourceRef
		}
		if err := g.run(dir, nil, "checkout", "-q", "--detach", revision); err != nil {
			return nil, err
		}
	} else {
		args := append([]string{"clone", "--template=", "--no-local", "--no-tags", "--single-branch"}, depthArgs...)
		kind, ref := "branch", cfg.branch
		if revision != "" {
			kind, ref = "revision", revision
		}
		if ref != "" {
			args = append(args, "--branch", ref)
			what = kind + " " + ref
		}
		args = append(args, "--", repo.url, ".")
		if err := g.run(dir, nil, args...); err != nil {
			return nil, fetchError(err, repo, kind, ref)
		}
	}

	if cfg.submodules {
		args := append([]string{"submodule", "update", "--init", "--recursive"}, depthArgs...)
		if err := g.run(dir, nil, args...); err != nil {
			return nil, remoteError(err, repo, "fetch the submodules of repository "+repo.display)
		}
	}
	if cfg.lfs {
		if err := g.run(dir, nil, "lfs", "pull"); err != nil {
			return nil, remoteError(err, repo, "fetch the Git LFS files of repository "+repo.display)
		}
		if cfg.submodules {
			if err := g.run(dir, nil, "submodule", "foreach", "--quiet", "--recursive", "git lfs pull"); err != nil {
				return nil, remoteError(err, repo, "fetch the Git LFS files of the submodules of repository "+repo.display)
			}
		}
	}

	c, err := g.commitInfo(dir)
	if err != nil {
		return nil, err
	}
	branch := cfg.branch
	if branch == "" {
		branch = headBranch(dir)
	}
	if what == "" {
		what = "branch " + branch
	}
	if cfg.submodules {
		what += " with submodules"
	}
	if !cfg.keepGitMetadata {
		if cfg.submodules {
			// A submodule's .git is a file pointing into the top .git/modules: gone with it.
			if err := removeSubmoduleLinks(g, dir); err != nil {
				return nil, err
			}
		}
		if err := os.RemoveAll(filepath.Join(dir, ".git")); err != nil {
			return nil, &action.Error{Kind: action.Errored, Message: "remove .git", Err: err}
		}
	}
	return &action.Result{
		Variables: c.variables(branch, repo.name),
		Summary:   fmt.Sprintf("%s of %s at %s: %s", what, repo.display, short(c.id), subject(c.message)),
	}, nil
}

// fetchCommit fetches revision, a commit id, into dir: through ref when one is given (a pull
// request's head, which no branch reaches), else by id.
func fetchCommit(g *gitRunner, dir string, repo repository, ref, revision string, depthArgs []string) error {
	if ref == "" {
		args := append(append([]string{"fetch", "--no-tags"}, depthArgs...), "origin", revision)
		if err := g.run(dir, nil, args...); err != nil {
			return fetchError(err, repo, "revision", revision)
		}
		return nil
	}
	if !strings.HasPrefix(ref, "refs/") || strings.ContainsAny(ref, " \t\n\x00:") {
		return &action.Error{Kind: action.Failed, Message: fmt.Sprintf("source ref %q is not a full ref name (refs/...)", ref)}
	}
	args := append(append([]string{"fetch", "--no-tags"}, depthArgs...), "origin", "+"+ref+":refs/remotes/origin/conveyor-ref")
	if err := g.run(dir, nil, args...); err != nil {
		return fetchError(err, repo, "ref", ref)
	}
	if g.has(dir, revision) {
		return nil
	}
	// The ref moved on since the trigger (new commits pushed to the pull request): the pinned
	// commit is asked for by id, which forges serve.
	args = append(append([]string{"fetch", "--no-tags"}, depthArgs...), "origin", revision)
	if err := g.run(dir, nil, args...); err != nil {
		return &action.Error{Kind: action.Failed, Message: fmt.Sprintf("commit %s is no longer reachable from %s of %s (the pull request moved on, "+
			"and the server does not serve commits by id): a newer execution runs its new head", short(revision), ref, repo.display)}
	}
	return nil
}

// repository is where to fetch from.
type repository struct {
	url     string // as git takes it: a URL, or an absolute path
	display string // for messages: credentials left out
	name    string // RepositoryName
}

func resolveRepository(s, pipelineDir string) (repository, error) {
	if isRemote(s) {
		return repository{url: s, display: redactURL(s), name: repoName(s)}, nil
	}
	path := s
	if !filepath.IsAbs(path) {
		path = filepath.Join(pipelineDir, path)
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return repository{}, err
	}
	if filepath.Clean(s) == "." {
		top := topLevel(path)
		if top == "" {
			return repository{}, &action.Error{Kind: action.Failed, Message: fmt.Sprintf(
				"repository . is the repository holding the pipeline file, but %s is not in a Git work tree: commit the pipeline to a repository, or name one", path)}
		}
		path = top
	}
	return repository{url: path, display: path, name: repoName(path)}, nil
}

// isRemote reports whether s is a URL or an scp-like address (host:path) rather than a local
// path, by git's rule: a colon before any slash.
func isRemote(s string) bool {
	if strings.Contains(s, "://") {
		return true
	}
	colon, slash := strings.IndexByte(s, ':'), strings.IndexByte(s, '/')
	return colon > 0 && (slash < 0 || colon < slash)
}

// repoName is the last element of a repository's URL or path, without ".git".
func repoName(s string) string {
	s = strings.TrimRight(s, "/")
	s = strings.TrimSuffix(s, "/.git")
	if i := strings.LastIndexAny(s, "/:"); i >= 0 {
		s = s[i+1:]
	}
	return strings.TrimSuffix(s, ".git")
}

// topLevel is the top directory of the Git work tree holding dir, or "" when there is none:
// the nearest directory, dir or above, with a .git entry (a directory, or a file as in linked
// work trees and submodules), as git finds it, without starting git.
func topLevel(dir string) string {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	for {
		if _, err := os.Lstat(filepath.Join(dir, ".git")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// isCommitID reports whether rev is a full commit id (SHA-1 or SHA-256), which a server can
// be asked for directly; anything else is a ref name.
func isCommitID(rev string) bool {
	return (len(rev) == 40 || len(rev) == 64) && isHex(rev)
}

func isHex(s string) bool {
	return s != "" && strings.Trim(s, "0123456789abcdefABCDEF") == ""
}

// addOrigin records url as the origin remote of the repository in dir, as clone would.
func addOrigin(dir, u string) error {
	f, err := os.OpenFile(filepath.Join(dir, ".git", "config"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return &action.Error{Kind: action.Errored, Message: "configure origin", Err: err}
	}
	q := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(u)
	_, err = fmt.Fprintf(f, "[remote \"origin\"]\n\turl = \"%s\"\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n", q)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return &action.Error{Kind: action.Errored, Message: "configure origin", Err: err}
	}
	return nil
}

// removeSubmoduleLinks removes the .git files of the submodules checked out in dir, which
// point into dir/.git/modules.
func removeSubmoduleLinks(g *gitRunner, dir string) error {
	var out bytes.Buffer
	if err := g.run(dir, &out, "submodule", "foreach", "--quiet", "--recursive", `printf '%s\0' "$displaypath"`); err != nil {
		return err
	}
	for _, p := range strings.Split(strings.TrimSuffix(out.String(), "\x00"), "\x00") {
		if p == "" {
			continue
		}
		if err := os.Remove(filepath.Join(dir, filepath.FromSlash(p), ".git")); err != nil && !os.IsNotExist(err) {
			return &action.Error{Kind: action.Errored, Message: "remove .git", Err: err}
		}
	}
	return nil
}

// headBranch is the branch HEAD names in the repository in dir, "" when it is detached.
func headBranch(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, ".git", "HEAD"))
	if err != nil {
		return ""
	}
	ref, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "ref: refs/heads/")
	if !ok {
		return ""
	}
	return ref
}

// fetchError turns a failed clone or fetch into a message saying what to check. kind is
// "branch" or "revision", ref what was asked for ("" for the default branch).
func fetchError(err error, repo repository, kind, ref string) error {
	ge, ok := errors.AsType[*gitError](err)
	if !ok {
		return err
	}
	has := func(s ...string) bool {
		return slices.ContainsFunc(s, func(s string) bool { return strings.Contains(ge.output, s) })
	}
	cause := errors.New(ge.fatal())
	if msg := accessProblem(ge, repo); msg != "" {
		return &action.Error{Kind: action.Failed, Message: msg, Err: cause}
	}
	var msg string
	switch {
	case has("not found in upstream", "couldn't find remote ref") && kind == "branch":
		msg = fmt.Sprintf("branch %q not found in repository %s: check the branch name", ref, repo.display)
	case has("not found in upstream", "couldn't find remote ref"):
		msg = fmt.Sprintf("revision %q not found in repository %s: check the tag or branch name; a commit must be given by its full id", ref, repo.display)
	case has("not our ref", "unadvertised object", "bad object", "did not send all necessary objects"):
		msg = fmt.Sprintf("revision %q not found in repository %s: check that the commit exists and that a branch or tag of the repository leads to it", ref, repo.display)
	case has("does not exist", "does not appear to be a git repository", "not found", "Repository not found",
		"could not read Username", "Authentication failed", "Could not read from remote repository", "Permission denied"):
		msg = fmt.Sprintf("repository %s not found or not accessible: check the repository URL or path, and its credentials", repo.display)
	default:
		msg = "fetch repository " + repo.display
	}
	return &action.Error{Kind: action.Failed, Message: msg, Err: cause}
}

// remoteError turns a failed exchange with the remote after the clone (submodules, LFS)
// into an action failure: what went wrong with the host key or the credentials, else what
// failed and git's reason.
func remoteError(err error, repo repository, what string) error {
	ge, ok := errors.AsType[*gitError](err)
	if !ok {
		return err
	}
	msg := accessProblem(ge, repo)
	if msg == "" {
		msg = what
	}
	return &action.Error{Kind: action.Failed, Message: msg, Err: errors.New(ge.fatal())}
}

// accessProblem says what to do when git's output tells of an SSH host key that knownHosts
// lacks or contradicts, a key ssh cannot read, or credentials the server refused; "" when it
// tells of none of these.
func accessProblem(ge *gitError, repo repository) string {
	has := func(s ...string) bool {
		return slices.ContainsFunc(s, func(s string) bool { return strings.Contains(ge.output, s) })
	}
	switch {
	case has("Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED", "host key is known for"):
		return fmt.Sprintf("the SSH host key of %s is not in knownHosts, or does not match the one there: "+
			"check the server's key, then update knownHosts with the line `%s` prints", repo.display, keyscan(repo.url))
	case has("Load key", "invalid format", "bad permissions"):
		return "configuration sshKey: ssh cannot read the key: give an OpenSSH or PEM private key without a passphrase"
	case !ge.authed:
		return ""
	case has("Permission denied (publickey", "Permission denied, please try again"):
		return fmt.Sprintf("repository %s refused the SSH key: check that sshKey is a deploy key of the repository (or of a user with access to it)", repo.display)
	case has("Authentication failed", "returned error: 403", "could not read Username", "could not read Password"):
		return fmt.Sprintf("repository %s refused the credentials: check token (and username) and that they give access to the repository", repo.display)
	}
	return ""
}

// keyscan is the command printing the host keys of the SSH server of u.
func keyscan(u string) string {
	host, port := "", ""
	if p, err := url.Parse(u); err == nil && p.Scheme != "" && p.Host != "" {
		host, port = p.Hostname(), p.Port()
	} else if h, _, ok := strings.Cut(u, ":"); ok {
		host = h[strings.LastIndexByte(h, '@')+1:]
	}
	if port != "" && port != "22" {
		return "ssh-keyscan -p " + port + " " + host
	}
	return "ssh-keyscan " + cmp.Or(host, "HOST")
}

// commit is what the output variables tell of a commit.
type commit struct {
	id, author, authorDate, committerDate, message string
}

func (c commit) variables(branch, repoName string) map[string]string {
	return map[string]string{
		"CommitId":       c.id,
		"CommitMessage":  c.message,
		"BranchName":     branch,
		"AuthorName":     c.author,
		"AuthorDate":     c.authorDate,
		"CommitterDate":  c.committerDate,
		"RepositoryName": repoName,
	}
}

// commitInfo describes HEAD of the repository in dir. %aI and %cI are strict ISO 8601, which
// is RFC 3339.
func (g *gitRunner) commitInfo(dir string) (commit, error) {
	var out bytes.Buffer
	if err := g.run(dir, &out, "log", "-1", "--no-show-signature", "--format=%H%x00%an%x00%aI%x00%cI%x00%B", "HEAD"); err != nil {
		return commit{}, err
	}
	f := strings.SplitN(out.String(), "\x00", 5)
	if len(f) != 5 {
		return commit{}, fmt.Errorf("read commit: unexpected git log output %q", out.String())
	}
	return commit{id: f[0], author: f[1], authorDate: f[2], committerDate: f[3], message: capMessage(strings.TrimSpace(f[4]))}, nil
}

// capMessage cuts a commit message to maxMessage bytes, on a character boundary.
func capMessage(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	s = s[:maxMessage]
	// Drop a character cut in two: at most UTFMax-1 bytes of one.
	for i := 1; i < utf8.UTFMax; i++ {
		if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size != 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}

func short(id string) string { return id[:min(len(id), 10)] }

func subject(msg string) string {
	s, _, _ := strings.Cut(msg, "\n")
	return s
}

// gitRunner runs git for one job.
type gitRunner struct {
	exec    run.Executor
	ctx     context.Context
	git     string
	log     io.Writer
	started func(pgid int, startTime uint64)
	grace   time.Duration
	// userConfig lets git read the user's global configuration (working tree mode).
	userConfig bool
	// auth, when set, authenticates the git processes that talk to the remote.
	auth *auth
	// lfs configures the Git LFS filter, so that checkouts leave pointers for git lfs pull.
	lfs bool
}

// run runs git with args in dir. stdout, if set, receives git's standard output; everything
// else goes to the log. A non-zero exit is a *gitError.
func (g *gitRunner) run(dir string, stdout io.Writer, args ...string) error {
	tail := &tailBuffer{max: 8 << 10}
	code, err := run.Or(g.exec).Run(g.ctx, run.Cmd{
		Args:     append([]string{g.git}, args...),
		Dir:      dir,
		Env:      g.env(),
		Output:   io.MultiWriter(g.log, tail),
		Stdout:   stdout,
		Started:  g.started,
		Grace:    g.grace,
		Writable: g.writable(),
	})
	if err != nil {
		return err
	}
	if code != 0 {
		return &gitError{args: args, code: code, output: g.auth.redact(string(tail.buf)), authed: g.auth != nil}
	}
	return nil
}

// env is git's environment: the allowlist, the proxy and CA variables, and what makes git
// neither prompt nor depend on the machine's or the user's configuration; the job's
// credentials, if any.
func (g *gitRunner) env() []string {
	env := append(run.BaseEnv(), passEnv()...)
	env = append(env,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=", // empty: no askpass program at all, not even core.askPass
		"SSH_ASKPASS=",
		"GIT_SSH_COMMAND=ssh -o BatchMode=yes",
		"GIT_OPTIONAL_LOCKS=0", // status must not rewrite the index of a working tree it reads
		"LC_ALL=C",             // messages are matched to tell what is missing
	)
	config := [][2]string{
		{"core.hooksPath", "/dev/null"},
		{"advice.detachedHead", "false"},
		{"core.fsync", "none"},
	}
	if g.lfs {
		// As git lfs install --skip-smudge would: checkouts leave the pointers, git lfs pull
		// then fetches the files in one batch.
		config = append(config,
			[2]string{"filter.lfs.clean", "git-lfs clean -- %f"},
			[2]string{"filter.lfs.smudge", "git-lfs smudge --skip -- %f"},
			[2]string{"filter.lfs.process", "git-lfs filter-process --skip"},
			[2]string{"filter.lfs.required", "true"})
	}
	if g.auth != nil {
		env = append(env, g.auth.env...) // GIT_SSH_COMMAND: the last one wins
		config = append(config, g.auth.config...)
	}
	env = append(env, "GIT_CONFIG_COUNT="+strconv.Itoa(len(config)))
	for i, kv := range config {
		env = append(env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", i, kv[0]), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", i, kv[1]))
	}
	if !g.userConfig {
		env = append(env, "GIT_CONFIG_GLOBAL=/dev/null")
	}
	return env
}

// passed are the variables of the runner's environment git gets besides run.BaseEnv's: how
// to reach the network (a proxy) and which certificate authorities to trust, as git (curl),
// ssh and git-lfs read them. curl reads http_proxy in lower case only.
var passed = [...]string{
	"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy",
	"GIT_SSL_CAINFO", "SSL_CERT_FILE", "SSL_CERT_DIR",
}

// passEnv returns the variables of passed that are set in the runner's environment.
func passEnv() []string {
	var env []string
	for _, name := range passed {
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	return env
}

// writable is what an executor that confines git (run.Sandbox, whose /tmp is private) must
// let it see: the directory of the credentials, which ssh reads.
func (g *gitRunner) writable() []string {
	if g.auth != nil && g.auth.dir != "" {
		return []string{g.auth.dir}
	}
	return nil
}

// gitError is a git command that exited with a non-zero status.
type gitError struct {
	args   []string
	code   int
	output string // the end of what git wrote, credentials left out
	authed bool   // git had credentials
}

func (e *gitError) Error() string {
	return fmt.Sprintf("git %s exited with status %d: %s", e.args[0], e.code, e.fatal())
}

// fatal is the first "fatal:" line git wrote, else its last line.
func (e *gitError) fatal() string {
	lines := strings.Split(strings.TrimSpace(e.output), "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "fatal: ") {
			return strings.TrimPrefix(l, "fatal: ")
		}
	}
	return lines[len(lines)-1]
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(p), nil
}
