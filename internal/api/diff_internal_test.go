package api

import (
	"fmt"
	"strings"
	"testing"
)

func TestUnifiedDiff(t *testing.T) {
	t.Parallel()
	lines := func(n int, change map[int]string) string {
		var b strings.Builder
		for i := 1; i <= n; i++ {
			if s, ok := change[i]; ok {
				b.WriteString(s)
				continue
			}
			fmt.Fprintf(&b, "line %d\n", i)
		}
		return b.String()
	}
	for _, tt := range []struct {
		name, a, b, want string
	}{
		{"equal", "x\ny\n", "x\ny\n", ""},
		{"both empty", "", "", ""},
		{"created", "", "a\nb\n", "--- A\n+++ B\n@@ -0,0 +1,2 @@\n+a\n+b\n"},
		{"emptied", "a\n", "", "--- A\n+++ B\n@@ -1,1 +0,0 @@\n-a\n"},
		{"one line changed, context 3", lines(10, nil), lines(10, map[int]string{5: "five\n"}),
			"--- A\n+++ B\n@@ -2,7 +2,7 @@\n line 2\n line 3\n line 4\n-line 5\n+five\n line 6\n line 7\n line 8\n"},
		{"two hunks far apart", lines(20, nil), lines(20, map[int]string{2: "", 19: "line 19\nnew\n"}),
			"--- A\n+++ B\n@@ -1,5 +1,4 @@\n line 1\n-line 2\n line 3\n line 4\n line 5\n" +
				"@@ -17,4 +16,5 @@\n line 17\n line 18\n line 19\n+new\n line 20\n"},
		{"changes 6 lines apart share a hunk", lines(12, nil), lines(12, map[int]string{3: "c\n", 10: "j\n"}),
			"--- A\n+++ B\n@@ -1,12 +1,12 @@\n line 1\n line 2\n-line 3\n+c\n line 4\n line 5\n line 6\n line 7\n line 8\n line 9\n-line 10\n+j\n line 11\n line 12\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, cut := unifiedDiff("A", "B", []byte(tt.a), []byte(tt.b), 0); got != tt.want || cut {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// TestUnifiedDiffLarge checks that texts too different for the table still diff, the
// differing middle removed then added whole, around the common start and end.
func TestUnifiedDiffLarge(t *testing.T) {
	t.Parallel()
	var a, b strings.Builder
	a.WriteString("head\n")
	b.WriteString("head\n")
	for i := range 1200 {
		fmt.Fprintf(&a, "a%d\n", i)
		fmt.Fprintf(&b, "b%d\n", i)
	}
	a.WriteString("tail\n")
	b.WriteString("tail\n")
	got, cut := unifiedDiff("A", "B", []byte(a.String()), []byte(b.String()), 0)
	if !strings.HasPrefix(got, "--- A\n+++ B\n@@ -1,1202 +1,1202 @@\n head\n-a0\n") || !strings.HasSuffix(got, "+b1199\n tail\n") ||
		strings.Count(got, "\n-") != 1200 || strings.Count(got, "\n+") != 1201 || cut { // +++ B counts once
		t.Errorf("diff of two large texts:\n%.300s\n...\n%s", got, got[max(0, len(got)-100):])
	}
}

// TestUnifiedDiffLimit checks that a diff stops after the hunk that passes the limit.
func TestUnifiedDiffLimit(t *testing.T) {
	t.Parallel()
	var a, b strings.Builder
	for i := range 100 {
		same := strings.Repeat(fmt.Sprintf("same %d\n", i), 8) // 8 > 2*3: a hunk per change
		fmt.Fprintf(&a, "%sold %d\n", same, i)
		fmt.Fprintf(&b, "%snew %d\n", same, i)
	}
	full, cut := unifiedDiff("A", "B", []byte(a.String()), []byte(b.String()), 0)
	if cut {
		t.Fatal("cut without a limit")
	}
	part, cut := unifiedDiff("A", "B", []byte(a.String()), []byte(b.String()), 100)
	if !cut || !strings.HasPrefix(full, part) || len(part) < 100 || len(part) > 400 {
		t.Errorf("diff limited to 100 bytes: cut %v, %d bytes of %d:\n%s", cut, len(part), len(full), part)
	}
}
