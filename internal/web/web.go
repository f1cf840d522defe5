package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
)

//go:embed static
var static embed.FS

// contentSecurityPolicy lets a page load only the server's own scripts, styles and images
// and talk only to the server: no inline script, no framing, no plugin, no base change.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// pagePrefixes are the paths of the UI's pages (client-side routes): each answers index.html.
var pagePrefixes = []string{"/pipelines/", "/executions/"}

// pages are the UI's pages with a fixed path.
var pages = []string{"/", "/signin", "/audit"}

// asset is one embedded file ready to serve.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// site is what Handler serves, built once from the embedded files.
type site struct {
	// version names this set of assets (a digest of them all): assets are served under
	// /assets/VERSION/, so a browser may cache them for good.
	version string
	assets  map[string]asset // by name under static/assets
	index   asset
}

var load = sync.OnceValue(func() *site {
	s, err := build(static)
	if err != nil {
		panic(err) // the embedded files are part of the binary: a test catches this
	}
	return s
})

// build reads the UI's files: static/index.html and static/assets/*.
func build(fsys fs.FS) (*site, error) {
	s := &site{assets: map[string]asset{}}
	all := sha256.New()
	var names []string
	err := fs.WalkDir(fsys, "static/assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "static/assets/")
		s.assets[name] = newAsset(name, b)
		names = append(names, name)
		fmt.Fprintf(all, "%s\x00%d\x00", name, len(b))
		all.Write(b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the UI's assets: %w", err)
	}
	s.version = hex.EncodeToString(all.Sum(nil))[:12]
	index, err := fs.ReadFile(fsys, "static/index.html")
	if err != nil {
		return nil, fmt.Errorf("read the UI's index.html: %w", err)
	}
	// Every module is preloaded: the browser fetches them in parallel, not import by import.
	var preload strings.Builder
	slices.Sort(names)
	for _, n := range names {
		if strings.HasSuffix(n, ".js") && n != "app.js" {
			fmt.Fprintf(&preload, "<link rel=\"modulepreload\" href=\"/assets/%s/%s\">\n", s.version, n)
		}
	}
	index = bytes.ReplaceAll(index, []byte("<!--preload-->\n"), []byte(preload.String()))
	index = bytes.ReplaceAll(index, []byte("{{version}}"), []byte(s.version))
	s.index = newAsset("index.html", index)
	return s, nil
}

func newAsset(name string, b []byte) asset {
	sum := sha256.Sum256(b)
	ctype := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) { // not left to the machine's mime tables
	case ".js":
		ctype = "text/javascript; charset=utf-8"
	case ".css":
		ctype = "text/css; charset=utf-8"
	case ".html":
		ctype = "text/html; charset=utf-8"
	case ".svg":
		ctype = "image/svg+xml"
	}
	return asset{body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}

// Handler serves the UI: index.html at / and at every page's path (the page routes on the
// client), the assets under /assets/VERSION/ (cached for good: a new binary has a new
// VERSION), and 404 for anything else. Only GET and HEAD.
func Handler() http.Handler {
	s := load()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p := r.URL.Path
		if rest, ok := strings.CutPrefix(p, "/assets/"); ok {
			version, name, _ := strings.Cut(rest, "/")
			a, found := s.assets[name]
			if !found || version != s.version {
				h.Set("Cache-Control", "no-store")
				http.NotFound(w, r)
				return
			}
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
			serve(w, r, a)
			return
		}
		if !isPage(p) {
			h.Set("Cache-Control", "no-store")
			http.NotFound(w, r)
			return
		}
		h.Set("Cache-Control", "no-cache") // revalidated by ETag: a new binary's page is seen at once
		serve(w, r, s.index)
	})
}

// isPage reports whether p is the path of one of the UI's pages.
func isPage(p string) bool {
	if slices.Contains(pages, p) {
		return true
	}
	for _, prefix := range pagePrefixes {
		if rest, ok := strings.CutPrefix(p, prefix); ok && rest != "" {
			return true
		}
	}
	return false
}

func serve(w http.ResponseWriter, r *http.Request, a asset) {
	h := w.Header()
	h.Set("ETag", a.etag)
	h.Set("Content-Type", a.ctype)
	if match := r.Header.Get("If-None-Match"); match != "" && etagMatches(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", fmt.Sprint(len(a.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(a.body)
	}
}

// etagMatches reports whether an If-None-Match header names etag (or is "*").
func etagMatches(header, etag string) bool {
	for t := range strings.SplitSeq(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// Size is the total size in bytes of the files the UI is made of.
func Size() int {
	s := load()
	n := len(s.index.body)
	for _, a := range s.assets {
		n += len(a.body)
	}
	return n
}
