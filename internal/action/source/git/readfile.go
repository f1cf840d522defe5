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
	if file == "" || path.IsAbs(clean) || clean == "." || clean == ".." || strings.HasPrefix(clean, "../") || strings.ContainsAny(clean, "\x00\n") {
		return nil, fmt.Errorf("read %q: want a path inside the repository, such as .conveyor/pipeline.yaml", file)
	}
	dir, done, err := m.clone(ctx, repository, pipelineDir, ref, creds, commit)
	if err != nil {
		return nil, err
	}
	defer done()
	g := m.Remote.runner(ctx)
	// ls-tree tells a missing path (no entry) from a missing commit (an error), and gives the
	// entry's type and size: "<mode> <type> <object> <size>\t<path>\x00". Its paths are
	// literal, without wildcards.
	var entry bytes.Buffer
	if err := g.run(dir, &entry, "ls-tree", "-z", "-l", "--full-tree", commit, "--", clean); err != nil {
		return nil, fmt.Errorf("read %s at %s: %w", clean, short(commit), err)
	}
	meta, name, _ := strings.Cut(strings.TrimSuffix(entry.String(), "\x00"), "\t")
	fields := strings.Fields(meta)
	if name != clean || len(fields) != 4 {
		return nil, fmt.Errorf("read %s at %s: %w", clean, short(commit), ErrNoFile)
	}
	switch fields[1] {
	case "blob":
	case "tree":
		return nil, fmt.Errorf("read %s at %s: it is a directory: name a file in it", clean, short(commit))
	default:
		return nil, fmt.Errorf("read %s at %s: it is a submodule, not a file: name a file of this repository", clean, short(commit))
	}
	if n, err := strconv.ParseInt(fields[3], 10, 64); err != nil || n > MaxReadFile {
		return nil, fmt.Errorf("read %s at %s: the file is larger than %d bytes", clean, short(commit), MaxReadFile)
	}
	var out bytes.Buffer
	if err := g.run(dir, &out, "cat-file", "blob", fields[2]); err != nil {
		return nil, fmt.Errorf("read %s at %s: %w", clean, short(commit), err)
	}
	return out.Bytes(), nil
}
