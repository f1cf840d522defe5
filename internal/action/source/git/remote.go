package git

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/conveyorci/conveyor/internal/run"
)

// Remote asks a repository about its refs without fetching anything, running git as source
// actions do (the same environment: no prompt, no user or system configuration). The trigger
// package's poller uses it. The zero value runs git from the PATH on the host.
type Remote struct {
	Git      string       // the git program; empty means git from the PATH
	Executor run.Executor // nil means run.Host
}

// Head returns the commit that branch points at in the repository (configuration
// "repository", resolved against pipelineDir as actions resolve it), with git ls-remote;
// branch "" means the branch the repository's HEAD names, which is returned too. A branch
// the repository lacks is an error.
func (r *Remote) Head(ctx context.Context, repository, pipelineDir, branch string) (commit, name string, err error) {
	repo, err := resolveRepository(repository, pipelineDir)
	if err != nil {
		return "", "", err
	}
	if strings.HasPrefix(branch, "-") || strings.ContainsAny(branch, " \t\n\x00") {
		return "", "", fmt.Errorf("branch %q is not a valid Git ref", branch)
	}
	var out bytes.Buffer
	g := r.runner(ctx)
	args := []string{"ls-remote", "--symref", "--", repo.url, "HEAD"}
	if branch != "" {
		args = []string{"ls-remote", "--", repo.url, "refs/heads/" + branch}
	}
	if err := g.run("", &out, args...); err != nil {
		return "", "", fmt.Errorf("check %s: %w", repo.display, err)
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
