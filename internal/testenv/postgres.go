package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

const pgHowto = "install it with: apt-get install postgresql (scripts/test-deps does), or set " +
	"CONVEYOR_TEST_POSTGRES to a server's URL (postgres://USER:PASSWORD@HOST:PORT/postgres)"

var (
	pgOnce   sync.Once
	pgServer struct {
		admin *url.URL // a database of the server to connect to for CREATE DATABASE
		why   string   // why there is no server: then Unavailable
		err   error    // why the server failed: then the test fails
	}
)

// Postgres returns the URL of a fresh, empty database on a PostgreSQL server, dropped when t
// ends. The server is the one at CONVEYOR_TEST_POSTGRES if set (a URL whose database is one
// to connect to while creating others, e.g. postgres), else one started once per test binary
// (stopped by Main) from the newest /usr/lib/postgresql/*/bin or the PATH.
func Postgres(t testing.TB) string {
	t.Helper()
	pgOnce.Do(startPostgres)
	switch {
	case pgServer.why != "":
		Unavailable(t, "postgres", pgServer.why, pgHowto)
	case pgServer.err != nil:
		t.Fatalf("postgres: %v", pgServer.err)
	}
	name := databaseName(t.Name())
	if err := pgAdmin(fmt.Sprintf("CREATE DATABASE %s", pgx.Identifier{name}.Sanitize())); err != nil {
		t.Fatalf("postgres: %v", err)
	}
	t.Cleanup(func() {
		if err := pgAdmin(fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", pgx.Identifier{name}.Sanitize())); err != nil {
			t.Errorf("postgres: %v", err)
		}
	})
	u := *pgServer.admin
	u.Path = "/" + name
	return u.String()
}

// pgAdmin runs one statement on the server's admin database.
func pgAdmin(stmt string) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgServer.admin.String())
	if err != nil {
		return fmt.Errorf("connect to %s: %w", pgServer.admin.Redacted(), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", stmt, err)
	}
	return nil
}

// databaseName makes a valid, unique database name that says which test it belongs to.
func databaseName(test string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(test) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	name := b.String()
	if len(name) > 40 {
		name = name[:40]
	}
	var r [6]byte
	rand.Read(r[:])
	return "t_" + name + "_" + hex.EncodeToString(r[:])
}

// startPostgres sets pgServer: the server of CONVEYOR_TEST_POSTGRES, or one started here.
func startPostgres() {
	if raw := os.Getenv("CONVEYOR_TEST_POSTGRES"); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
			pgServer.err = fmt.Errorf("CONVEYOR_TEST_POSTGRES=%q is not a postgres://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE URL", raw)
			return
		}
		if strings.Trim(u.Path, "/") == "" {
			u.Path = "/postgres"
		}
		pgServer.admin = u
		return
	}
	bin, why := findPostgres()
	if bin == "" {
		pgServer.why = why
		return
	}
	var runAs []string // the command prefix that runs as the postgres user, when root
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			pgServer.why = "running as root, which PostgreSQL refuses, and there is no postgres user to run it as"
			return
		}
		runuser, err := exec.LookPath("runuser")
		if err != nil {
			pgServer.why = "running as root, which PostgreSQL refuses, and runuser is missing"
			return
		}
		runAs = []string{runuser, "-u", "postgres", "--"}
	}
	// Another process may take the free port before PostgreSQL does: try a few.
	for range 3 {
		var retry bool
		pgServer.admin, retry, pgServer.err = startPostgresAt(bin, runAs)
		if !retry {
			return
		}
	}
}

// findPostgres returns the directory of initdb and pg_ctl: the newest of
// /usr/lib/postgresql/*/bin (Debian's layout, outside the PATH), else the PATH's.
func findPostgres() (bin, why string) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(dir string) int {
		n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
		return n
	}
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, dir := range dirs {
		if isExecutable(filepath.Join(dir, "initdb")) == nil && isExecutable(filepath.Join(dir, "pg_ctl")) == nil {
			return dir, ""
		}
	}
	initdb, err := exec.LookPath("initdb")
	if err != nil {
		return "", "initdb not found in /usr/lib/postgresql/*/bin or the PATH"
	}
	dir := filepath.Dir(initdb)
	if err := isExecutable(filepath.Join(dir, "pg_ctl")); err != nil {
		return "", fmt.Sprintf("pg_ctl not found beside %s", initdb)
	}
	return dir, ""
}

// startPostgresAt creates a cluster in a temporary directory and starts it on a free port
// of 127.0.0.1. retry reports a failure that another port may avoid.
func startPostgresAt(bin string, runAs []string) (admin *url.URL, retry bool, err error) {
	dir, err := os.MkdirTemp("", "conveyor-postgres-*")
	if err != nil {
		return nil, false, fmt.Errorf("start postgres: %w", err)
	}
	fail := func(err error) (*url.URL, bool, error) {
		os.RemoveAll(dir)
		return nil, false, fmt.Errorf("start postgres: %w", err)
	}
	if runAs != nil {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fail(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return fail(err)
		}
	}
	run := func(name string, args ...string) error {
		argv := append(slices.Clone(runAs), append([]string{filepath.Join(bin, name)}, args...)...)
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out)
		}
		return nil
	}
	data := filepath.Join(dir, "data")
	if err := run("initdb", "-D", data, "-A", "trust", "-E", "UTF8", "--no-sync", "-U", "postgres"); err != nil {
		return fail(err)
	}
	port, err := freePort()
	if err != nil {
		return fail(err)
	}
	logFile := filepath.Join(dir, "postgres.log")
	opts := strings.Join([]string{
		"-p " + port, "-k " + dir,
		"-c listen_addresses=127.0.0.1", "-c max_connections=200",
		"-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
	}, " ")
	if err := run("pg_ctl", "-D", data, "-l", logFile, "-o", opts, "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(logFile)
		os.RemoveAll(dir)
		err = fmt.Errorf("start postgres: %w\n%s", err, log)
		// Another process took the port meanwhile: try another.
		return nil, strings.Contains(string(log), "could not bind"), err
	}
	atExit(func() {
		if err := run("pg_ctl", "-D", data, "-m", "immediate", "stop"); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: stop postgres: %v\n", err)
		}
		os.RemoveAll(dir)
	})
	return &url.URL{
		Scheme: "postgres", User: url.User("postgres"), Host: "127.0.0.1:" + port, Path: "/postgres",
		RawQuery: "sslmode=disable",
	}, false, nil
}
