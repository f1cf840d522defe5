package git

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/conveyorci/conveyor/internal/action"
)

// workTree copies the working tree of src, as it is, into dst.
func workTree(g *gitRunner, src, dst string) (*action.Result, error) {
	src, err := filepath.Abs(src)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(src); err != nil || !fi.IsDir() {
		return nil, &action.Error{Kind: action.Failed, Message: fmt.Sprintf("source directory %s does not exist or is not a directory", src)}
	}
	g.userConfig = true // ignored is what `git status` shows the user

	// status first: it tells whether src is in a work tree at all, where HEAD is, and what
	// is uncommitted.
	var status bytes.Buffer
	err = g.run(src, &status, "status", "--porcelain=v2", "-z", "--branch", "--untracked-files=normal", "--", ".")
	if ge, ok := errors.AsType[*gitError](err); ok && strings.Contains(ge.output, "not a git repository") {
		return plainDir(g, src, dst)
	}
	if err != nil {
		return nil, err
	}
	st := parseStatus(status.Bytes())

	var list bytes.Buffer
	if err := g.run(src, &list, "ls-files", "-z", "--cached", "--others", "--exclude-standard"); err != nil {
		return nil, err
	}
	var c commit
	if st.oid != "" {
		if c, err = g.commitInfo(src); err != nil {
			return nil, err
		}
	}
	n, err := copyFiles(g, src, dst, strings.Split(strings.TrimSuffix(list.String(), "\x00"), "\x00"))
	if err != nil {
		return nil, err
	}
	top := topLevel(src)
	at := "no commit yet"
	if c.id != "" {
		at = short(c.id)
	}
	if st.branch != "" {
		at += " (" + st.branch + ")"
	}
	return &action.Result{
		Variables: c.variables(st.branch, filepath.Base(top)),
		Summary:   fmt.Sprintf("working tree of %s at %s with %s: %s copied", src, at, plural(st.changes, "uncommitted change"), plural(n, "file")),
	}, nil
}

// plainDir copies src, which is not in a Git work tree, whole but for .git entries.
func plainDir(g *gitRunner, src, dst string) (*action.Result, error) {
	var names []string
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == ".git" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			rel, err := filepath.Rel(src, path)
			if err != nil {
				return err
			}
			names = append(names, rel)
		}
		return nil
	})
	if err != nil {
		return nil, &action.Error{Kind: action.Errored, Message: "list " + src, Err: err}
	}
	n, err := copyFiles(g, src, dst, names)
	if err != nil {
		return nil, err
	}
	return &action.Result{
		Variables: commit{}.variables("", filepath.Base(src)),
		Summary:   fmt.Sprintf("directory %s, not a Git work tree: %s copied, no commit to describe", src, plural(n, "file")),
	}, nil
}

// workStatus is what `git status --porcelain=v2 --branch` tells.
type workStatus struct {
	oid     string // HEAD's commit, "" before the first commit
	branch  string // "" when HEAD is detached
	changes int    // changed, unmerged and untracked entries
}

func parseStatus(b []byte) workStatus {
	var st workStatus
	records := strings.Split(string(b), "\x00")
	for i := 0; i < len(records); i++ {
		r := records[i]
		switch {
		case strings.HasPrefix(r, "# branch.oid "):
			if oid := strings.TrimPrefix(r, "# branch.oid "); oid != "(initial)" {
				st.oid = oid
			}
		case strings.HasPrefix(r, "# branch.head "):
			if head := strings.TrimPrefix(r, "# branch.head "); head != "(detached)" {
				st.branch = head
			}
		case strings.HasPrefix(r, "2 "):
			st.changes++
			i++ // a rename or copy is followed by its original path
		case strings.HasPrefix(r, "1 "), strings.HasPrefix(r, "u "), strings.HasPrefix(r, "? "):
			st.changes++
		}
	}
	return st
}

// copyFiles copies the named files (relative to src) into dst: regular files with their
// permission bits, symlinks as symlinks. Names that no longer exist (deleted files),
// directories (submodules, nested repositories) and special files are skipped, and so are
// names that lead out of src through a symlinked directory. It returns how many it copied.
func copyFiles(g *gitRunner, src, dst string, names []string) (int, error) {
	realSrc, err := filepath.EvalSymlinks(src)
	if err != nil {
		return 0, &action.Error{Kind: action.Errored, Message: "copy " + src, Err: err}
	}
	dirOK := map[string]bool{".": true} // parent directories checked, and made in dst
	type file struct {
		rel  string
		mode fs.FileMode
	}
	var files []file
	links := 0
	for _, rel := range names {
		if rel == "" || strings.HasSuffix(rel, "/") || !filepath.IsLocal(rel) {
			continue
		}
		parent := filepath.Dir(rel)
		ok, seen := dirOK[parent]
		if !seen {
			real, err := filepath.EvalSymlinks(filepath.Join(src, parent))
			ok = err == nil && real == filepath.Join(realSrc, parent)
			if ok {
				if err := os.MkdirAll(filepath.Join(dst, parent), 0o755); err != nil {
					return 0, &action.Error{Kind: action.Errored, Message: "copy " + src, Err: err}
				}
			}
			dirOK[parent] = ok
		}
		if !ok {
			continue
		}
		fi, err := os.Lstat(filepath.Join(src, rel))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, &action.Error{Kind: action.Errored, Message: "copy " + src, Err: err}
		}
		switch {
		case fi.Mode().IsRegular():
			files = append(files, file{rel, fi.Mode().Perm()})
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(filepath.Join(src, rel))
			if err == nil {
				err = os.Symlink(target, filepath.Join(dst, rel))
			}
			if err != nil {
				return 0, &action.Error{Kind: action.Errored, Message: "copy " + src, Err: err}
			}
			links++
		}
	}

	// Copy the files' contents in parallel: on a large tree, the time is in opening files.
	work := make(chan file)
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	for range min(8, 2*runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for f := range work {
				err := g.ctx.Err()
				if err == nil {
					err = copyFile(filepath.Join(src, f.rel), filepath.Join(dst, f.rel), f.mode)
				}
				if err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, f := range files {
		work <- f
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		if g.ctx.Err() != nil {
			return 0, firstErr
		}
		return 0, &action.Error{Kind: action.Errored, Message: "copy " + src, Err: firstErr}
	}
	return len(files) + links, nil
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in) // copy_file_range: a reflink where the file system has them
	if err == nil {
		err = out.Chmod(perm) // the exec bit, whatever the umask
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
