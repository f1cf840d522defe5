package trigger

import (
	"net/url"
	"path"
	"path/filepath"
	"strings"
)

// NormalizeURL returns a key under which the spellings of one repository's URL compare
// equal: https://github.com/o/r, https://github.com/o/r.git, git@github.com:o/r.git and
// ssh://git@github.com:22/o/r all give "github.com/o/r". The scheme, credentials, port,
// a ".git" suffix and trailing slashes are dropped and the host is lower-cased (the path
// keeps its case: only some servers ignore it). A local path, or a file:// URL, gives the
// cleaned absolute path ("/srv/git/r"); a relative path gives itself cleaned, which compares
// equal to nothing else. "" gives "".
func NormalizeURL(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if i := strings.Index(s, "://"); i > 0 {
		u, err := url.Parse(s)
		if err != nil {
			return trimRepo(s)
		}
		if strings.EqualFold(u.Scheme, "file") {
			return trimRepo(filepath.Clean(u.Path))
		}
		return strings.ToLower(u.Hostname()) + "/" + trimRepo(strings.TrimLeft(path.Clean("/"+u.Path), "/"))
	}
	// scp-like: [user@]host:path, the colon before any slash.
	if i := strings.Index(s, ":"); i > 0 && !strings.Contains(s[:i], "/") && !filepath.IsAbs(s) {
		host := s[:i]
		if at := strings.LastIndex(host, "@"); at >= 0 {
			host = host[at+1:]
		}
		return strings.ToLower(host) + "/" + trimRepo(strings.TrimLeft(path.Clean("/"+s[i+1:]), "/"))
	}
	return trimRepo(filepath.Clean(s))
}

// trimRepo drops trailing slashes and one ".git" suffix.
func trimRepo(p string) string {
	p = strings.TrimRight(p, "/")
	p = strings.TrimSuffix(p, ".git")
	if t := strings.TrimRight(p, "/"); t != "" {
		return t
	}
	return p
}
