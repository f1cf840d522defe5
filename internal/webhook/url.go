package webhook

import "github.com/conveyorci/conveyor/internal/trigger"

// NormalizeURL returns a key under which the spellings of one repository's URL compare
// equal (trigger.NormalizeURL, which the poller shares to find the deliveries of a
// repository).
func NormalizeURL(s string) string { return trigger.NormalizeURL(s) }

// SameRepository reports whether url names the repository r names by any of its URLs.
func SameRepository(r Repository, u string) bool {
	k := NormalizeURL(u)
	if k == "" {
		return false
	}
	for _, v := range r.URLs() {
		if NormalizeURL(v) == k {
			return true
		}
	}
	return false
}
