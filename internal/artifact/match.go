package artifact

import (
	"context"
	"fmt"
	"os"
	"slices"
)

// CheckGlob checks one file pattern of the syntax output artifacts use (see doc.go).
func CheckGlob(g string) error {
	_, err := parseGlob(g)
	return err
}

// Match returns the regular files under root that globs select, with the syntax output
// artifacts use (no globs selects none here), as slash-separated paths relative to root,
// sorted. Symlinks and other special files are not followed and not returned. At most limit
// files are returned (limit <= 0: no limit).
func Match(ctx context.Context, root string, globs []string, limit int) ([]string, error) {
	if len(globs) == 0 {
		return nil, nil
	}
	m, err := newMatcher(globs)
	if err != nil {
		return nil, err
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("match files: %w", err)
	}
	defer r.Close()
	var out []string
	var visit func(dir string, matched bool) error
	visit = func(dir string, matched bool) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, err := r.Open(cmpDot(dir))
		if err != nil {
			return err
		}
		des, err := d.ReadDir(-1)
		d.Close()
		if err != nil {
			return err
		}
		for _, de := range des {
			if limit > 0 && len(out) >= limit {
				return nil
			}
			name := de.Name()
			if dir != "" {
				name = dir + "/" + name
			}
			in := matched || m.match(name)
			switch {
			case de.IsDir():
				if in || m.mayMatchBelow(name) {
					if err := visit(name, in); err != nil {
						return err
					}
				}
			case in && de.Type().IsRegular():
				out = append(out, name)
			}
		}
		return nil
	}
	if err := visit("", false); err != nil {
		return nil, fmt.Errorf("match files in %s: %w", root, err)
	}
	slices.Sort(out)
	return out, nil
}
