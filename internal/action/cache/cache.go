package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/pipeline"
)

// Spec is one cache an action declares: a key and the directories kept under it.
type Spec struct {
	Key   string
	Paths []string
}

// Parse reads a cache setting as the pipeline leaves it ([]any of {key, paths}) or as JSON
// decodes it. what names the setting in errors ("configuration cache").
func Parse(v any, what string) ([]Spec, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s must be a list of { key, paths }, not %T", what, v)
	}
	out := make([]Spec, 0, len(list))
	for i, it := range list {
		m, ok := it.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s[%d] must be a mapping { key, paths }, not %T", what, i, it)
		}
		key, _ := m["key"].(string)
		if key == "" || strings.ContainsAny(key, "\x00\n") {
			return nil, fmt.Errorf("%s[%d].key must be a non-empty string on one line", what, i)
		}
		var paths []string
		switch ps := m["paths"].(type) {
		case []string:
			paths = ps
		case []any:
			for _, p := range ps {
				s, ok := p.(string)
				if !ok {
					return nil, fmt.Errorf("%s[%d].paths must be a list of strings", what, i)
				}
				paths = append(paths, s)
			}
		}
		if len(paths) == 0 {
			return nil, fmt.Errorf("%s[%d].paths must list at least one directory", what, i)
		}
		for _, p := range paths {
			if err := CheckPath(p); err != nil {
				return nil, fmt.Errorf("%s[%d].paths: %w", what, i, err)
			}
		}
		out = append(out, Spec{Key: key, Paths: paths})
	}
	return out, nil
}

// CheckPath accepts a directory to cache: relative to the workspace (inside it), absolute,
// or under ~/ (the action's home), without "..".
func CheckPath(p string) error {
	rel, home := strings.CutPrefix(p, "~/")
	switch {
	case p == "" || p == "~" || p == "/" || strings.ContainsRune(p, 0):
		return fmt.Errorf("%q is not a directory to cache: name a directory below it", p)
	case home || filepath.IsAbs(p):
		for _, e := range strings.Split(rel, "/") {
			if e == ".." {
				return fmt.Errorf("%q must not hold ..", p)
			}
		}
	case !filepath.IsLocal(p):
		return fmt.Errorf("%q leaves the workspace: a path is relative to the workspace, absolute, or starts with ~/", p)
	}
	return nil
}

// Session is the caches of one run of an action, between Restore and Save.
type Session struct {
	c       action.Cache
	log     io.Writer
	entries []*entry
}

type entry struct {
	label    string // "KEY (PATH)", for the log
	key      string // the key in the store: the resolved key and the path as written
	dir      string
	restored string // the fingerprint of dir once restored; "" after a miss
}

// Restore resolves each spec's key (#{hash:FILE} becomes the SHA-256 of the workspace
// file, in hex) and paths (relative to ws.Dir; ~/ is home), then restores every directory
// saved under its key. A miss, or a cache that cannot be used, is a line in log. With no
// action.Cache (ws.Cache nil), the log says the caches are not kept.
func Restore(ctx context.Context, ws *action.Workspace, specs []Spec, home string, log io.Writer) *Session {
	s := &Session{c: ws.Cache, log: log}
	if len(specs) == 0 {
		return s
	}
	if s.c == nil {
		fmt.Fprintf(log, "[conveyor] cache: this worker keeps no caches; the action runs without them\n")
		return s
	}
	for _, spec := range specs {
		key, err := resolveKey(ws.Dir, spec.Key)
		if err != nil {
			fmt.Fprintf(log, "[conveyor] warning: cache %s: %v; the cache is not used\n", spec.Key, err)
			continue
		}
		for _, p := range spec.Paths {
			e := &entry{label: key + " (" + p + ")", key: key + "\n" + p}
			switch rel, ok := strings.CutPrefix(p, "~/"); {
			case ok && home == "":
				fmt.Fprintf(log, "[conveyor] warning: cache %s: the action has no home directory ($HOME); the path is not cached\n", e.label)
				continue
			case ok:
				e.dir = filepath.Join(home, rel)
			case filepath.IsAbs(p):
				e.dir = filepath.Clean(p)
			default:
				e.dir = filepath.Join(ws.Dir, p)
			}
			s.entries = append(s.entries, e)
			s.restore(ctx, e)
		}
	}
	return s
}

func (s *Session) restore(ctx context.Context, e *entry) {
	start := time.Now()
	found, err := restoreInto(ctx, s.c, e.key, e.dir)
	switch {
	case err != nil:
		fmt.Fprintf(s.log, "[conveyor] warning: cache %s: restore: %v\n", e.label, err)
	case !found:
		fmt.Fprintf(s.log, "[conveyor] cache %s: none saved yet\n", e.label)
	default:
		e.restored, err = fingerprint(e.dir)
		if err != nil {
			fmt.Fprintf(s.log, "[conveyor] warning: cache %s: %v\n", e.label, err)
		}
		fmt.Fprintf(s.log, "[conveyor] cache %s: restored in %s\n", e.label, time.Since(start).Round(time.Millisecond))
	}
}

// restoreInto restores key into dir; into a directory that already holds files (a home
// directory the action shares with others, say), through a staging directory beside it
// whose files are then moved in, the ones already there kept.
func restoreInto(ctx context.Context, c action.Cache, key, dir string) (bool, error) {
	if empty, err := isEmptyDir(dir); err != nil {
		return false, err
	} else if empty {
		return c.Restore(ctx, key, dir)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return false, err
	}
	staging, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".cache-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(staging)
	found, err := c.Restore(ctx, key, staging)
	if err != nil || !found {
		return found, err
	}
	return true, merge(staging, dir)
}

// isEmptyDir reports whether dir is missing or an empty directory.
func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("%s is not a directory", dir)
	}
	_, err = f.Readdirnames(1)
	return err == io.EOF, nil
}

// merge moves the files of src into dst where dst has nothing of that name.
func merge(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		fi, lerr := os.Lstat(target)
		if d.IsDir() {
			switch {
			case lerr == nil && fi.IsDir():
				return nil
			case lerr == nil:
				return filepath.SkipDir // something else is there: it wins
			}
			if err := os.Rename(p, target); err != nil {
				return err
			}
			return filepath.SkipDir // moved whole
		}
		if lerr == nil {
			return nil
		}
		return os.Rename(p, target)
	})
}

// Save stores, after a success, each directory whose content changed since Restore (or
// that was not restored and now holds files). ctx done: nothing is saved.
func (s *Session) Save(ctx context.Context) {
	for _, e := range s.entries {
		if ctx.Err() != nil {
			return
		}
		fp, err := fingerprint(e.dir)
		switch {
		case err != nil:
			fmt.Fprintf(s.log, "[conveyor] warning: cache %s: %v; not saved\n", e.label, err)
			continue
		case fp == "":
			fmt.Fprintf(s.log, "[conveyor] cache %s: %s holds no file; nothing to save\n", e.label, e.dir)
			continue
		case fp == e.restored:
			fmt.Fprintf(s.log, "[conveyor] cache %s: unchanged; not saved\n", e.label)
			continue
		}
		start := time.Now()
		if err := s.c.Save(ctx, e.key, e.dir); err != nil {
			fmt.Fprintf(s.log, "[conveyor] warning: cache %s: save: %v\n", e.label, err)
			continue
		}
		fmt.Fprintf(s.log, "[conveyor] cache %s: saved in %s\n", e.label, time.Since(start).Round(time.Millisecond))
	}
}

// fingerprint sums what a directory holds as a stat sees it (names, types, modes, sizes,
// modification times), cheaply: enough to tell that an action changed nothing. "" means
// it is missing or holds no file.
func fingerprint(dir string) (string, error) {
	h := sha256.New()
	files := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == dir {
			return filepath.SkipAll
		}
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files++
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s\x00%o\x00%d\x00%d\n", rel, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("read %s: %w", dir, err)
	}
	if files == 0 {
		return "", nil
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// resolveKey replaces each #{hash:FILE} in key with the SHA-256 of the workspace file.
func resolveKey(dir, key string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(key, "#{"+pipeline.HashPrefix)
		if i < 0 {
			b.WriteString(key)
			return b.String(), nil
		}
		name, rest, ok := strings.Cut(key[i+2+len(pipeline.HashPrefix):], "}")
		if !ok {
			return "", fmt.Errorf("%q is not closed by }", key[i:])
		}
		sum, err := hashFile(dir, name)
		if err != nil {
			return "", fmt.Errorf("#{hash:%s}: %w", name, err)
		}
		b.WriteString(key[:i])
		b.WriteString(sum)
		key = rest
	}
}

// hashFile is the SHA-256 of a file of the workspace, read through the workspace root so
// a link cannot lead outside it.
func hashFile(dir, name string) (string, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return "", err
	}
	defer r.Close()
	f, err := r.Open(filepath.FromSlash(name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s is not in the workspace", name)
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
