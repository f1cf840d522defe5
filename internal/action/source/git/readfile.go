package git

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// MaxReadFile caps the size of a file ReadFile returns.
const MaxReadFile = 4 << 20

// ErrNoFile means the file ReadFile was asked for is not in the commit.
var ErrNoFile = errors.New("no such file in the commit")

// ReadFile returns the content of the file at path (slash-separated, relative to the
// repository's root) in commit of the repository (configuration "repository", resolved
// against pipelineDir), fetching ref (refs/heads/B) into the repository's bare clone when the
// clone lacks the commit; a local repository is read in place. A missing file wraps
// ErrNoFile. Fetches authenticate with creds.
func (m *Mirror) ReadFile(ctx context.Context, repository, pipelineDir, ref, commit, file string, creds Credentials) ([]byte, error) {
	if !isHex(commit) {
		return nil, fmt.Errorf("read %s: %q is not a commit id", file, commit)
	}
	clean := path.Clean(strings.TrimPrefix(file, "./"))
	if file == "" || path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") || strings.ContainsAny(clean, "\x00\n") {
		return nil, fmt.Errorf("read %q: want a path inside the repository, such as .conveyor/pipeline.yaml", file)
	}
	dir, done, err := m.commitDir(ctx, repository, pipelineDir, ref, commit, creds)
	if err != nil {
		return nil, err
	}
	defer done()
	g := m.Remote.runner(ctx)
	var size bytes.Buffer
	if err := g.run(dir, &size, "cat-file", "-s", commit+":"+clean); err != nil {
		return nil, fmt.Errorf("read %s at %s: %w", clean, short(commit), ErrNoFile)
	}
	if n, err := strconv.ParseInt(strings.TrimSpace(size.String()), 10, 64); err != nil || n > MaxReadFile {
		return nil, fmt.Errorf("read %s at %s: the file is larger than %d bytes", clean, short(commit), MaxReadFile)
	}
	var out bytes.Buffer
	if err := g.run(dir, &out, "cat-file", "blob", commit+":"+clean); err != nil {
		return nil, fmt.Errorf("read %s at %s: %w", clean, short(commit), err)
	}
	if out.Len() > MaxReadFile {
		return nil, fmt.Errorf("read %s at %s: the file is larger than %d bytes", clean, short(commit), MaxReadFile)
	}
	return out.Bytes(), nil
}

// commitDir returns a repository holding commit: a local repository itself, or the remote
// one's bare clone with ref fetched into it when the commit is missing (locked until done).
func (m *Mirror) commitDir(ctx context.Context, repository, pipelineDir, ref, commit string, creds Credentials) (string, func(), error) {
	if p, ok := Local(repository, pipelineDir); ok {
		return p, func() {}, nil
	}
	repo, err := resolveRepository(repository, pipelineDir)
	if err != nil {
		return "", nil, err
	}
	if strings.HasPrefix(ref, "-") || strings.ContainsAny(ref, " \t\n\x00:") || !strings.HasPrefix(ref, "refs/") {
		return "", nil, fmt.Errorf("%s: %q is not a full ref name", repo.display, ref)
	}
	dir, unlock, err := m.open(ctx, repo)
	if err != nil {
		return "", nil, err
	}
	g := m.Remote.runner(ctx)
	if g.has(dir, commit) {
		return dir, unlock, nil
	}
	if g.auth, err = creds.prepare(repo.url); err != nil {
		unlock()
		return "", nil, fmt.Errorf("fetch %s of %s: %w", ref, repo.display, err)
	}
	defer g.auth.close()
	if err := g.run(dir, nil, "fetch", "--no-tags", "--quiet", "--", repo.url, "+"+ref+":refs/conveyor/"+strings.TrimPrefix(ref, "refs/")); err != nil {
		unlock()
		if ge, ok := errors.AsType[*gitError](err); ok {
			if msg := accessProblem(ge, repo); msg != "" {
				return "", nil, fmt.Errorf("fetch %s of %s: %s", ref, repo.display, msg)
			}
		}
		return "", nil, fmt.Errorf("fetch %s of %s: %w", ref, repo.display, err)
	}
	if !g.has(dir, commit) {
		if err := g.run(dir, nil, "fetch", "--no-tags", "--quiet", "--", repo.url, commit); err != nil {
			unlock()
			return "", nil, fmt.Errorf("fetch commit %s of %s: %w", short(commit), repo.display, err)
		}
	}
	return dir, unlock, nil
}
