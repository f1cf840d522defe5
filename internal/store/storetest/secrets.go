package storetest

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/conveyorci/conveyor/internal/store"
)

// Secrets. The store keeps sealed values as opaque bytes; package vault seals and opens them.

func putSecret(t *testing.T, s store.Store, scope, name, sealed, by string, n int) bool {
	t.Helper()
	var created bool
	update(t, s, func(tx store.Tx) error {
		var err error
		created, err = tx.PutSecret(t.Context(), &store.Secret{Scope: scope, Name: name, Sealed: []byte(sealed), UpdatedAt: at(n), UpdatedBy: by})
		return err
	})
	return created
}

func testSecrets(t *testing.T, s store.Store) {
	c := t.Context()
	view(t, s, func(r store.Reader) error {
		list, err := r.Secrets(c)
		if err != nil || len(list) != 0 {
			t.Fatalf("secrets of a new store: %v, %v", list, err)
		}
		vals, err := r.SecretValues(c, "webapp", []string{"token"})
		if err != nil || len(vals) != 0 {
			t.Fatalf("secret values of a new store: %v, %v", vals, err)
		}
		return nil
	})

	if !putSecret(t, s, "", "token", "sealed-global", "alice", 1) {
		t.Fatal("a new global secret: created = false")
	}
	if !putSecret(t, s, "webapp", "token", "sealed-webapp", "bob", 2) {
		t.Fatal("a new secret of webapp of the name of a global one: created = false")
	}
	putSecret(t, s, "", "other", "sealed-other", "alice", 3)
	putSecret(t, s, "api", "db", "sealed-db", "bob", 4)

	global := &store.Secret{Scope: "", Name: "token", CreatedAt: at(1), CreatedBy: "alice", UpdatedAt: at(1), UpdatedBy: "alice"}
	other := &store.Secret{Scope: "", Name: "other", CreatedAt: at(3), CreatedBy: "alice", UpdatedAt: at(3), UpdatedBy: "alice"}
	webapp := &store.Secret{Scope: "webapp", Name: "token", CreatedAt: at(2), CreatedBy: "bob", UpdatedAt: at(2), UpdatedBy: "bob"}
	db := &store.Secret{Scope: "api", Name: "db", CreatedAt: at(4), CreatedBy: "bob", UpdatedAt: at(4), UpdatedBy: "bob"}
	withSealed := func(sec *store.Secret, sealed string) *store.Secret {
		cp := *sec
		cp.Sealed = []byte(sealed)
		return &cp
	}
	view(t, s, func(r store.Reader) error {
		// Lists: by scope then name, never a sealed value.
		for _, tc := range []struct {
			scopes []string
			want   []*store.Secret
		}{
			{nil, []*store.Secret{other, global, db, webapp}},
			{[]string{""}, []*store.Secret{other, global}},
			{[]string{"webapp"}, []*store.Secret{webapp}},
			{[]string{"", "webapp"}, []*store.Secret{other, global, webapp}},
			{[]string{"nope"}, nil},
		} {
			list, err := r.Secrets(c, tc.scopes...)
			if err != nil {
				t.Fatalf("secrets %q: %v", tc.scopes, err)
			}
			equal(t, fmt.Sprintf("secrets of scopes %q", tc.scopes), list, tc.want)
		}
		// Values: the pipeline's own wins over the global one; another pipeline's is never seen.
		vals, err := r.SecretValues(c, "webapp", []string{"token", "other", "db", "missing"})
		if err != nil {
			t.Fatalf("secret values of webapp: %v", err)
		}
		equal(t, "secret values of webapp", vals, map[string]*store.Secret{
			"token": withSealed(webapp, "sealed-webapp"), "other": withSealed(other, "sealed-other")})
		vals, err = r.SecretValues(c, "", []string{"token", "db"})
		if err != nil {
			t.Fatalf("global secret values: %v", err)
		}
		equal(t, "global secret values", vals, map[string]*store.Secret{"token": withSealed(global, "sealed-global")})
		vals, err = r.SecretValues(c, "api", []string{"token", "db"})
		if err != nil {
			t.Fatalf("secret values of api: %v", err)
		}
		equal(t, "secret values of api", vals, map[string]*store.Secret{
			"token": withSealed(global, "sealed-global"), "db": withSealed(db, "sealed-db")})
		if vals, err = r.SecretValues(c, "webapp", nil); err != nil || len(vals) != 0 {
			t.Fatalf("no names: %v, %v", vals, err)
		}
		return nil
	})

	// A put replaces the value and who updated it, and keeps who created it.
	if putSecret(t, s, "", "token", "sealed-global-2", "carol", 5) {
		t.Fatal("replacing a secret: created = true")
	}
	global2 := &store.Secret{Scope: "", Name: "token", Sealed: []byte("sealed-global-2"), CreatedAt: at(1), CreatedBy: "alice", UpdatedAt: at(5), UpdatedBy: "carol"}
	view(t, s, func(r store.Reader) error {
		vals, err := r.SecretValues(c, "", []string{"token"})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "replaced secret", vals["token"], global2)
		return nil
	})

	// Reseal: guarded on the value it replaces; times and authors stay.
	err := s.Update(c, func(tx store.Tx) error {
		return tx.ResealSecret(c, "", "token", []byte("sealed-global"), []byte("resealed"))
	})
	wantErr(t, "reseal from a stale value", err, store.ErrConflict)
	err = s.Update(c, func(tx store.Tx) error { return tx.ResealSecret(c, "nope", "token", []byte("x"), []byte("y")) })
	wantErr(t, "reseal a missing secret", err, store.ErrNotFound)
	update(t, s, func(tx store.Tx) error {
		return tx.ResealSecret(c, "", "token", []byte("sealed-global-2"), []byte("resealed"))
	})
	view(t, s, func(r store.Reader) error {
		vals, err := r.SecretValues(c, "", []string{"token"})
		if err != nil {
			t.Fatal(err)
		}
		want := *global2
		want.Sealed = []byte("resealed")
		equal(t, "resealed secret", vals["token"], &want)
		return nil
	})

	// A failed transaction stores nothing.
	err = s.Update(c, func(tx store.Tx) error {
		if _, err := tx.PutSecret(c, &store.Secret{Scope: "webapp", Name: "rolled", Sealed: []byte("x"), UpdatedAt: at(6), UpdatedBy: "bob"}); err != nil {
			return err
		}
		return errBoom
	})
	wantErr(t, "put then fail", err, errBoom)

	// Delete: the pipeline's secret goes, the global one of that name shows through.
	update(t, s, func(tx store.Tx) error { return tx.DeleteSecret(c, "webapp", "token") })
	err = s.Update(c, func(tx store.Tx) error { return tx.DeleteSecret(c, "webapp", "token") })
	wantErr(t, "delete again", err, store.ErrNotFound)
	view(t, s, func(r store.Reader) error {
		vals, err := r.SecretValues(c, "webapp", []string{"token", "rolled"})
		if err != nil {
			t.Fatal(err)
		}
		if len(vals) != 1 || vals["token"].Scope != "" || !bytes.Equal(vals["token"].Sealed, []byte("resealed")) {
			t.Fatalf("after deleting webapp's token: %+v", vals)
		}
		return nil
	})
	// An empty sealed value is refused: a secret always has one.
	if err := s.Update(c, func(tx store.Tx) error {
		_, err := tx.PutSecret(c, &store.Secret{Name: "empty", UpdatedAt: at(7), UpdatedBy: "bob"})
		return err
	}); err == nil {
		t.Fatal("a secret without a sealed value was stored")
	}
}
