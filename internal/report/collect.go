package report

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/conveyorci/conveyor/internal/artifact"
)

// maxReportFiles bounds the files one report reads.
const maxReportFiles = 1000

// Spec is one report an action declares: its files (globs relative to the workspace, the
// syntax of output artifacts) and their format.
type Spec struct {
	Name   string
	Files  []string
	Format string
}

// Collect reads the declared reports from the workspace dir once an action's work ran.
// What goes wrong (no file matches, a file does not parse) is a warning in the log: a report
// never fails the action, whose own result says what happened. It runs even when ctx is done
// (a stopped or timed-out action's reports say how far it got).
func Collect(ctx context.Context, dir string, specs []Spec, log io.Writer) []Report {
	ctx = context.WithoutCancel(ctx)
	out := make([]Report, 0, len(specs))
	for _, spec := range specs {
		rep := Report{Name: spec.Name, Format: spec.Format}
		files, err := artifact.Match(ctx, dir, spec.Files, maxReportFiles)
		switch {
		case err != nil:
			rep.AddError(fmt.Errorf("find files: %w", err))
			fmt.Fprintf(log, "[conveyor] report %s: find files: %v\n", spec.Name, err)
		case len(files) == 0:
			fmt.Fprintf(log, "[conveyor] warning: report %s: no file matches %s\n", spec.Name, strings.Join(spec.Files, ", "))
		}
		for _, name := range files {
			res, err := parseFile(dir, name, spec.Format)
			if err != nil {
				err = fmt.Errorf("parse %s report %s: %w", spec.Format, name, err)
				rep.AddError(err)
				fmt.Fprintf(log, "[conveyor] warning: report %s: %v\n", spec.Name, err)
				continue
			}
			rep.Add(res)
		}
		if rep.Files > 0 {
			fmt.Fprintf(log, "[conveyor] report %s: %s (%s in %s)\n", spec.Name, rep.Totals, plural(rep.Tests, "test"), plural(rep.Files, "file"))
		}
		out = append(out, rep)
	}
	return out
}

// parseFile parses one report file, read through the workspace root so a link cannot lead
// outside it.
func parseFile(dir, name, format string) (*Result, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	f, err := r.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > MaxFileSize {
		return nil, fmt.Errorf("the file is larger than %d MiB", MaxFileSize>>20)
	}
	return Parse(format, f)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
