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
	"strings"
	"sync"
)

// Mirror keeps bare clones of remote repositories under Dir, one per repository, to answer
// questions a payload leaves open (which files a push changed) without a working tree. Each
// question fetches only what is missing. It is safe for concurrent use; questions about one
// repository are answered one at a time.
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
	if path, ok := Local(repository, pipelineDir); ok {
		return m.diff(ctx, path, from, to, mergeBase)
	}
	repo, err := resolveRepository(repository, pipelineDir)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(ref, "-") || strings.ContainsAny(ref, " \t\n\x00:") || !strings.HasPrefix(ref, "refs/") {
		return nil, fmt.Errorf("changed files of %s: %q is not a full ref name", repo.display, ref)
	}
	dir, unlock, err := m.open(ctx, repo)
	if err != nil {
		return nil, err
	}
	defer unlock()
	g := m.Remote.runner(ctx)
	if g.auth, err = creds.prepare(repo.url); err != nil {
		return nil, fmt.Errorf("changed files of %s: %w", repo.display, err)
	}
	defer g.auth.close()
	if !g.has(dir, to) {
		// The ref is fetched into a name of its own: the clone keeps what it fetched before, so
		// the old commit of a force push is often still there.
		if err := g.run(dir, nil, "fetch", "--no-tags", "--quiet", "--", repo.url, "+"+ref+":refs/conveyor/"+strings.TrimPrefix(ref, "refs/")); err != nil {
			if ge, ok := errors.AsType[*gitError](err); ok {
				if msg := accessProblem(ge, repo); msg != "" {
					return nil, fmt.Errorf("fetch %s of %s: %s", ref, repo.display, msg)
				}
			}
			return nil, fmt.Errorf("fetch %s of %s: %w", ref, repo.display, err)
		}
	}
	for _, c := range []string{to, from} {
		if g.has(dir, c) {
			continue
		}
		if err := g.run(dir, nil, "fetch", "--no-tags", "--quiet", "--", repo.url, c); err != nil {
			return nil, fmt.Errorf("changed files of %s: commit %s is unknown to the repository's clone and the server does not serve it by id: %w",
				repo.display, short(c), err)
		}
	}
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
