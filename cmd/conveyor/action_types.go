package main

// `conveyor action-type`: register, list and delete the custom action types of a server,
// through pkg/client. Custom workers (pkg/client's JobWorker) take their jobs.

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/conveyorci/conveyor/pkg/client"
)

func actionTypeCmd() *cobra.Command {
	r := &remote{}
	cmd := &cobra.Command{
		Use:   "action-type",
		Short: "Register, list and delete custom action types",
		Long: `A custom action type is a provider that Conveyor does not run itself: a custom worker,
written with pkg/client's JobWorker, polls the server for its jobs, acknowledges each,
heartbeats and reports a success (with a summary, an external ID and link, output variables,
and a continuation token to carry on in a next job) or a typed failure, as CodePipeline's
custom actions do. Once registered, pipelines use it as category CATEGORY, provider PROVIDER,
with the configuration properties declared here. Registering and deleting needs the global
admin role.`,
		Example: `  conveyor action-type create Deploy/Echo --property message:required --property apiKey:secret
  conveyor action-type list
  conveyor action-type delete Deploy/Echo`,
		Args: cobra.NoArgs,
	}
	r.flags(cmd.PersistentFlags())
	cmd.AddCommand(r.actionTypeCreateCmd(), r.actionTypeListCmd(), r.actionTypeDeleteCmd())
	return cmd
}

// splitType reads CATEGORY/PROVIDER.
func splitType(arg string) (category, provider string, err error) {
	category, provider, ok := strings.Cut(arg, "/")
	if !ok || category == "" || provider == "" || strings.Contains(provider, "/") {
		return "", "", usageErr("%q: name the action type as CATEGORY/PROVIDER, e.g. Deploy/Echo", arg)
	}
	return category, provider, nil
}

// parseProperty reads NAME[:required][:secret][=DESCRIPTION].
func parseProperty(s string) (client.ActionTypeProperty, error) {
	spec, desc, _ := strings.Cut(s, "=")
	parts := strings.Split(spec, ":")
	p := client.ActionTypeProperty{Name: parts[0], Description: desc}
	for _, flag := range parts[1:] {
		switch flag {
		case "required":
			p.Required = true
		case "secret":
			p.Secret = true
		default:
			return p, usageErr("--property %q: %q is neither required nor secret; write NAME[:required][:secret][=DESCRIPTION]", s, flag)
		}
	}
	if p.Name == "" {
		return p, usageErr("--property %q: name the property: NAME[:required][:secret][=DESCRIPTION]", s)
	}
	return p, nil
}

func (r *remote) actionTypeCreateCmd() *cobra.Command {
	var version, description string
	var props []string
	cmd := &cobra.Command{
		Use:   "create CATEGORY/PROVIDER [--property NAME[:required][:secret][=DESCRIPTION]]...",
		Short: "Register a custom action type, or replace it",
		Long: `Register a custom action type. CATEGORY is Build, Test, Deploy, Invoke or Compute; PROVIDER
is 1 to 35 letters, digits, '-' or '_', not a built-in provider's name. Each --property
declares a configuration property of its actions: required ones must be set, secret ones are
written { secret: NAME } in a pipeline (NAME one of its secrets) and the worker reads the
value. Creating it again replaces it.`,
		Example: `  conveyor action-type create Deploy/Echo --property message:required="what to say" --property apiKey:secret
  conveyor action-type create Test/Scan --version 2 --description "runs the scanner"`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			category, provider, err := splitType(args[0])
			if err != nil {
				return err
			}
			t := client.CustomActionType{Category: category, Provider: provider, Version: version, Description: description}
			for _, s := range props {
				p, err := parseProperty(s)
				if err != nil {
					return err
				}
				t.Properties = append(t.Properties, p)
			}
			return r.call(func(ctx context.Context, cl *client.Client) error {
				got, created, err := cl.PutActionType(ctx, t)
				if err != nil {
					return explain("register action type "+args[0], err, nil)
				}
				if r.output == "json" {
					return r.json(c, map[string]any{"actionType": got, "created": created})
				}
				verb := "replaced"
				if created {
					verb = "registered"
				}
				fmt.Fprintf(c.OutOrStdout(), "action type %s/%s (version %s) %s; pipelines may use it as category: %s, provider: %s, and a custom worker takes its jobs\n",
					got.Category, got.Provider, got.Version, verb, got.Category, got.Provider)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&version, "version", "", `the type's version (default "1")`)
	f.StringVar(&description, "description", "", "what the type does (at most 160 bytes)")
	f.StringArrayVar(&props, "property", nil, "a configuration property: NAME[:required][:secret][=DESCRIPTION] (repeat, at most 10)")
	return cmd
}

func (r *remote) actionTypeListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the custom action types",
		Example: `  conveyor action-type list -o json`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return r.call(func(ctx context.Context, cl *client.Client) error {
				types, err := cl.ActionTypes(ctx)
				if err != nil {
					return explain("list action types", err, nil)
				}
				if r.output == "json" {
					return r.json(c, map[string]any{"actionTypes": types})
				}
				tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "TYPE\tVERSION\tPROPERTIES\tUPDATED\tBY")
				for _, t := range types {
					var props []string
					for _, p := range t.Properties {
						s := p.Name
						if p.Required {
							s += ":required"
						}
						if p.Secret {
							s += ":secret"
						}
						props = append(props, s)
					}
					fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\n", t.Category, t.Provider, t.Version, strings.Join(props, ","), when(t.UpdatedAt), t.UpdatedBy)
				}
				return tw.Flush()
			})
		},
	}
}

func (r *remote) actionTypeDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete CATEGORY/PROVIDER",
		Short: "Delete a custom action type",
		Long: `Delete a custom action type. It is refused while the latest version of a pipeline uses it:
change that pipeline first.`,
		Example: `  conveyor action-type delete Deploy/Echo`,
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			category, provider, err := splitType(args[0])
			if err != nil {
				return err
			}
			return r.call(func(ctx context.Context, cl *client.Client) error {
				if err := cl.DeleteActionType(ctx, category, provider); err != nil {
					return explain("delete action type "+args[0], err, func(msg string) string { return msg })
				}
				if r.output == "json" {
					return r.json(c, map[string]any{"deleted": map[string]string{"category": category, "provider": provider}})
				}
				fmt.Fprintf(c.OutOrStdout(), "action type %s/%s deleted\n", category, provider)
				return nil
			})
		},
	}
}
