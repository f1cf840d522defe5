package git

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Remote.Head answers without starting a process where it safely can, since a poller asks
// every source every pollInterval (hundreds of git processes a minute otherwise):
//
//   - a repository on this machine (a path, or file://) is read in place: the branch's loose
//     ref file, else its line in packed-refs, HEAD followed for the default branch; what the
//     files do not answer plainly (a reftable repository, a path that is not a repository's
//     top) goes to git ls-remote;
//   - an http:// or https:// repository is asked with the smart-HTTP protocol, as git does:
//     GET URL/info/refs?service=git-upload-pack, then, when the server speaks protocol
//     version 2, one ls-refs command for the one ref; a token goes as HTTP Basic
//     authentication, to that URL's host only; the proxy is the server process's
//     (HTTPS_PROXY, HTTP_PROXY, NO_PROXY), GIT_SSL_CAINFO replaces the trusted CAs as it does
//     for git; a server that is not a smart one goes to git ls-remote;
//   - anything else (ssh, an SSH key) runs git ls-remote.

// httpHeadTimeout bounds one smart-HTTP question, redirects and both requests included.
const httpHeadTimeout = 30 * time.Second

// maxAdvertisement caps what is read of a ref advertisement (protocol version 0 lists every
// ref of the repository).
const maxAdvertisement = 64 << 20

// errFallback says the fast path cannot answer: git ls-remote does.
var errFallback = errors.New("not answerable without git")

// localHead reads the commit of branch ("" : HEAD's branch) from the refs of the repository
// at path, errFallback when the files do not tell plainly.
func localHead(path, branch string) (commit, name string, err error) {
	gitDir, common, ok := gitDirs(path)
	if !ok {
		return "", "", errFallback
	}
	ref := "refs/heads/" + branch
	if branch == "" {
		head, err := os.ReadFile(filepath.Join(gitDir, "HEAD"))
		if err != nil {
			return "", "", errFallback
		}
		target, sym := strings.CutPrefix(strings.TrimSpace(string(head)), "ref: ")
		if !sym {
			if !isObjectID(target) {
				return "", "", errFallback
			}
			return strings.ToLower(target), "", nil // detached: no branch name
		}
		if !strings.HasPrefix(target, "refs/heads/") {
			return "", "", errFallback
		}
		ref, name = target, strings.TrimPrefix(target, "refs/heads/")
	} else {
		name = branch
	}
	commit, found, err := resolveRef(common, ref)
	if err != nil {
		return "", "", err
	}
	if !found {
		return "", name, errNoRef
	}
	return commit, name, nil
}

// errNoRef is a branch (or HEAD's) that the repository lacks.
var errNoRef = errors.New("ref not found")

// gitDirs returns the git directory of the repository at path (its .git, or path itself for
// a bare repository) and its common directory (where refs/ and packed-refs are; another one
// for a linked work tree); ok=false when path is neither, or its refs are not files.
func gitDirs(path string) (gitDir, common string, ok bool) {
	dotgit := filepath.Join(path, ".git")
	switch fi, err := os.Stat(dotgit); {
	case err == nil && fi.IsDir():
		gitDir = dotgit
	case err == nil && fi.Mode().IsRegular():
		b, err := os.ReadFile(dotgit)
		d, found := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir: ")
		if err != nil || !found || d == "" {
			return "", "", false
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(path, d)
		}
		gitDir = d
	default:
		if !isFile(filepath.Join(path, "HEAD")) || !isDir(filepath.Join(path, "objects")) || !isDir(filepath.Join(path, "refs")) {
			return "", "", false
		}
		gitDir = path
	}
	common = gitDir
	if b, err := os.ReadFile(filepath.Join(gitDir, "commondir")); err == nil {
		c := strings.TrimSpace(string(b))
		if !filepath.IsAbs(c) {
			c = filepath.Join(gitDir, c)
		}
		common = c
	}
	if isDir(filepath.Join(common, "reftable")) {
		return "", "", false // refs are not files there
	}
	return gitDir, common, true
}

// resolveRef reads ref from the loose refs of the common directory, else packed-refs,
// following symbolic refs a few levels as git does.
func resolveRef(common, ref string) (commit string, found bool, err error) {
	for range 5 {
		if !safeRefName(ref) {
			return "", false, errFallback
		}
		b, err := os.ReadFile(filepath.Join(common, filepath.FromSlash(ref)))
		switch {
		case err == nil:
			v := strings.TrimSpace(string(b))
			if target, sym := strings.CutPrefix(v, "ref: "); sym {
				ref = target
				continue
			}
			if !isObjectID(v) {
				return "", false, errFallback
			}
			return strings.ToLower(v), true, nil
		case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
			// No such ref (ENOTDIR: refs/heads/a/b asked where refs/heads/a is a branch).
		default:
			return "", false, errFallback // a directory of that name, unreadable...
		}
		packed, err := os.ReadFile(filepath.Join(common, "packed-refs"))
		if errors.Is(err, os.ErrNotExist) {
			return "", false, nil
		}
		if err != nil {
			return "", false, errFallback
		}
		if id, ok := packedRef(packed, ref); ok {
			return id, true, nil
		}
		return "", false, nil
	}
	return "", false, errFallback
}

// packedRef finds ref in the content of a packed-refs file: "OID REF" lines, "^OID" lines
// (the peeled tags) and a "#" header left aside.
func packedRef(packed []byte, ref string) (string, bool) {
	for line := range bytes.Lines(packed) {
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 || line[0] == '#' || line[0] == '^' {
			continue
		}
		id, name, ok := bytes.Cut(line, []byte(" "))
		if ok && string(name) == ref && isObjectID(string(id)) {
			return strings.ToLower(string(id)), true
		}
	}
	return "", false
}

// safeRefName reports whether ref can be read as a path under the git directory: refs/...
// with no element that climbs out or that git would refuse (check-ref-format's rules that
// matter for a path).
func safeRefName(ref string) bool {
	if !strings.HasPrefix(ref, "refs/") || strings.HasSuffix(ref, "/") || strings.HasSuffix(ref, ".lock") ||
		strings.Contains(ref, "..") || strings.Contains(ref, "//") || strings.Contains(ref, "@{") {
		return false
	}
	for _, r := range ref {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(` ~^:?*[\`, r) {
			return false
		}
	}
	for el := range strings.SplitSeq(ref, "/") {
		if el == "" || el[0] == '.' {
			return false
		}
	}
	return true
}

// isObjectID reports whether s is a full object id, SHA-1 or SHA-256.
func isObjectID(s string) bool { return (len(s) == 40 || len(s) == 64) && isHex(s) }

func isFile(p string) bool { fi, err := os.Stat(p); return err == nil && fi.Mode().IsRegular() }
func isDir(p string) bool  { fi, err := os.Stat(p); return err == nil && fi.IsDir() }

// localPath returns the path of a repository on this machine: a resolved local path, or a
// file:// URL's.
func localPath(repo repository) (string, bool) {
	if !isRemote(repo.url) {
		return repo.url, true
	}
	u, err := url.Parse(repo.url)
	if err != nil || !strings.EqualFold(u.Scheme, "file") || (u.Host != "" && u.Host != "localhost") || u.Path == "" {
		return "", false
	}
	return filepath.Clean(u.Path), true
}

// httpClient is the client of smart-HTTP questions: the process's proxy environment, the
// CAs GIT_SSL_CAINFO names when set (as for git), else the system's.
func (r *Remote) httpClient() (*http.Client, error) {
	r.httpOnce.Do(func() {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = http.ProxyFromEnvironment
		t.MaxIdleConnsPerHost = 16
		if f := os.Getenv("GIT_SSL_CAINFO"); f != "" {
			pem, err := os.ReadFile(f)
			if err != nil {
				r.httpErr = fmt.Errorf("read GIT_SSL_CAINFO: %w", err)
				return
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				r.httpErr = fmt.Errorf("GIT_SSL_CAINFO %s holds no PEM certificate", f)
				return
			}
			t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		r.http = &http.Client{Transport: t, Timeout: httpHeadTimeout}
	})
	return r.http, r.httpErr
}

// httpHead asks a smart-HTTP server for the commit of branch ("" : HEAD's branch);
// errFallback when the server is not a smart one.
func (r *Remote) httpHead(ctx context.Context, repo repository, branch string, creds Credentials) (commit, name string, err error) {
	hc, err := r.httpClient()
	if err != nil {
		return "", "", errFallback
	}
	ctx, cancel := context.WithTimeout(ctx, httpHeadTimeout)
	defer cancel()
	base := strings.TrimRight(repo.url, "/")
	u, err := url.Parse(base)
	if err != nil || u.User != nil {
		return "", "", errFallback // credentials in the URL: as git takes them
	}
	want := "HEAD"
	if branch != "" {
		want = "refs/heads/" + branch
	}
	ask := func(method, target string, body []byte, contentType string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("User-Agent", "git/2.0 (conveyor)")
		req.Header.Set("Git-Protocol", "version=2")
		req.Header.Set("Cache-Control", "no-cache")
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
			req.Header.Set("Accept", "application/x-git-upload-pack-result")
		}
		if creds.Token != "" && req.URL.Scheme == u.Scheme && req.URL.Host == u.Host {
			// Only to the repository's own scheme and host, as git's credential helper is
			// scoped (a redirect elsewhere gets no token; Go drops it on redirects too).
			req.SetBasicAuth(cmp.Or(creds.Username, DefaultUsername), strings.TrimRight(creds.Token, "\r\n"))
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("check %s: %w", repo.display, redactErr(err, creds))
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, httpStatusError(resp.StatusCode, repo, creds)
		}
		return resp, nil
	}
	resp, err := ask(http.MethodGet, base+"/info/refs?service=git-upload-pack", nil, "")
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "application/x-git-upload-pack-advertisement" {
		return "", "", errFallback // a dumb server: git knows how to read it
	}
	adv, err := parseAdvertisement(io.LimitReader(resp.Body, maxAdvertisement))
	if err != nil {
		return "", "", fmt.Errorf("check %s: %w", repo.display, err)
	}
	refs := adv.refs
	if adv.version == 2 {
		if !adv.has("ls-refs") {
			return "", "", errFallback
		}
		// The base the server redirected to, as git continues there.
		base = strings.TrimSuffix(resp.Request.URL.Scheme+"://"+resp.Request.URL.Host+resp.Request.URL.Path, "/info/refs")
		var req bytes.Buffer
		writePkt(&req, "command=ls-refs\n")
		if f := adv.value("object-format"); f != "" {
			writePkt(&req, "object-format="+f+"\n")
		}
		req.WriteString("0001")
		writePkt(&req, "symrefs\n")
		writePkt(&req, "ref-prefix "+want+"\n")
		req.WriteString("0000")
		resp2, err := ask(http.MethodPost, base+"/git-upload-pack", req.Bytes(), "application/x-git-upload-pack-request")
		if err != nil {
			return "", "", err
		}
		defer resp2.Body.Close()
		if refs, err = parseLsRefs(io.LimitReader(resp2.Body, maxAdvertisement)); err != nil {
			return "", "", fmt.Errorf("check %s: %w", repo.display, err)
		}
	}
	name = branch
	for _, ref := range refs {
		if ref.name != want {
			continue
		}
		commit = ref.id
		if branch == "" {
			name = strings.TrimPrefix(ref.symref, "refs/heads/")
		}
	}
	if branch == "" && adv.version != 2 {
		// Version 0 says where HEAD points among the first line's capabilities.
		if t := adv.value("symref"); strings.HasPrefix(t, "HEAD:") {
			name = strings.TrimPrefix(strings.TrimPrefix(t, "HEAD:"), "refs/heads/")
		}
	}
	if commit == "" {
		return "", name, errNoRef
	}
	return commit, name, nil
}

// httpStatusError is what an HTTP status other than 200 says.
func httpStatusError(code int, repo repository, creds Credentials) error {
	switch {
	case (code == http.StatusUnauthorized || code == http.StatusForbidden) && creds.Token != "":
		return fmt.Errorf("check %s: repository %s refused the credentials: check token (and username) and that they give access to the repository",
			repo.display, repo.display)
	case code == http.StatusUnauthorized || code == http.StatusForbidden || code == http.StatusNotFound:
		return fmt.Errorf("check %s: repository %s not found or not accessible: check the repository URL, and its credentials (HTTP %d)",
			repo.display, repo.display, code)
	}
	return fmt.Errorf("check %s: the server answered HTTP %d %s", repo.display, code, http.StatusText(code))
}

// redactErr is err with the token, should a transport error quote it, replaced by ***.
func redactErr(err error, creds Credentials) error {
	if t := strings.TrimRight(creds.Token, "\r\n"); t != "" && strings.Contains(err.Error(), t) {
		return errors.New(strings.ReplaceAll(err.Error(), t, "***"))
	}
	return err
}

// advRef is one ref a server advertised.
type advRef struct {
	id, name string
	symref   string // what a symbolic ref points at, when the server says (version 2)
}

// advertisement is the answer to GET info/refs?service=git-upload-pack.
type advertisement struct {
	version int      // 0 (or 1): refs listed; 2: capabilities only, refs through ls-refs
	refs    []advRef // version 0 and 1
	caps    []string // "name" or "name=value"
}

func (a *advertisement) has(name string) bool {
	for _, c := range a.caps {
		if c == name || strings.HasPrefix(c, name+"=") {
			return true
		}
	}
	return false
}

// value returns the value of capability name ("" when absent).
func (a *advertisement) value(name string) string {
	for _, c := range a.caps {
		if v, ok := strings.CutPrefix(c, name+"="); ok {
			return v
		}
	}
	return ""
}

// Packet lines (gitprotocol-common(5)): four hex digits giving the length, those four
// included, then the payload; 0000 is a flush, 0001 a delimiter, 0002 the end of a response.
const (
	pktData = iota
	pktFlush
	pktDelim
	pktEnd
)

// maxPkt is the largest packet line git allows.
const maxPkt = 65520

// readPkt reads one packet line: its kind and, for data, its payload without the final
// newline.
func readPkt(r *bufio.Reader) (kind int, payload []byte, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, nil, io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	n, err := strconv.ParseUint(string(hdr[:]), 16, 16)
	if err != nil {
		return 0, nil, fmt.Errorf("bad packet line length %q", hdr[:])
	}
	switch {
	case n == 0:
		return pktFlush, nil, nil
	case n == 1:
		return pktDelim, nil, nil
	case n == 2:
		return pktEnd, nil, nil
	case n < 4 || n > maxPkt:
		return 0, nil, fmt.Errorf("bad packet line length %d", n)
	}
	payload = make([]byte, n-4)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, io.ErrUnexpectedEOF
	}
	return pktData, bytes.TrimSuffix(payload, []byte("\n")), nil
}

func writePkt(w *bytes.Buffer, s string) {
	fmt.Fprintf(w, "%04x%s", len(s)+4, s)
}

// parseAdvertisement reads a smart-HTTP ref advertisement: "# service=git-upload-pack" and
// a flush, then either "version 2" and capabilities, or (version 0 and 1) the refs, the
// first with the capabilities after a NUL, up to a flush.
func parseAdvertisement(body io.Reader) (advertisement, error) {
	var adv advertisement
	r := bufio.NewReader(body)
	kind, line, err := readPkt(r)
	if err != nil {
		return adv, fmt.Errorf("read the ref advertisement: %w", err)
	}
	if kind == pktData && bytes.HasPrefix(line, []byte("# service=")) {
		if kind, _, err = readPkt(r); err != nil || kind != pktFlush {
			return adv, errors.New("read the ref advertisement: no flush after the service line")
		}
		if kind, line, err = readPkt(r); err != nil {
			return adv, fmt.Errorf("read the ref advertisement: %w", err)
		}
	}
	if kind == pktData && string(line) == "version 2" {
		adv.version = 2
		for {
			kind, line, err := readPkt(r)
			if err != nil {
				return adv, fmt.Errorf("read the capabilities: %w", err)
			}
			if kind == pktFlush {
				return adv, nil
			}
			if kind != pktData {
				return adv, errors.New("read the capabilities: unexpected delimiter")
			}
			adv.caps = append(adv.caps, string(line))
		}
	}
	if kind == pktData && string(line) == "version 1" {
		adv.version = 1
		if kind, line, err = readPkt(r); err != nil {
			return adv, fmt.Errorf("read the ref advertisement: %w", err)
		}
	}
	first := true
	for ; kind != pktFlush; kind, line, err = readPkt(r) {
		if err != nil {
			return adv, fmt.Errorf("read the ref advertisement: %w", err)
		}
		if kind != pktData {
			return adv, errors.New("read the ref advertisement: unexpected delimiter")
		}
		if first {
			first = false
			l, caps, found := bytes.Cut(line, []byte{0})
			if found {
				adv.caps = strings.Fields(string(caps))
			}
			line = l
		}
		id, name, ok := bytes.Cut(line, []byte(" "))
		if !ok || !isObjectID(string(id)) || len(name) == 0 {
			return adv, fmt.Errorf("read the ref advertisement: bad ref line %q", clipBytes(line))
		}
		if string(name) == "capabilities^{}" {
			continue // an empty repository
		}
		adv.refs = append(adv.refs, advRef{id: strings.ToLower(string(id)), name: string(name)})
	}
	return adv, nil
}

// parseLsRefs reads the answer to ls-refs: "OID NAME[ ATTR...]" lines (ATTR
// symref-target:REF, peeled:OID) up to a flush. An unborn HEAD is "unborn HEAD ...".
func parseLsRefs(body io.Reader) ([]advRef, error) {
	r := bufio.NewReader(body)
	var refs []advRef
	for {
		kind, line, err := readPkt(r)
		if err != nil {
			return nil, fmt.Errorf("read the refs: %w", err)
		}
		if kind == pktFlush || kind == pktEnd {
			return refs, nil
		}
		if kind != pktData {
			return nil, errors.New("read the refs: unexpected delimiter")
		}
		f := strings.Fields(string(line))
		if len(f) < 2 || (f[0] != "unborn" && !isObjectID(f[0])) {
			return nil, fmt.Errorf("read the refs: bad ref line %q", clipBytes(line))
		}
		if f[0] == "unborn" {
			continue
		}
		ref := advRef{id: strings.ToLower(f[0]), name: f[1]}
		for _, a := range f[2:] {
			if t, ok := strings.CutPrefix(a, "symref-target:"); ok {
				ref.symref = t
			}
		}
		refs = append(refs, ref)
	}
}

func clipBytes(b []byte) string { return string(b[:min(len(b), 80)]) }
