// Command vulndb turns a copy of the golang.org/x/vulndb module (as fetched from
// the Go module proxy) into a Go vulnerability database in the v1 layout that
// `govulncheck -db file:///abs/dir` reads (https://go.dev/security/vuln/database):
//
//	index/db.json       {"modified": <newest entry modified>}
//	index/modules.json  [{"path": module, "vulns": [{"id", "modified", "fixed"?}]}], sorted
//	index/vulns.json    [{"id", "modified", "aliases"?}], sorted
//	ID/<id>.json        each OSV entry
//
// It does what x/vulndb's own generator (internal/database.New and Write) does,
// with two differences:
//
//   - modules.json has one record per module and entry, where x/vulndb writes one
//     per affected block of the entry (see database.add);
//   - the OSV files in the repository carry a zero "modified" time, which the
//     generator replaces with the time of the last git commit that touched the file.
//     The module zip has no git history, so a zero "modified" is replaced by the
//     time of the snapshot: the commit time in the module's pseudo-version (or
//     -modified). That is never earlier than the true value, and it never
//     decreases when the pinned version is bumped.
//
// Usage:
//
//	vulndb -o OUTDIR [-modified RFC3339] [-gzip] VULNDB_MODULE_DIR
//
// VULNDB_MODULE_DIR is the "Dir" printed by
// `go mod download -json golang.org/x/vulndb@VERSION`.
// OUTDIR is replaced as a whole, and only once the new database is complete.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

func main() {
	out := flag.String("o", "", "output `directory` (required; replaced as a whole)")
	modified := flag.String("modified", "", "`time` (RFC 3339) to use for entries whose modified time is zero; default: the time in the module directory's pseudo-version")
	gz := flag.Bool("gzip", false, "also write a .json.gz next to each .json (the layout served over HTTP)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: vulndb -o OUTDIR [-modified RFC3339] [-gzip] VULNDB_MODULE_DIR\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *out == "" || flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	modDir := flag.Arg(0)

	var snapshot time.Time
	var err error
	if *modified != "" {
		snapshot, err = time.Parse(time.RFC3339, *modified)
	} else {
		snapshot, err = pseudoVersionTime(modDir)
	}
	if err != nil {
		fatalf("%v", err)
	}

	db, err := load(filepath.Join(modDir, "data", "osv"), snapshot.UTC())
	if err != nil {
		fatalf("%v", err)
	}
	if err := db.writeAtomically(*out, *gz); err != nil {
		fatalf("%v", err)
	}
	fmt.Printf("vulndb: wrote %d entries for %d modules to %s (modified %s)\n",
		len(db.entries), len(db.modules), *out, formatTime(db.modified))
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "vulndb: "+format+"\n", args...)
	os.Exit(1)
}

// pseudoVersionRE matches the "yyyymmddhhmmss-commithash" end of a pseudo-version.
var pseudoVersionRE = regexp.MustCompile(`[-.](\d{14})-[0-9a-f]{12}$`)

// pseudoVersionTime returns the commit time of the module version in a module
// cache directory name such as .../golang.org/x/vulndb@v0.0.0-20240101000000-0123456789ab.
func pseudoVersionTime(dir string) (time.Time, error) {
	base := filepath.Base(filepath.Clean(dir))
	at := strings.LastIndex(base, "@")
	if m := pseudoVersionRE.FindStringSubmatch(base[at+1:]); at >= 0 && m != nil {
		return time.Parse("20060102150405", m[1])
	}
	return time.Time{}, fmt.Errorf("cannot tell the snapshot time from %q (not a module cache directory with a pseudo-version): pass -modified", dir)
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// rfcTime is a time.Time that marshals as x/vulndb's osv.Time does.
type rfcTime struct{ time.Time }

func (t rfcTime) MarshalJSON() ([]byte, error) { return json.Marshal(formatTime(t.Time)) }

// The parts of an OSV entry (https://ossf.github.io/osv-schema/) the indexes need.
type osvEntry struct {
	ID        string    `json:"id"`
	Modified  time.Time `json:"modified"`
	Published time.Time `json:"published"`
	Aliases   []string  `json:"aliases"`
	Affected  []struct {
		Package struct {
			Name      string `json:"name"`
			Ecosystem string `json:"ecosystem"`
		} `json:"package"`
		Ranges []osvRange `json:"ranges"`
	} `json:"affected"`
}

type osvRange struct {
	Type   string `json:"type"`
	Events []struct {
		Introduced string `json:"introduced"`
		Fixed      string `json:"fixed"`
	} `json:"events"`
}

// The index formats, as in x/vulndb's internal/database and x/vuln's internal/client.
type dbMeta struct {
	Modified rfcTime `json:"modified"`
}

type moduleMeta struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

type moduleVuln struct {
	ID       string  `json:"id"`
	Modified rfcTime `json:"modified"`
	Fixed    string  `json:"fixed,omitempty"`
}

type vulnMeta struct {
	ID       string   `json:"id"`
	Modified rfcTime  `json:"modified"`
	Aliases  []string `json:"aliases,omitempty"`
}

type database struct {
	modified time.Time
	modules  map[string]*moduleMeta
	vulns    []vulnMeta
	entries  map[string][]byte // ID -> the entry as written to ID/<id>.json
}

var idRE = regexp.MustCompile(`^GO-\d{4}-\d{4,}$`)

// load reads every data/osv/GO-*.json file, in ID order.
func load(osvDir string, snapshot time.Time) (*database, error) {
	files, err := filepath.Glob(filepath.Join(osvDir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no OSV files in %s: is this a golang.org/x/vulndb module directory?", osvDir)
	}
	sort.Strings(files)
	db := &database{modules: map[string]*moduleMeta{}, entries: map[string][]byte{}}
	for _, f := range files {
		if err := db.add(f, snapshot); err != nil {
			return nil, fmt.Errorf("%s: %v", f, err)
		}
	}
	return db, nil
}

func (db *database) add(file string, snapshot time.Time) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var e osvEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return err
	}
	switch {
	case !idRE.MatchString(e.ID):
		return fmt.Errorf("unexpected id %q", e.ID)
	case filepath.Base(file) != e.ID+".json":
		// govulncheck fetches ID/<id>.json.
		return fmt.Errorf("file name does not match id %q", e.ID)
	case db.entries[e.ID] != nil:
		return fmt.Errorf("id %q appears twice", e.ID)
	case len(e.Affected) == 0:
		return errors.New("no affected modules")
	}
	if e.Modified.IsZero() {
		e.Modified = snapshot
	}
	if e.Modified.Before(e.Published) { // a valid entry is never modified before it is published
		e.Modified = e.Published
	}
	if e.Modified.After(db.modified) {
		db.modified = e.Modified
	}
	for _, a := range e.Affected {
		if a.Package.Name == "" {
			return errors.New("affected package without a name")
		}
		for _, r := range a.Ranges {
			for _, ev := range r.Events {
				for _, v := range []string{ev.Introduced, ev.Fixed} {
					if v != "" && v != "0" && r.Type == "SEMVER" && !semverValid(v) {
						return fmt.Errorf("invalid version %q in a range of %s", v, a.Package.Name)
					}
				}
			}
		}
		m := db.modules[a.Package.Name]
		if m == nil {
			m = &moduleMeta{Path: a.Package.Name, Vulns: []moduleVuln{}}
			db.modules[a.Package.Name] = m
		}
		fixed := latestFixed(a.Ranges)
		if n := len(m.Vulns); n > 0 && m.Vulns[n-1].ID == e.ID {
			// The entry lists this module in several affected blocks (e.g. stdlib
			// for net/http and for net/http/internal/http2). x/vulndb writes one
			// record per block; govulncheck then reads the entry once per record and
			// prints each trace twice. One record, with no fix if a block has none
			// and else the latest fix, selects exactly the same module versions.
			if prev := &m.Vulns[n-1]; prev.Fixed != "" && (fixed == "" || semverBefore(prev.Fixed, fixed)) {
				prev.Fixed = fixed
			}
			continue
		}
		m.Vulns = append(m.Vulns, moduleVuln{ID: e.ID, Modified: rfcTime{e.Modified}, Fixed: fixed})
	}
	db.vulns = append(db.vulns, vulnMeta{ID: e.ID, Modified: rfcTime{e.Modified}, Aliases: e.Aliases})
	entry, err := setField(raw, "modified", formatTime(e.Modified))
	if err != nil {
		return err
	}
	db.entries[e.ID] = entry
	return nil
}

// latestFixed is x/vulndb's osvutils.LatestFixed (x/vuln's semver.NonSupersededFix):
// the latest fixed version, or "" if the vulnerability is re-introduced after it.
func latestFixed(ranges []osvRange) string {
	var latest string
	for _, r := range ranges {
		if r.Type != "SEMVER" {
			continue
		}
		for _, e := range r.Events {
			if e.Fixed != "" && semverBefore(latest, e.Fixed) {
				latest = e.Fixed
			}
		}
		for _, e := range r.Events {
			if e.Introduced != "" && e.Introduced != "0" && semverBefore(latest, e.Introduced) {
				latest = ""
				break
			}
		}
	}
	return latest
}

// setField returns the JSON object raw, compacted, with the top-level field key
// set to value; the other fields keep their order and contents.
func setField(raw []byte, key string, value any) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	val, err := json.Marshal(value)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	found := false
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		buf.Write(kb)
		buf.WriteByte(':')
		if k == key {
			buf.Write(val)
			found = true
		} else if err := json.Compact(&buf, v); err != nil {
			return nil, err
		}
	}
	if !found {
		return nil, fmt.Errorf("no %q field", key)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// writeAtomically writes the database to a temporary directory next to out,
// then replaces out with it.
func (db *database) writeAtomically(out string, gz bool) error {
	out = filepath.Clean(out)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), filepath.Base(out)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := db.write(tmp, gz); err != nil {
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

func (db *database) write(dir string, gz bool) error {
	for _, d := range []string{"index", "ID"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	modules := make([]*moduleMeta, 0, len(db.modules))
	for _, m := range db.modules {
		sort.SliceStable(m.Vulns, func(i, j int) bool { return m.Vulns[i].ID < m.Vulns[j].ID })
		modules = append(modules, m)
	}
	sort.Slice(modules, func(i, j int) bool { return modules[i].Path < modules[j].Path })
	sort.Slice(db.vulns, func(i, j int) bool { return db.vulns[i].ID < db.vulns[j].ID })

	for name, v := range map[string]any{
		"db.json":      dbMeta{Modified: rfcTime{db.modified}},
		"modules.json": modules,
		"vulns.json":   db.vulns,
	} {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(dir, "index", name), b, gz); err != nil {
			return err
		}
	}
	// Thousands of small files: write them from a few goroutines.
	ids := make(chan string)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				if err := writeFile(filepath.Join(dir, "ID", id+".json"), db.entries[id], gz); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for id := range db.entries {
		ids <- id
	}
	close(ids)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func writeFile(name string, b []byte, gz bool) error {
	if err := os.WriteFile(name, b, 0o644); err != nil {
		return err
	}
	if !gz {
		return nil
	}
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return os.WriteFile(name+".gz", buf.Bytes(), 0o644)
}
