package codebuild

import (
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/run"
)

// stageAll copies the files of the buildspec's artifacts into a directory each under
// ws.Scratch and maps them to the action's output artifacts: the primary artifacts to the
// first, each secondary artifact to the output artifact named by its identifier. Output
// artifacts with no buildspec artifact are left to the worker (the pipeline's files).
func stageAll(bs *Buildspec, job *action.Job, ws *action.Workspace, env []string, log io.Writer) (map[string]string, error) {
	type want struct {
		output, what string
		a            *Artifacts
	}
	var wants []want
	if bs.Artifacts != nil && len(bs.Artifacts.Files) > 0 {
		if len(job.Outputs) == 0 {
			fmt.Fprintf(log, "[conveyor] buildspec artifacts are not kept: the action declares no output artifact\n")
		} else {
			wants = append(wants, want{job.Outputs[0], "artifacts", bs.Artifacts})
		}
	}
	for i := range bs.Secondary {
		sec := &bs.Secondary[i]
		found := false
		for _, o := range job.Outputs {
			found = found || o == sec.Identifier
		}
		if !found {
			fmt.Fprintf(log, "[conveyor] buildspec secondary artifact %s is not kept: the action has no output artifact of that name\n", sec.Identifier)
			continue
		}
		wants = append(wants, want{sec.Identifier, "artifacts.secondary-artifacts." + sec.Identifier, &sec.Artifacts})
	}
	if len(wants) == 0 {
		return nil, nil
	}
	if ws.Scratch == "" {
		return nil, &action.Error{Kind: action.Errored, Message: "stage artifacts: the worker gave no scratch directory"}
	}
	out := map[string]string{}
	for i, w := range wants {
		if _, dup := out[w.output]; dup {
			return nil, failed("buildspec: output artifact %s gets both the primary artifacts and secondary artifact %s; name the secondary artifact after another output", w.output, w.output)
		}
		dest := filepath.Join(ws.Scratch, fmt.Sprintf("artifact-%d", i))
		n, err := stage(w.a, ws, env, dest)
		if err != nil {
			return nil, failed("buildspec %s: %v", w.what, err)
		}
		fmt.Fprintf(log, "[conveyor] buildspec %s: %d files for output artifact %s\n", w.what, n, w.output)
		out[w.output] = dest
	}
	return out, nil
}

// stage copies (hard-links where it can) the files a matches into dest and returns how many.
func stage(a *Artifacts, ws *action.Workspace, env []string, dest string) (int, error) {
	base := ws.Dir
	if a.BaseDirectory != "" {
		b := os.Expand(a.BaseDirectory, func(k string) string { return run.Getenv(env, k) })
		if !filepath.IsAbs(b) {
			if !filepath.IsLocal(filepath.Clean(b)) && filepath.Clean(b) != "." {
				return 0, fmt.Errorf("base-directory %q is outside the primary source directory", a.BaseDirectory)
			}
			b = filepath.Join(ws.Dir, b)
		}
		b = filepath.Clean(b)
		inside := false
		for _, d := range append([]string{ws.Dir}, slices.Collect(maps.Values(ws.Inputs))...) {
			if rel, err := filepath.Rel(d, b); err == nil && filepath.IsLocal(rel) || b == d {
				inside = true
			}
		}
		if !inside {
			return 0, fmt.Errorf("base-directory %q (%s) is outside the build's source directories", a.BaseDirectory, b)
		}
		base = b
	}
	if fi, err := os.Stat(base); err != nil || !fi.IsDir() {
		return 0, fmt.Errorf("base-directory %q does not exist after the build", a.BaseDirectory)
	}
	for _, g := range append(a.Files, a.ExcludePaths...) {
		if strings.HasPrefix(g, "/") || slices.Contains(strings.Split(g, "/"), "..") {
			return 0, fmt.Errorf("pattern %q must be relative to the base directory, without ..", g)
		}
	}
	n := 0
	placed := map[string]string{}
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if matchAny(a.ExcludePaths, rel) {
				return filepath.SkipDir
			}
			return nil
		}
		if !matchAny(a.Files, rel) || matchAny(a.ExcludePaths, rel) {
			return nil
		}
		name := rel
		if a.DiscardPaths {
			name = path.Base(rel)
			if prev, ok := placed[name]; ok {
				return fmt.Errorf("discard-paths puts %s and %s at the same name %s", prev, rel, name)
			}
			placed[name] = rel
		}
		target := filepath.Join(dest, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		if err := copyEntry(p, target, d); err != nil {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		return 0, err
	}
	if n == 0 {
		where := "the source directory"
		if a.BaseDirectory != "" {
			where = "base-directory " + a.BaseDirectory
		}
		return 0, fmt.Errorf("no file under %s matches files %s", where, strings.Join(a.Files, ", "))
	}
	return n, nil
}

func copyEntry(src, dst string, d fs.DirEntry) error {
	if d.Type()&fs.ModeSymlink != 0 {
		t, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(t, dst)
	}
	if !d.Type().IsRegular() {
		return nil // sockets, pipes and devices are not artifacts
	}
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// matchAny reports whether rel (slash-separated) matches one of the patterns. A "**"
// element matches any number of directories; "**" inside an element acts as "*"; a pattern
// matching a directory matches everything below it.
func matchAny(patterns []string, rel string) bool {
	parts := strings.Split(rel, "/")
	for _, p := range patterns {
		p = strings.TrimSuffix(strings.TrimPrefix(p, "./"), "/")
		if p == "" {
			continue
		}
		if matchSegs(strings.Split(p, "/"), parts, true) {
			return true
		}
	}
	return false
}

func matchSegs(pat, parts []string, prefixOK bool) bool {
	if len(pat) == 0 {
		return len(parts) == 0 || prefixOK
	}
	if pat[0] == "**" {
		for i := 0; i <= len(parts); i++ {
			if matchSegs(pat[1:], parts[i:], prefixOK) {
				return true
			}
		}
		return false
	}
	if len(parts) == 0 {
		return false
	}
	ok, err := path.Match(strings.ReplaceAll(pat[0], "**", "*"), parts[0])
	return err == nil && ok && matchSegs(pat[1:], parts[1:], prefixOK)
}
