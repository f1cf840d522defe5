package api

import (
	"fmt"
	"strings"
)

// A line diff for the audit log's record of a pipeline edit: what a reviewer reads, in the
// unified format of diff -u.

// diffContext is how many unchanged lines surround each change.
const diffContext = 3

// maxDiffCells bounds the table of the longest common subsequence (4 bytes a cell). Past
// it, the differing middle of the texts is shown removed then added whole: edits are
// usually small, and their common start and end are trimmed before the table is made.
const maxDiffCells = 1 << 20

type diffLine struct {
	op   byte // ' ', '-' or '+'
	text string
}

// unifiedDiff returns the unified diff from text a (labelled aName) to text b, "" when they
// are equal. It stops after the hunk that passes limit bytes (limit <= 0: no limit) and
// then reports that the diff was cut.
func unifiedDiff(aName, bName string, a, b []byte, limit int) (diff string, cut bool) {
	lines := diffLines(splitLines(string(a)), splitLines(string(b)))
	// at[i] is the number of lines of a, and of b, before lines[i].
	type pos struct{ a, b int }
	at := make([]pos, len(lines)+1)
	changed := false
	for i, l := range lines {
		at[i+1] = at[i]
		if l.op != '+' {
			at[i+1].a++
		}
		if l.op != '-' {
			at[i+1].b++
		}
		changed = changed || l.op != ' '
	}
	if !changed {
		return "", false
	}
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", aName, bName)
	for i := 0; i < len(lines); {
		for i < len(lines) && lines[i].op == ' ' {
			i++
		}
		if i == len(lines) {
			break
		}
		// A hunk runs from diffContext lines before this change to diffContext lines after
		// the last change that follows with at most 2*diffContext unchanged lines between.
		last := i
		for j := i; j < len(lines) && j-last-1 <= 2*diffContext; j++ {
			if lines[j].op != ' ' {
				last = j
			}
		}
		start, end := max(0, i-diffContext), min(len(lines), last+diffContext+1)
		na, nb := at[end].a-at[start].a, at[end].b-at[start].b
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", hunkRange(at[start].a, na), hunkRange(at[start].b, nb))
		for _, l := range lines[start:end] {
			out.WriteByte(l.op)
			out.WriteString(l.text)
			out.WriteByte('\n')
		}
		i = end
		if limit > 0 && out.Len() > limit && i < len(lines) {
			return out.String(), true
		}
	}
	return out.String(), false
}

// hunkRange is a hunk's "start,count" for count lines after the first `before` lines.
func hunkRange(before, count int) string {
	if count == 0 {
		return fmt.Sprintf("%d,0", before)
	}
	return fmt.Sprintf("%d,%d", before+1, count)
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// diffLines returns a as b edits it: unchanged, removed and added lines, in order.
func diffLines(a, b []string) []diffLine {
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	out := make([]diffLine, 0, len(a)+len(b)-pre-suf)
	for _, l := range a[:pre] {
		out = append(out, diffLine{' ', l})
	}
	ma, mb := a[pre:len(a)-suf], b[pre:len(b)-suf]
	if (len(ma)+1)*(len(mb)+1) <= maxDiffCells {
		out = lcsDiff(out, ma, mb)
	} else {
		for _, l := range ma {
			out = append(out, diffLine{'-', l})
		}
		for _, l := range mb {
			out = append(out, diffLine{'+', l})
		}
	}
	for _, l := range a[len(a)-suf:] {
		out = append(out, diffLine{' ', l})
	}
	return out
}

// lcsDiff appends to out the edit of a into b that keeps their longest common subsequence.
func lcsDiff(out []diffLine, a, b []string) []diffLine {
	n, m := len(a), len(b)
	w := m + 1
	// t[i*w+j] is the length of the longest common subsequence of a[i:] and b[j:].
	t := make([]int32, (n+1)*w)
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				t[i*w+j] = t[(i+1)*w+j+1] + 1
			} else {
				t[i*w+j] = max(t[(i+1)*w+j], t[i*w+j+1])
			}
		}
	}
	i, j := 0, 0
	for i < n && j < m {
		switch {
		case a[i] == b[j]:
			out = append(out, diffLine{' ', a[i]})
			i, j = i+1, j+1
		case t[(i+1)*w+j] >= t[i*w+j+1]:
			out = append(out, diffLine{'-', a[i]})
			i++
		default:
			out = append(out, diffLine{'+', b[j]})
			j++
		}
	}
	for ; i < n; i++ {
		out = append(out, diffLine{'-', a[i]})
	}
	for ; j < m; j++ {
		out = append(out, diffLine{'+', b[j]})
	}
	return out
}
