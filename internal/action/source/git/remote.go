package git

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/conveyorci/conveyor/internal/run"
)

// Remote asks a repository about its refs without fetching anything, running git as source
// actions do (the same environment: no prompt, no user or system configuration). The trigger
// package's poller uses it. The zero value runs git from the PATH on the host.
type Remote struct {
	Git      string       // the git program; empty means git from the PATH
	Executor run.Executor // nil means run.Host

	httpOnce sync.Once // the smart-HTTP client (refs.go), made at first use
	http     *http.Client
	httpErr  error
}

// Head returns the commit that branch points at in the repository (configuration
// "repository", resolved against pipelineDir as actions resolve it), authenticated with
// creds; branch "" means the branch the repository's HEAD names, which is returned too. A
// branch the repository lacks is an error. A repository on this machine is read in place
// and an HTTP(S) one asked in Go (refs.go); anything else, and what those cannot answer,
// with git ls-remote.
func (r *Remote) Head(ctx context.Context, repository, pipelineDir, branch string, creds Credentials) (commit, name string, err error) {
	repo, err := resolveRepository(repository, pipelineDir)
	if err != nil {
		return "", "", err
	}
	if strings.HasPrefix(branch, "-") || strings.ContainsAny(branch, " \t\n\x00") {
		return "", "", fmt.Errorf("branch %q is not a valid Git ref", branch)
	}
	switch commit, name, err = r.fastHead(ctx, repo, branch, creds); {
	case err == nil:
		return commit, name, nil
	case errors.Is(err, errNoRef) && branch == "":
		return "", "", fmt.Errorf("check %s: the repository has no HEAD commit", repo.display)
	case errors.Is(err, errNoRef):
		return "", "", fmt.Errorf("check %s: branch %s not found", repo.display, branch)
	case !errors.Is(err, errFallback):
		return "", "", err
	}
	return r.lsRemote(ctx, repo, branch, creds)
}

// fastHead answers Head without a process when it can (refs.go); errFallback when it
// cannot.
func (r *Remote) fastHead(ctx context.Context, repo repository, branch string, creds Credentials) (commit, name string, err error) {
	if path, ok := localPath(repo); ok && creds.empty() {
		return localHead(path, branch)
	}
	if u, err := url.Parse(repo.url); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		creds.SSHKey == "" && creds.validate() == nil {
		return r.httpHead(ctx, repo, branch, creds)
	}
	return "", "", errFallback
}

// lsRemote is Head through git ls-remote.
func (r *Remote) lsRemote(ctx context.Context, repo repository, branch string, creds Credentials) (commit, name string, err error) {
	g := r.runner(ctx)
	if g.auth, err = creds.prepare(repo.url); err != nil {
		return "", "", fmt.Errorf("check %s: %w", repo.display, err)
	}
	defer g.auth.close()
	var out bytes.Buffer
	args := []string{"ls-remote", "--symref", "--", repo.url, "HEAD"}
	if branch != "" {
		args = []string{"ls-remote", "--", repo.url, "refs/heads/" + branch}
	}
	if err := g.run("", &out, args...); err != nil {
		return "", "", remoteCheckError(err, repo)
	}
	name = branch
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		left, ref, _ := strings.Cut(sc.Text(), "\t")
		switch {
		case strings.HasPrefix(left, "ref: ") && ref == "HEAD":
			name = strings.TrimPrefix(strings.TrimPrefix(left, "ref: "), "refs/heads/")
		case branch == "" && ref == "HEAD", branch != "" && ref == "refs/heads/"+branch:
			commit = left
		}
	}
	if commit == "" || !isHex(commit) {
		if branch == "" {
			return "", "", fmt.Errorf("check %s: the repository has no HEAD commit", repo.display)
		}
		return "", "", fmt.Errorf("check %s: branch %s not found", repo.display, branch)
	}
	return commit, name, nil
}

// Local returns the absolute path of the repository when it is on this machine (its
// objects can be read, e.g. by ChangedFiles), ok=false for a URL.
func Local(repository, pipelineDir string) (path string, ok bool) {
	if isRemote(repository) {
		return "", false
	}
	repo, err := resolveRepository(repository, pipelineDir)
	if err != nil {
		return "", false
	}
	return repo.url, true
}

// ChangedFiles lists the files that differ between two commits of the repository at path (a
// local repository, see Local), with git diff --name-only.
func (r *Remote) ChangedFiles(ctx context.Context, path, from, to string) ([]string, error) {
	if !isHex(from) || !isHex(to) {
		return nil, fmt.Errorf("changed files of %s: %q..%q are not commit ids", path, from, to)
	}
	var out bytes.Buffer
	if err := r.runner(ctx).run(path, &out, "diff", "--name-only", "--no-renames", from, to, "--"); err != nil {
		return nil, fmt.Errorf("changed files of %s: %w", path, err)
	}
	var files []string
	for l := range strings.Lines(out.String()) {
		if l = strings.TrimRight(l, "\n"); l != "" {
			files = append(files, l)
		}
	}
	return files, nil
}

func (r *Remote) runner(ctx context.Context) *gitRunner {
	return &gitRunner{exec: r.Executor, ctx: ctx, git: cmp.Or(r.Git, "git"), log: io.Discard}
}

// remoteCheckError is the error of a failed question to the remote: what to do about the
// host key or the credentials when that is what failed, else git's reason.
func remoteCheckError(err error, repo repository) error {
	if ge, ok := errors.AsType[*gitError](err); ok {
		if msg := accessProblem(ge, repo); msg != "" {
			return fmt.Errorf("check %s: %s", repo.display, msg)
		}
	}
	return fmt.Errorf("check %s: %w", repo.display, err)
}
