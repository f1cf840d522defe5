package sqlite

import (
	"crypto/sha256"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/conveyorci/conveyor/internal/store"
)

// TestMigrationAuth: migration 00008 turns each token of api_tokens into a token of a user of
// its name with the global admin role (they could do everything before roles) and keeps its
// hash. (On a store without tokens, the user admin is added: storetest's Users.)
func TestMigrationAuth(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "conveyor.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 7); err != nil {
		t.Fatal(err)
	}
	hash, adminHash := sha256.Sum256([]byte("cvy_old")), sha256.Sum256([]byte("cvy_admin"))
	if _, err := db.Exec(`INSERT INTO api_tokens (name, hash, created_at) VALUES ('ci', ?, 42), ('admin', ?, 43)`,
		hash[:], adminHash[:]); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := openAt(t, path, Options{})
	err = s.View(ctx, func(r store.Reader) error {
		tok, err := r.TokenByHash(ctx, hash[:])
		if err != nil {
			return err
		}
		if tok.ID != "ci" || tok.User != "ci" || tok.Scope != store.ScopeAPI || tok.CreatedAt.UnixNano() != 42 ||
			!tok.ExpiresAt.IsZero() || !tok.RevokedAt.IsZero() {
			t.Errorf("migrated token: %+v", tok)
		}
		for _, user := range []string{"ci", "admin"} {
			gs, err := r.GrantsFor(ctx, user)
			if err != nil {
				return err
			}
			if len(gs) != 1 || gs[0].Role != "admin" || gs[0].Pipeline != "" {
				t.Errorf("grants of %s: %+v", user, gs)
			}
		}
		if tok, err := r.TokenByHash(ctx, adminHash[:]); err != nil || tok.ID != "admin" || tok.User != "admin" {
			t.Errorf("the admin token: %+v, %v", tok, err)
		}
		if users, err := r.Users(ctx); err != nil || len(users) != 2 {
			t.Errorf("users: %+v, %v", users, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
