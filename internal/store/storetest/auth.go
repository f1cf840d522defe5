package storetest

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/conveyorci/conveyor/internal/store"
)

// Users, groups, tokens and grants.

func hashOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func testTokens(t *testing.T, s store.Store) {
	c := t.Context()
	h1, h2 := hashOf("cvy_one"), hashOf("cvy_two")
	view(t, s, func(r store.Reader) error {
		_, err := r.TokenByHash(c, h1)
		wantErr(t, "unknown token", err, store.ErrNotFound)
		_, err = r.Token(c, "admin")
		wantErr(t, "unknown token id", err, store.ErrNotFound)
		if ok, err := r.HasToken(c, "admin"); err != nil || ok {
			t.Fatalf("has admin before: %v, %v", ok, err)
		}
		return nil
	})
	// PutToken: the bootstrap's token, an API token of the user of the same name.
	update(t, s, func(tx store.Tx) error { return tx.PutToken(c, "admin", h1, at(1)) })
	view(t, s, func(r store.Reader) error {
		tok, err := r.TokenByHash(c, h1)
		if err != nil {
			t.Fatalf("token by hash: %v", err)
		}
		equal(t, "put token", tok, &store.Token{ID: "admin", User: "admin", Hash: h1, Scope: store.ScopeAPI, CreatedAt: at(1)})
		if ok, err := r.HasToken(c, "admin"); err != nil || !ok {
			t.Fatalf("has admin: %v, %v", ok, err)
		}
		return nil
	})
	// It replaces the token's hash: the old one no longer authenticates; a revocation is undone.
	update(t, s, func(tx store.Tx) error { return tx.RevokeToken(c, "admin", at(2)) })
	update(t, s, func(tx store.Tx) error { return tx.PutToken(c, "admin", h2, at(3)) })
	view(t, s, func(r store.Reader) error {
		_, err := r.TokenByHash(c, h1)
		wantErr(t, "replaced token", err, store.ErrNotFound)
		tok, err := r.TokenByHash(c, h2)
		if err != nil || tok.ID != "admin" || !tok.RevokedAt.IsZero() {
			t.Fatalf("new token: %+v, %v", tok, err)
		}
		_, err = r.TokenByHash(c, bytes.Repeat([]byte{0}, 32))
		wantErr(t, "zero hash", err, store.ErrNotFound)
		return nil
	})
	// PutToken creates a missing user.
	update(t, s, func(tx store.Tx) error { return tx.PutToken(c, "ci", hashOf("cvy_ci"), at(4)) })
	view(t, s, func(r store.Reader) error {
		if u, err := r.User(c, "ci"); err != nil || u.PasswordHash != "" {
			t.Fatalf("user of a put token: %+v, %v", u, err)
		}
		return nil
	})

	// CreateToken: every field round-trips; the user must exist; IDs and hashes are unique.
	full := &store.Token{ID: "t1", User: "ci", Hash: hashOf("cvy_t1"), Scope: store.ScopeWorker,
		Description: "runner 1", CreatedAt: at(5), ExpiresAt: at(3600)}
	update(t, s, func(tx store.Tx) error { return tx.CreateToken(c, full) })
	err := s.Update(c, func(tx store.Tx) error {
		return tx.CreateToken(c, &store.Token{ID: "t2", User: "nobody", Hash: hashOf("cvy_t2"), Scope: store.ScopeAPI, CreatedAt: at(6)})
	})
	wantErr(t, "token of an unknown user", err, store.ErrNotFound)
	err = s.Update(c, func(tx store.Tx) error {
		return tx.CreateToken(c, &store.Token{ID: "t1", User: "ci", Hash: hashOf("cvy_other"), Scope: store.ScopeAPI, CreatedAt: at(6)})
	})
	wantErr(t, "token id in use", err, store.ErrConflict)
	err = s.Update(c, func(tx store.Tx) error {
		return tx.CreateToken(c, &store.Token{ID: "t3", User: "ci", Hash: hashOf("cvy_t1"), Scope: store.ScopeAPI, CreatedAt: at(6)})
	})
	wantErr(t, "token hash in use", err, store.ErrConflict)
	if err := s.Update(c, func(tx store.Tx) error {
		return tx.CreateToken(c, &store.Token{ID: "t4", User: "ci", Hash: hashOf("cvy_t4"), Scope: "root", CreatedAt: at(6)})
	}); err == nil {
		t.Fatalf("a token of an unknown scope was stored")
	}
	view(t, s, func(r store.Reader) error {
		got, err := r.Token(c, "t1")
		if err != nil {
			t.Fatalf("token t1: %v", err)
		}
		equal(t, "token t1", got, full)
		got, err = r.TokenByHash(c, full.Hash)
		if err != nil {
			t.Fatalf("token t1 by hash: %v", err)
		}
		equal(t, "token t1 by hash", got, full)
		list, err := r.Tokens(c, "ci")
		if err != nil || len(list) != 2 || list[0].ID != "ci" || list[1].ID != "t1" {
			t.Fatalf("tokens of ci, oldest first: %v, %v", tokenIDs(list), err)
		}
		all, err := r.Tokens(c, "")
		if err != nil || len(all) != 3 || all[0].ID != "admin" {
			t.Fatalf("every token: %v, %v", tokenIDs(all), err)
		}
		none, err := r.Tokens(c, "nobody")
		if err != nil || len(none) != 0 {
			t.Fatalf("tokens of an unknown user: %v, %v", tokenIDs(none), err)
		}
		return nil
	})
}

func tokenIDs(list []*store.Token) []string {
	var out []string
	for _, t := range list {
		out = append(out, t.ID)
	}
	return out
}

func testTokenRevokeTouch(t *testing.T, s store.Store) {
	c := t.Context()
	update(t, s, func(tx store.Tx) error {
		return tx.CreateToken(c, &store.Token{ID: "t1", User: "admin", Hash: hashOf("cvy_t1"), Scope: store.ScopeAPI, CreatedAt: at(1)})
	})
	update(t, s, func(tx store.Tx) error { return tx.TouchToken(c, "t1", at(2)) })
	update(t, s, func(tx store.Tx) error { return tx.RevokeToken(c, "t1", at(3)) })
	// A second revocation keeps the first time.
	update(t, s, func(tx store.Tx) error { return tx.RevokeToken(c, "t1", at(4)) })
	view(t, s, func(r store.Reader) error {
		tok, err := r.TokenByHash(c, hashOf("cvy_t1"))
		if err != nil {
			t.Fatalf("revoked token by hash (still found, for the caller to explain): %v", err)
		}
		sameTime(t, "last used", tok.LastUsedAt, at(2))
		sameTime(t, "revoked", tok.RevokedAt, at(3))
		return nil
	})
	err := s.Update(c, func(tx store.Tx) error { return tx.RevokeToken(c, "nope", at(5)) })
	wantErr(t, "revoke an unknown token", err, store.ErrNotFound)
	err = s.Update(c, func(tx store.Tx) error { return tx.TouchToken(c, "nope", at(5)) })
	wantErr(t, "touch an unknown token", err, store.ErrNotFound)
}

func testUsers(t *testing.T, s store.Store) {
	c := t.Context()
	// A new store holds the bootstrap's user, admin, with the global admin role.
	view(t, s, func(r store.Reader) error {
		u, err := r.User(c, "admin")
		if err != nil || u.PasswordHash != "" || len(u.Groups) != 0 {
			t.Fatalf("user admin of a new store: %+v, %v", u, err)
		}
		gs, err := r.GrantsFor(c, "admin")
		if err != nil || len(gs) != 1 || gs[0].Role != "admin" || gs[0].Pipeline != "" || gs[0].User != "admin" {
			t.Fatalf("grants of admin in a new store: %+v, %v", gs, err)
		}
		_, err = r.User(c, "alice")
		wantErr(t, "unknown user", err, store.ErrNotFound)
		return nil
	})
	alice := &store.User{Name: "alice", PasswordHash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA", Groups: []string{"ops", "dev", "ops"}, CreatedAt: at(1)}
	update(t, s, func(tx store.Tx) error { return tx.CreateUser(c, alice) })
	update(t, s, func(tx store.Tx) error { return tx.CreateUser(c, &store.User{Name: "bob", CreatedAt: at(2)}) })
	err := s.Update(c, func(tx store.Tx) error { return tx.CreateUser(c, &store.User{Name: "bob", CreatedAt: at(3)}) })
	wantErr(t, "user name in use", err, store.ErrConflict)
	update(t, s, func(tx store.Tx) error {
		if err := tx.AddGroupMember(c, "ops", "bob"); err != nil {
			return err
		}
		return tx.AddGroupMember(c, "ops", "bob") // again: nothing changes
	})
	err = s.Update(c, func(tx store.Tx) error { return tx.AddGroupMember(c, "ops", "nobody") })
	wantErr(t, "add an unknown user to a group", err, store.ErrNotFound)
	view(t, s, func(r store.Reader) error {
		u, err := r.User(c, "alice")
		if err != nil {
			t.Fatalf("user alice: %v", err)
		}
		equal(t, "alice", u, &store.User{Name: "alice", PasswordHash: alice.PasswordHash, Groups: []string{"dev", "ops"}, CreatedAt: at(1)})
		list, err := r.Users(c)
		if err != nil || len(list) != 3 {
			t.Fatalf("users: %+v, %v", list, err)
		}
		var names []string
		for _, u := range list {
			names = append(names, u.Name)
		}
		equal(t, "users by name", names, []string{"admin", "alice", "bob"})
		equal(t, "groups of bob", list[2].Groups, []string{"ops"})
		return nil
	})
	update(t, s, func(tx store.Tx) error { return tx.RemoveGroupMember(c, "ops", "alice") })
	err = s.Update(c, func(tx store.Tx) error { return tx.RemoveGroupMember(c, "ops", "alice") })
	wantErr(t, "remove a non-member", err, store.ErrNotFound)
	view(t, s, func(r store.Reader) error {
		u, err := r.User(c, "alice")
		if err != nil || len(u.Groups) != 1 || u.Groups[0] != "dev" {
			t.Fatalf("alice after leaving ops: %+v, %v", u, err)
		}
		return nil
	})
}

func testGrants(t *testing.T, s store.Store) {
	c := t.Context()
	update(t, s, func(tx store.Tx) error {
		for _, name := range []string{"alice", "bob"} {
			if err := tx.CreateUser(c, &store.User{Name: name, CreatedAt: at(1)}); err != nil {
				return err
			}
		}
		return tx.AddGroupMember(c, "ops", "alice")
	})
	grants := []*store.Grant{
		{User: "alice", Role: "viewer", Pipeline: "webapp", CreatedAt: at(2)},
		{Group: "ops", Role: "operator", CreatedAt: at(3)},
		{Group: "qa", Role: "approver", Pipeline: "webapp", CreatedAt: at(4)},
		{User: "bob", Role: "viewer", Pipeline: "api", CreatedAt: at(5)},
	}
	update(t, s, func(tx store.Tx) error {
		for _, g := range grants {
			if added, err := tx.PutGrant(c, g); err != nil || !added {
				t.Fatalf("grant %+v: added %v, %v", g, added, err)
			}
		}
		// The same grant again is not added.
		if added, err := tx.PutGrant(c, &store.Grant{User: "alice", Role: "viewer", Pipeline: "webapp", CreatedAt: at(9)}); err != nil || added {
			t.Fatalf("grant again: added %v, %v", added, err)
		}
		return nil
	})
	err := s.Update(c, func(tx store.Tx) error {
		_, err := tx.PutGrant(c, &store.Grant{User: "nobody", Role: "viewer", CreatedAt: at(6)})
		return err
	})
	wantErr(t, "grant to an unknown user", err, store.ErrNotFound)
	for _, bad := range []*store.Grant{{Role: "viewer"}, {User: "alice", Group: "ops", Role: "viewer"}, {User: "alice"}} {
		if err := s.Update(c, func(tx store.Tx) error { _, err := tx.PutGrant(c, bad); return err }); err == nil {
			t.Fatalf("grant %+v was stored", bad)
		}
	}
	view(t, s, func(r store.Reader) error {
		got, err := r.GrantsFor(c, "alice")
		if err != nil {
			t.Fatalf("grants of alice: %v", err)
		}
		// Her own and her group's, users first, then by subject, pipeline and role.
		equal(t, "grants of alice", got, []*store.Grant{grants[0], grants[1]})
		all, err := r.Grants(c)
		if err != nil || len(all) != 5 { // with admin's
			t.Fatalf("every grant: %+v, %v", all, err)
		}
		equal(t, "every grant", all, []*store.Grant{all[0], grants[0], grants[3], grants[1], grants[2]})
		if all[0].User != "admin" || all[0].Role != "admin" {
			t.Fatalf("first grant: %+v", all[0])
		}
		return nil
	})
	update(t, s, func(tx store.Tx) error { return tx.DeleteGrant(c, &store.Grant{Group: "ops", Role: "operator"}) })
	err = s.Update(c, func(tx store.Tx) error { return tx.DeleteGrant(c, &store.Grant{Group: "ops", Role: "operator"}) })
	wantErr(t, "revoke a grant twice", err, store.ErrNotFound)
	view(t, s, func(r store.Reader) error {
		got, err := r.GrantsFor(c, "alice")
		if err != nil || len(got) != 1 {
			t.Fatalf("grants of alice after the revocation: %+v, %v", got, err)
		}
		return nil
	})
}
