package git

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Mirror keeps bare clones of remote repositories under Dir, one per repository, to answer
// questions a payload leaves open (which files a push changed, what a linked pipeline file
// holds) without a working tree. Each question fetches only what is missing. It is safe for
// concurrent use; questions about one repository are answered one at a time.
type Mirror struct {
	Dir    string // where the bare clones live (created when missing)
	Remote Remote // how git runs

	mu    sync.Mutex
	repos map[string]*sync.Mutex
}

// ChangedFiles lists the files that differ between commits from and to of the repository
// (configuration "repository", resolved against pipelineDir), with git diff --name-only. A
// local repository is read in place; a remote one is fetched into its bare clone first: ref
// (refs/heads/B, refs/tags/T, refs/pull/N/head...) brings to, and from is fetched by id when
// the ref no longer reaches it (a force push), which works on servers that allow it (GitHub,
// GitLab, Gitea); elsewhere the error says the old commit is unknown. With mergeBase, the
// files are those changed since the merge base of from and to (a pull request's files).
// Fetches authenticate with creds.
func (m *Mirror) ChangedFiles(ctx context.Context, repository, pipelineDir, ref, from, to string, mergeBase bool, creds Credentials) ([]string, error) {
	if !isHex(from) || !isHex(to) {
		return nil, fmt.Errorf("changed files: %q..%q are not commit ids", from, to)
	}
	// to first: the ref brings it, and from with it unless a force push left from behind.
	dir, done, err := m.clone(ctx, repository, pipelineDir, ref, creds, to, from)
	if err != nil {
		return nil, err
	}
	defer done()
	return m.diff(ctx, dir, from, to, mergeBase)
}

func (m *Mirror) diff(ctx context.Context, dir, from, to string, mergeBase bool) ([]string, error) {
	if mergeBase {
		var out bytes.Buffer
		if err := m.Remote.runner(ctx).run(dir, &out, "merge-base", from, to); err != nil {
			return nil, fmt.Errorf("merge base of %s and %s: %w", short(from), short(to), err)
		}
		from = strings.TrimSpace(out.String())
	}
	return m.Remote.ChangedFiles(ctx, dir, from, to)
}

// clone returns a repository holding every commit of want: a local repository itself (read
// in place), or the bare clone of a remote one, locked until done is called. Into the clone,
// ref (refs/heads/B, refs/tags/T, refs/pull/N/head...) is fetched when want[0] is missing,
// then any commit still missing is fetched by id, which works on servers that allow it
// (GitHub, GitLab, Gitea). Fetches authenticate with creds, prepared only when something is
// fetched.
func (m *Mirror) clone(ctx context.Context, repository, pipelineDir, ref string, creds Credentials, want ...string) (dir string, done func(), err error) {
	if p, ok := Local(repository, pipelineDir); ok {
		return p, func() {}, nil
	}
	repo, err := resolveRepository(repository, pipelineDir)
	if err != nil {
		return "", nil, err
	}
	if strings.HasPrefix(ref, "-") || strings.ContainsAny(ref, " \t\n\x00:") || !strings.HasPrefix(ref, "refs/") {
		return "", nil, fmt.Errorf("fetch from %s: %q is not a full ref name, such as refs/heads/main", repo.display, ref)
	}
	dir, unlock, err := m.open(ctx, repo)
	if err != nil {
		return "", nil, err
	}
	if err := m.fetch(ctx, dir, repo, ref, creds, want); err != nil {
		unlock()
		return "", nil, err
	}
	return dir, unlock, nil
}

// fetch brings the commits of want into the clone at dir (see clone).
func (m *Mirror) fetch(ctx context.Context, dir string, repo repository, ref string, creds Credentials, want []string) error {
	g := m.Remote.runner(ctx)
	missing := slices.DeleteFunc(slices.Clone(want), func(c string) bool { return g.has(dir, c) })
	if len(missing) == 0 {
		return nil
	}
	var err error
	if g.auth, err = creds.prepare(repo.url); err != nil {
		return fmt.Errorf("fetch %s of %s: %w", ref, repo.display, err)
	}
	defer g.auth.close()
	if missing[0] == want[0] { // the ref brings want[0]
		// The ref is fetched into a name of its own: the clone keeps what it fetched before, so
		// the old commit of a force push is often still there.
		if err := g.run(dir, nil, "fetch", "--no-tags", "--quiet", "--", repo.url, "+"+ref+":refs/conveyor/"+strings.TrimPrefix(ref, "refs/")); err != nil {
			if ge, ok := errors.AsType[*gitError](err); ok {
				if msg := accessProblem(ge, repo); msg != "" {
					return fmt.Errorf("fetch %s of %s: %s", ref, repo.display, msg)
				}
			}
			return fmt.Errorf("fetch %s of %s: %w", ref, repo.display, err)
		}
	}
	for _, c := range missing {
		if g.has(dir, c) {
			continue
		}
		if err := g.run(dir, nil, "fetch", "--no-tags", "--quiet", "--", repo.url, c); err != nil {
			return fmt.Errorf("fetch commit %s of %s: the repository's clone lacks it and the server does not serve it by id "+
				"(is it still on a branch of the repository?): %w", short(c), repo.display, err)
		}
	}
	return nil
}

// has reports whether the repository at dir holds commit c.
func (g *gitRunner) has(dir, c string) bool {
	return g.run(dir, nil, "cat-file", "-e", c+"^{commit}") == nil
}

// open returns the bare clone of repo, created when missing, locked for the caller.
func (m *Mirror) open(ctx context.Context, repo repository) (string, func(), error) {
	if m.Dir == "" {
		return "", nil, errors.New("no directory for the repositories' clones")
	}
	sum := sha256.Sum256([]byte(repo.url))
	name := repo.name + "-" + hex.EncodeToString(sum[:8]) + ".git"
	dir := filepath.Join(m.Dir, name)
	m.mu.Lock()
	if m.repos == nil {
		m.repos = map[string]*sync.Mutex{}
	}
	l := m.repos[dir]
	if l == nil {
		l = &sync.Mutex{}
		m.repos[dir] = l
	}
	m.mu.Unlock()
	l.Lock()
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil {
		if err := os.MkdirAll(m.Dir, 0o700); err != nil {
			l.Unlock()
			return "", nil, fmt.Errorf("create %s: %w", m.Dir, err)
		}
		tmp, err := os.MkdirTemp(m.Dir, ".new-")
		if err == nil {
			err = m.Remote.runner(ctx).run(tmp, nil, "init", "--bare", "--quiet", "--template=")
		}
		if err == nil {
			err = os.Rename(tmp, dir)
		}
		if err != nil {
			os.RemoveAll(tmp)
			l.Unlock()
			return "", nil, fmt.Errorf("create the clone of %s: %w", repo.display, err)
		}
	}
	return dir, l.Unlock, nil
}
