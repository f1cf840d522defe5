package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/pkg/client"
)

func TestRealServerSecrets(t *testing.T) {
	t.Parallel()
	c := setup(t)
	ctx := context.Background()
	s, created, err := c.SetSecret(ctx, "", "token", "global-value")
	if err != nil || !created || s.Name != "token" || s.Scope != client.SecretGlobal || s.UpdatedBy != "admin" {
		t.Fatalf("set global: %+v, %v, %v", s, created, err)
	}
	if _, created, err = c.SetSecret(ctx, "", "token", "global-value-2"); err != nil || created {
		t.Fatalf("set global again: %v, %v", created, err)
	}
	s, created, err = c.SetSecret(ctx, "demo", "token", "demo-value")
	if err != nil || !created || s.Scope != client.SecretPipeline || s.Pipeline != "demo" {
		t.Fatalf("set demo's: %+v, %v, %v", s, created, err)
	}
	var ae *client.Error
	if _, _, err := c.SetSecret(ctx, "demo", "short", "abc"); !errors.As(err, &ae) || ae.Code != client.CodeBadRequest ||
		!strings.Contains(ae.Message, "minimum of 4 bytes") || strings.Contains(ae.Message, "abc") {
		t.Fatalf("set a short value: %v", err)
	}

	all, err := c.Secrets(ctx, "")
	if err != nil || len(all) != 2 || all[0].Scope != client.SecretGlobal || all[1].Pipeline != "demo" {
		t.Fatalf("all secrets: %+v, %v", all, err)
	}
	demo, err := c.Secrets(ctx, "demo")
	if err != nil || len(demo) != 2 || demo[0].Scope != client.SecretPipeline || !demo[1].Overridden {
		t.Fatalf("secrets of demo: %+v, %v", demo, err)
	}

	if err := c.DeleteSecret(ctx, "demo", "token"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSecret(ctx, "demo", "token"); !errors.As(err, &ae) || ae.Code != client.CodeNotFound {
		t.Fatalf("delete again: %v", err)
	}
	if err := c.DeleteSecret(ctx, "", "token"); err != nil {
		t.Fatal(err)
	}
	if all, err = c.Secrets(ctx, ""); err != nil || len(all) != 0 {
		t.Fatalf("after the deletes: %+v, %v", all, err)
	}
}
