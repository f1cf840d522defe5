package pipeline

import (
	"strconv"
	"strings"
)

// closest returns the candidate nearest to s: an exact case-insensitive match first, then the
// smallest edit distance within a third of the length (at least 2). "" when none is close.
func closest(s string, candidates []string) string {
	for _, c := range candidates {
		if strings.EqualFold(c, s) {
			return c
		}
	}
	if len(s) >= 3 {
		for _, c := range candidates {
			lc, ls := strings.ToLower(c), strings.ToLower(s)
			if strings.HasPrefix(lc, ls) || strings.HasPrefix(ls, lc) {
				return c
			}
		}
	}
	best, bestDist := "", max(2, len(s)/3)+1
	ls := strings.ToLower(s)
	for _, c := range candidates {
		if d := editDistance(ls, strings.ToLower(c), bestDist); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// didYouMean is a hint suggesting the candidate nearest to s, or listing them all when none is
// near and there are few enough to read.
func didYouMean(s string, candidates []string) string {
	if c := closest(s, candidates); c != "" {
		return "did you mean " + strconv.Quote(c) + "?"
	}
	if len(candidates) == 0 {
		return ""
	}
	if len(candidates) > 12 {
		candidates = append(candidates[:12:12], "...")
	}
	return "expected one of: " + strings.Join(candidates, ", ")
}

// editDistance is the Levenshtein distance between a and b, or limit when it is at least limit
// (the inputs are names, but a hostile file may hold long ones).
func editDistance(a, b string, limit int) int {
	ra, rb := []rune(a), []rune(b)
	if d := len(ra) - len(rb); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev, cur = cur, prev
	}
	return min(prev[len(rb)], limit)
}
