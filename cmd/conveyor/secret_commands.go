package main

// `conveyor secret`: set, list and delete the secrets of a server, through pkg/client.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/conveyorci/conveyor/internal/vault"
	"github.com/conveyorci/conveyor/pkg/client"
)

func secretCmd() *cobra.Command {
	r := &remote{}
	var pipeline string
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Set, list and delete the secrets of a server's pipelines",
		Long: `Secrets are values an action takes into its environment, never written in a pipeline file,
never shown: a pipeline lists the names it may use (secrets: [NAME]) and an action takes one
with environment: { KEY: { secret: NAME } }; every line it prints is masked (***).

A secret is global, for every pipeline that lists it (this needs the global admin role), or
one pipeline's own with --pipeline (the admin role on that pipeline), which wins over a global
one of the same name. The server keeps values sealed with its master keys; no command or API
answer ever shows one again.`,
		Example: `  printf '%s' "$DEPLOY_TOKEN" | conveyor secret set deploy-token --pipeline webapp
  conveyor secret set registry-password < ./password.txt
  conveyor secret list --pipeline webapp
  conveyor secret delete deploy-token --pipeline webapp`,
		Args: cobra.NoArgs,
	}
	f := cmd.PersistentFlags()
	r.flags(f)
	f.StringVar(&pipeline, "pipeline", "", "the pipeline whose own secret it is (default: a global secret, for every pipeline)")
	cmd.AddCommand(r.secretSetCmd(&pipeline), r.secretListCmd(&pipeline), r.secretDeleteCmd(&pipeline))
	return cmd
}

// describeSecret names a secret for messages.
func describeSecret(pipeline, name string) string { return vault.Describe(pipeline, name) }

// readSecretValue reads the whole of in, less one trailing line end: what `echo` or a file
// adds. The value is never an argument: it would show in ps and the shell's history.
func readSecretValue(in io.Reader) (string, error) {
	if f, ok := in.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		return "", usageErr("standard input is a terminal: the value would show on the screen. Pipe it in: printf '%%s' \"$VALUE\" | conveyor secret set NAME, or conveyor secret set NAME < FILE")
	}
	b, err := io.ReadAll(io.LimitReader(in, vault.MaxValue+3))
	if err != nil {
		return "", fmt.Errorf("read the value from standard input: %w", err)
	}
	if bytes.HasSuffix(b, []byte("\r\n")) {
		b = b[:len(b)-2]
	} else if bytes.HasSuffix(b, []byte("\n")) {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return "", usageErr("standard input holds no value: pipe the secret's value in, e.g. printf '%%s' \"$VALUE\" | conveyor secret set NAME")
	}
	if len(b) > vault.MaxValue {
		return "", usageErr("the value on standard input is over the maximum of %d bytes", vault.MaxValue)
	}
	return string(b), nil
}

func (r *remote) secretSetCmd(pipeline *string) *cobra.Command {
	return &cobra.Command{
		Use:   "set NAME [--pipeline PIPELINE] < VALUE",
		Short: "Set a secret's value, read from standard input",
		Long: `Set the value of a secret, read from standard input: all of it, less one trailing line
end (so echo and a file ending in a newline work). The value is never taken as an argument,
where it would show in the process list and the shell's history. It must be at least 4
bytes: shorter values could not be masked in logs safely. Setting it again replaces it.`,
		Example: `  printf '%s' "$DEPLOY_TOKEN" | conveyor secret set deploy-token --pipeline webapp
  conveyor secret set registry-password < ./password.txt
  vault kv get -field=token secret/ci | conveyor secret set ci-token`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			name := args[0]
			if err := vault.CheckName(name); err != nil {
				return usageErr("%v", err)
			}
			if err := vault.CheckScope(*pipeline); err != nil {
				return usageErr("--pipeline: %v", err)
			}
			cl, err := r.client()
			if err != nil {
				return err
			}
			value, err := readSecretValue(c.InOrStdin())
			if err != nil {
				return err
			}
			ctx, cancel := callCtx()
			defer cancel()
			s, created, err := cl.SetSecret(ctx, *pipeline, name, value)
			if err != nil {
				return explain("set "+describeSecret(*pipeline, name), err, nil)
			}
			if r.output == "json" {
				return r.json(c, map[string]any{"secret": s, "created": created})
			}
			verb := "updated"
			if created {
				verb = "created"
			}
			use := "list it under secrets: in the pipelines that use it"
			if *pipeline != "" {
				use = "list it under secrets: in pipeline " + *pipeline
			}
			fmt.Fprintf(c.OutOrStdout(), "%s %s; %s, and take it with environment: { KEY: { secret: %s } }\n",
				describeSecret(*pipeline, name), verb, use, name)
			return nil
		},
	}
}

func (r *remote) secretListCmd(pipeline *string) *cobra.Command {
	return &cobra.Command{
		Use:   "list [--pipeline PIPELINE]",
		Short: "List secrets, without their values",
		Long: `List secrets by name, with who set them and when, never their values. With --pipeline,
the secrets that pipeline may use: its own, then the global ones (a global one its own
replaces is marked overridden); without it, every secret of the server (global admins).`,
		Example: `  conveyor secret list
  conveyor secret list --pipeline webapp -o json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return r.call(func(ctx context.Context, cl *client.Client) error {
				secrets, err := cl.Secrets(ctx, *pipeline)
				if err != nil {
					return explain("list secrets", err, nil)
				}
				if r.output == "json" {
					return r.json(c, map[string]any{"secrets": secrets})
				}
				tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tSCOPE\tUPDATED\tBY\tCREATED\tBY")
				for _, s := range secrets {
					scope := "global"
					if s.Scope == client.SecretPipeline {
						scope = "pipeline " + s.Pipeline
					}
					if s.Overridden {
						scope += " (overridden)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, scope, when(s.UpdatedAt), s.UpdatedBy, when(s.CreatedAt), s.CreatedBy)
				}
				return tw.Flush()
			})
		},
	}
}

func (r *remote) secretDeleteCmd(pipeline *string) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME [--pipeline PIPELINE]",
		Short: "Delete a secret",
		Long: `Delete a secret. Actions that take it fail from then on, saying how to set it again
(a pipeline's own secret deleted, a global one of that name takes its place).`,
		Example: `  conveyor secret delete deploy-token --pipeline webapp
  conveyor secret delete ci-token`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return r.call(func(ctx context.Context, cl *client.Client) error {
				what := describeSecret(*pipeline, args[0])
				if err := cl.DeleteSecret(ctx, *pipeline, args[0]); err != nil {
					return explain("delete "+what, err, func(msg string) string { return msg })
				}
				if r.output == "json" {
					return r.json(c, map[string]any{"deleted": map[string]string{"name": args[0], "pipeline": *pipeline}})
				}
				fmt.Fprintf(c.OutOrStdout(), "%s deleted\n", what)
				return nil
			})
		},
	}
}
