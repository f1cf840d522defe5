package vault_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/keyring"
	"github.com/conveyorci/conveyor/internal/secret"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/store/sqlite"
	"github.com/conveyorci/conveyor/internal/vault"
)

// bundle is a vault over a real SQLite store, with a real key file.
type bundle struct {
	dir     string
	keyFile string
	ring    *keyring.Ring
	st      store.Store
	v       *vault.Vault
}

func setup(t *testing.T) *bundle {
	t.Helper()
	b := &bundle{dir: t.TempDir()}
	b.keyFile = filepath.Join(b.dir, "master.key")
	var err error
	if b.ring, err = keyring.Create(b.keyFile); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(t.Context(), filepath.Join(b.dir, "conveyor.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b.st = db
	b.v = vault.New(db, b.ring)
	return b
}

var now = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func (b *bundle) put(t *testing.T, scope, name, value string) {
	t.Helper()
	if _, err := b.v.Put(t.Context(), scope, name, value, "alice", now); err != nil {
		t.Fatalf("put %s/%s: %v", scope, name, err)
	}
}

func TestPutAndSecrets(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := t.Context()
	created, err := b.v.Put(c, "", "token", "global-value", "alice", now)
	if err != nil || !created {
		t.Fatalf("put global: %v, %v", created, err)
	}
	b.put(t, "webapp", "token", "webapp-value")
	b.put(t, "", "other", "other-value")
	b.put(t, "api", "db", "db-value")
	if created, err = b.v.Put(c, "", "other", "other-value-2", "bob", now.Add(time.Minute)); err != nil || created {
		t.Fatalf("replace other: %v, %v", created, err)
	}

	got, err := b.v.Secrets(c, "webapp", []string{"token", "other"})
	if err != nil {
		t.Fatal(err)
	}
	if got["token"] != "webapp-value" || got["other"] != "other-value-2" || len(got) != 2 {
		t.Fatalf("secrets of webapp: %v", got)
	}
	if got, err = b.v.Secrets(c, "site", []string{"token"}); err != nil || got["token"] != "global-value" {
		t.Fatalf("secrets of site: %v, %v", got, err)
	}

	// Another pipeline's secret is missing, and the error says how to set it.
	_, err = b.v.Secrets(c, "webapp", []string{"db", "token", "zz"})
	var me *vault.MissingError
	if !errors.As(err, &me) || strings.Join(me.Names, ",") != "db,zz" {
		t.Fatalf("missing secrets: %v", err)
	}
	for _, want := range []string{"secrets db, zz are not set for pipeline webapp", "set it with: conveyor secret set db --pipeline webapp; conveyor secret set zz --pipeline webapp"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}

	list, err := b.v.List(c)
	if err != nil || len(list) != 4 {
		t.Fatalf("list: %v, %v", list, err)
	}
	for _, s := range list {
		if s.Sealed != nil {
			t.Errorf("list shows a sealed value of %s/%s", s.Scope, s.Name)
		}
	}

	if err := b.v.Delete(c, "webapp", "token"); err != nil {
		t.Fatal(err)
	}
	if got, err = b.v.Secrets(c, "webapp", []string{"token"}); err != nil || got["token"] != "global-value" {
		t.Fatalf("after delete: %v, %v", got, err)
	}
	if err := b.v.Delete(c, "webapp", "token"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete again: %v", err)
	}
}

func TestPutRefuses(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct{ scope, name, value, want string }{
		{"", "token", "abc", "shorter than the minimum of 4 bytes"},
		{"", "token", "", "it is empty"},
		{"", "bad|name", "abcdef", `secret name "bad|name"`},
		{"", "", "abcdef", `secret name ""`},
		{"we|b", "token", "abcdef", `pipeline name "we|b"`},
		{"", "token", strings.Repeat("x", vault.MaxValue+1), "over the maximum of 65536"},
	} {
		_, err := b.v.Put(t.Context(), tc.scope, tc.name, tc.value, "alice", now)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("put %q/%q: %v, want an error with %q", tc.scope, tc.name, err, tc.want)
		}
		if tc.value == "abc" && !errors.Is(err, secret.ErrTooShort) {
			t.Errorf("a short value: %v does not wrap secret.ErrTooShort", err)
		}
	}
}

// TestSealedValueBound: a sealed value copied, in the database, to another name or another
// scope does not open: a database writer cannot hand one pipeline's secret to another.
func TestSealedValueBound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := t.Context()
	b.put(t, "prod", "deploy-key", "the-prod-key")
	var sealed []byte
	if err := b.st.View(c, func(r store.Reader) error {
		vals, err := r.SecretValues(c, "prod", []string{"deploy-key"})
		sealed = vals["deploy-key"].Sealed
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, to := range []struct{ scope, name string }{{"dev", "deploy-key"}, {"prod", "other-key"}, {"", "deploy-key"}} {
		if err := b.st.Update(c, func(tx store.Tx) error {
			_, err := tx.PutSecret(c, &store.Secret{Scope: to.scope, Name: to.name, Sealed: sealed, UpdatedAt: now, UpdatedBy: "mallory"})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		pipeline := to.scope
		if pipeline == "" {
			pipeline = "dev"
		}
		_, err := b.v.Secrets(c, pipeline, []string{to.name})
		if !errors.Is(err, keyring.ErrIntegrity) || strings.Contains(err.Error(), "the-prod-key") {
			t.Errorf("value moved to %s/%s: %v, want an integrity error", to.scope, to.name, err)
		}
	}
	if got, err := b.v.Secrets(c, "prod", []string{"deploy-key"}); err != nil || got["deploy-key"] != "the-prod-key" {
		t.Fatalf("the original: %v, %v", got, err)
	}
}

// TestRewrap: after a rotation, Rewrap moves every secret to the new master key: a ring of
// the new key alone opens them all, and the store's file never held a value in the clear.
func TestRewrap(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := t.Context()
	values := map[[2]string]string{
		{"", "token"}: "global-token-value", {"webapp", "token"}: "webapp-token-value", {"api", "db"}: "api-db-password",
	}
	for k, v := range values {
		b.put(t, k[0], k[1], v)
	}
	if err := b.ring.Rotate(b.keyFile); err != nil {
		t.Fatal(err)
	}
	var calls int
	total, changed, err := vault.Rewrap(c, b.st, b.ring.RewrapSealed, func(done, n int) {
		calls++
		if done != calls || n != 3 {
			t.Errorf("progress %d/%d at call %d", done, n, calls)
		}
	})
	if err != nil || total != 3 || changed != 3 || calls != 3 {
		t.Fatalf("rewrap: %d, %d, %v (%d calls)", total, changed, err, calls)
	}
	// Again: nothing left to change.
	if total, changed, err = vault.Rewrap(c, b.st, b.ring.RewrapSealed, nil); err != nil || total != 3 || changed != 0 {
		t.Fatalf("rewrap again: %d, %d, %v", total, changed, err)
	}

	// The key file without its first (old) key still opens everything.
	data, err := os.ReadFile(b.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 {
		t.Fatalf("key file has %d keys, want 2", len(lines))
	}
	newOnly := filepath.Join(t.TempDir(), "new.key")
	if err := os.WriteFile(newOnly, []byte(lines[1]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.Load(newOnly)
	if err != nil {
		t.Fatal(err)
	}
	v := vault.New(b.st, ring)
	for k, want := range values {
		got, err := v.Secrets(c, k[0], []string{k[1]})
		if k[0] == "" {
			got, err = v.Secrets(c, "elsewhere", []string{k[1]})
		}
		if err != nil || got[k[1]] != want {
			t.Errorf("%s/%s with the new key alone: %v, %v", k[0], k[1], got, err)
		}
	}

	// No value is in the database file in the clear (the WAL included).
	if err := b.st.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(b.dir, "conveyor.db*"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, val := range values {
			if bytes.Contains(data, []byte(val)) {
				t.Errorf("%s holds the value %q in the clear", f, val)
			}
		}
	}
}
