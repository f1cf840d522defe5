package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/pkg/client"
)

func TestRealServerAccounts(t *testing.T) {
	t.Parallel()
	admin := setup(t)
	ctx := context.Background()
	pw := "a long password"
	u, err := admin.CreateUser(ctx, client.NewUser{Name: "vic", Password: &pw, Groups: []string{"qa"}})
	if err != nil || u.Name != "vic" || !u.HasPassword || len(u.Groups) != 1 {
		t.Fatalf("create user: %+v, %v", u, err)
	}
	var ae *client.Error
	if _, err := admin.CreateUser(ctx, client.NewUser{Name: "vic"}); !errors.As(err, &ae) || ae.Code != client.CodeConflict {
		t.Fatalf("create vic again: %v", err)
	}
	if u, err = admin.AddGroupMember(ctx, "ops", "vic"); err != nil || len(u.Groups) != 2 {
		t.Fatalf("add to ops: %+v, %v", u, err)
	}
	if u, err = admin.RemoveGroupMember(ctx, "ops", "vic"); err != nil || len(u.Groups) != 1 {
		t.Fatalf("remove from ops: %+v, %v", u, err)
	}
	users, err := admin.Users(ctx)
	if err != nil || len(users) != 2 {
		t.Fatalf("users: %+v, %v", users, err)
	}

	tok, err := admin.CreateToken(ctx, client.NewToken{User: "vic", Description: "laptop", ExpiresIn: time.Hour})
	if err != nil || tok.Secret == "" || tok.ID == "" || tok.Scope != client.ScopeAPI || tok.ExpiresAt.Sub(tok.CreatedAt) != time.Hour {
		t.Fatalf("create token: %+v, %v", tok, err)
	}
	vic, err := client.New(admin.BaseURL(), tok.Secret)
	if err != nil {
		t.Fatal(err)
	}
	id, err := vic.WhoAmI(ctx)
	if err != nil || id.User != "vic" || id.Token.ID != tok.ID || len(id.Grants) != 0 {
		t.Fatalf("whoami: %+v, %v", id, err)
	}
	if _, err := vic.Pipelines(ctx); !errors.As(err, &ae) || ae.Status != 403 || ae.Code != client.CodeForbidden {
		t.Fatalf("pipelines without a role: %v", err)
	}
	created, err := admin.GrantRole(ctx, client.Grant{Group: "qa", Role: client.RoleViewer, Pipeline: "demo"})
	if err != nil || !created {
		t.Fatalf("grant: %v, %v", created, err)
	}
	if created, err = admin.GrantRole(ctx, client.Grant{Group: "qa", Role: client.RoleViewer, Pipeline: "demo"}); err != nil || created {
		t.Fatalf("grant again: %v, %v", created, err)
	}
	if list, err := vic.Pipelines(ctx); err != nil || len(list) != 0 {
		t.Fatalf("pipelines as a viewer of demo: %v, %v", list, err)
	}
	grants, err := admin.Grants(ctx)
	if err != nil || len(grants) != 2 || grants[1].Group != "qa" {
		t.Fatalf("grants: %+v, %v", grants, err)
	}
	if err := admin.RevokeRole(ctx, client.Grant{Group: "qa", Role: client.RoleViewer, Pipeline: "demo"}); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if err := admin.RevokeRole(ctx, client.Grant{Group: "qa", Role: client.RoleViewer, Pipeline: "demo"}); !errors.As(err, &ae) || ae.Code != client.CodeNotFound {
		t.Fatalf("revoke again: %v", err)
	}

	// Sign-in, then tokens: one's own, listed without secrets, revoked.
	anon, err := client.New(admin.BaseURL(), "")
	if err != nil {
		t.Fatal(err)
	}
	signed, err := anon.SignIn(ctx, "vic", pw)
	if err != nil || signed.Secret == "" || signed.ExpiresAt.Sub(signed.CreatedAt) != 12*time.Hour {
		t.Fatalf("sign in: %+v, %v", signed, err)
	}
	if _, err := anon.SignIn(ctx, "vic", "wrong"); !errors.As(err, &ae) || ae.Code != client.CodeUnauthorized {
		t.Fatalf("sign in with a wrong password: %v", err)
	}
	list, err := vic.Tokens(ctx, "")
	if err != nil || len(list) != 2 || list[0].Secret != "" || list[1].ID != signed.ID {
		t.Fatalf("vic's tokens: %+v, %v", list, err)
	}
	revoked, err := vic.RevokeToken(ctx, tok.ID)
	if err != nil || revoked.RevokedAt.IsZero() {
		t.Fatalf("revoke: %+v, %v", revoked, err)
	}
	if _, err := vic.WhoAmI(ctx); !errors.As(err, &ae) || ae.Status != 401 {
		t.Fatalf("whoami with a revoked token: %v", err)
	}
}
