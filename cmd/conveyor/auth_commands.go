package main

// The commands of users, groups, tokens and roles, and whoami and signin: client commands
// like the others, through pkg/client.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/conveyorci/conveyor/pkg/client"
)

// authCommands returns the commands of users, groups, tokens and roles.
func authCommands() []*cobra.Command {
	r := &remote{}
	cmds := []*cobra.Command{r.userCmd(), r.groupCmd(), r.tokenCmd(), r.roleCmd(), r.whoamiCmd(), r.signinCmd()}
	for _, c := range cmds {
		r.flags(c.PersistentFlags())
	}
	return cmds
}

func noUser(name string) notFound {
	return func(msg string) string {
		return fmt.Sprintf("%s: see `conveyor user list`, or create the user with `conveyor user create %s`", msg, name)
	}
}

// readPassword reads the first line of in: the password, without its line end.
func readPassword(in io.Reader) (string, error) {
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the password from standard input: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", usageErr("--password-stdin: standard input holds no password (give it on the first line)")
	}
	return pw, nil
}

func (r *remote) userCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Create and list the users of a server (needs the global admin role)",
		Example: `  conveyor user create alice --group release-managers
  printf '%s\n' "$PASSWORD" | conveyor user create bob --password-stdin
  conveyor user list`,
		Args: cobra.NoArgs,
	}
	var (
		passwordStdin bool
		groups        []string
	)
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a user, with a password from standard input or with tokens only",
		Long: `Create a user. With --password-stdin the first line of standard input is its password
(stored as an argon2id hash), for conveyor signin; without it the user has no password and
authenticates with the tokens an admin creates for it (conveyor token create). A new user
has no role: grant one with conveyor role grant.`,
		Example: `  conveyor user create alice
  conveyor user create bob --group release-managers --group ops
  printf '%s\n' "$PASSWORD" | conveyor user create carol --password-stdin`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := r.client()
			if err != nil {
				return err
			}
			in := client.NewUser{Name: args[0], Groups: groups}
			if passwordStdin {
				pw, err := readPassword(c.InOrStdin())
				if err != nil {
					return err
				}
				in.Password = &pw
			}
			ctx, cancel := callCtx()
			defer cancel()
			u, err := cl.CreateUser(ctx, in)
			if err != nil {
				return explain("create user "+args[0], err, nil)
			}
			if r.output == "json" {
				return r.json(c, u)
			}
			out := c.OutOrStdout()
			fmt.Fprintf(out, "user %s created", u.Name)
			if len(u.Groups) > 0 {
				fmt.Fprintf(out, " in groups %s", strings.Join(u.Groups, ", "))
			}
			if !u.HasPassword {
				fmt.Fprintf(out, ", without a password: create a token with `conveyor token create --user %s`", u.Name)
			}
			fmt.Fprintf(out, "\ngrant it a role: `conveyor role grant viewer --user %s --pipeline PIPELINE`\n", u.Name)
			return nil
		},
	}
	create.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the user's password from the first line of standard input")
	create.Flags().StringArrayVar(&groups, "group", nil, "put the user in this group (repeatable)")

	list := &cobra.Command{
		Use:     "list",
		Short:   "List the users with their groups",
		Example: `  conveyor user list -o json`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return r.call(func(ctx context.Context, cl *client.Client) error {
				users, err := cl.Users(ctx)
				if err != nil {
					return explain("list users", err, nil)
				}
				if r.output == "json" {
					return r.json(c, map[string]any{"users": users})
				}
				tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tGROUPS\tPASSWORD\tCREATED")
				for _, u := range users {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, dash(strings.Join(u.Groups, ",")), yesNo(u.HasPassword), when(u.CreatedAt))
				}
				return tw.Flush()
			})
		},
	}
	cmd.AddCommand(create, list)
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (r *remote) groupCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "Add users to groups and remove them (roles granted to a group apply to its members)",
		Example: `  conveyor group add release-managers --user alice
  conveyor group remove release-managers --user alice`,
		Args: cobra.NoArgs,
	}
	for _, add := range []bool{true, false} {
		var user string
		verb, past := "add", "added to"
		if !add {
			verb, past = "remove", "removed from"
		}
		sub := &cobra.Command{
			Use:     verb + " GROUP --user NAME",
			Short:   strings.ToUpper(verb[:1]) + verb[1:] + " a user " + map[bool]string{true: "to", false: "from"}[add] + " a group",
			Example: fmt.Sprintf("  conveyor group %s release-managers --user alice", verb),
			Args:    cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				if user == "" {
					return usageErr("group %s: name the user with --user NAME", verb)
				}
				cl, err := r.client()
				if err != nil {
					return err
				}
				ctx, cancel := callCtx()
				defer cancel()
				var u *client.User
				if add {
					u, err = cl.AddGroupMember(ctx, args[0], user)
				} else {
					u, err = cl.RemoveGroupMember(ctx, args[0], user)
				}
				if err != nil {
					nf := noUser(user)
					if !add {
						nf = func(msg string) string { return msg + ": see `conveyor user list`" }
					}
					return explain(verb+" "+user+" "+map[bool]string{true: "to", false: "from"}[add]+" group "+args[0], err, nf)
				}
				if r.output == "json" {
					return r.json(c, u)
				}
				fmt.Fprintf(c.OutOrStdout(), "user %s %s group %s (groups: %s)\n", user, past, args[0], dash(strings.Join(u.Groups, ", ")))
				return nil
			},
		}
		sub.Flags().StringVar(&user, "user", "", "the user")
		cmd.AddCommand(sub)
	}
	return cmd
}

// parseExpiry reads --expires: a Go duration (90m, 12h) or a number of days (30d).
func parseExpiry(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if days, ok := strings.CutSuffix(s, "d"); err != nil && ok {
		n, nerr := strconv.Atoi(days)
		d, err = time.Duration(n)*24*time.Hour, nerr
	}
	if err != nil || d < time.Second {
		return 0, usageErr("--expires %q: give a duration of a second or more, e.g. 12h, 90m or 30d", s)
	}
	return d, nil
}

func (r *remote) tokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API and worker tokens",
		Example: `  export CONVEYOR_TOKEN=$(conveyor token create --user alice --expires 30d --description laptop)
  conveyor token list
  conveyor token revoke 3f9a1c2b7d4e`,
		Args: cobra.NoArgs,
	}
	var (
		user, expires, description string
		workerScope                bool
	)
	create := &cobra.Command{
		Use:   "create --user NAME",
		Short: "Create a token for a user and print it once (needs the global admin role)",
		Long: `Create a token for a user and print it on standard output, alone, so that
$(conveyor token create ...) captures it: it is shown this once (the server keeps only its
SHA-256). Its ID and expiry go to standard error; the ID names it in conveyor token list and
to revoke it. An API token acts as its user, with the user's roles; a worker token (--worker)
may only lease and report jobs.`,
		Example: `  conveyor token create --user alice
  export CONVEYOR_TOKEN=$(conveyor token create --user alice --expires 30d --description laptop)
  conveyor token create --user runner --worker --description "runner on build-01"`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if user == "" {
				return usageErr("token create: name the token's user with --user NAME")
			}
			in := client.NewToken{User: user, Description: description, Scope: client.ScopeAPI}
			if workerScope {
				in.Scope = client.ScopeWorker
			}
			if expires != "" {
				d, err := parseExpiry(expires)
				if err != nil {
					return err
				}
				in.ExpiresIn = d
			}
			return r.call(func(ctx context.Context, cl *client.Client) error {
				t, err := cl.CreateToken(ctx, in)
				if err != nil {
					return explain("create a token for "+user, err, noUser(user))
				}
				if r.output == "json" {
					return r.json(c, t)
				}
				fmt.Fprintln(c.OutOrStdout(), t.Secret)
				expiry := "does not expire"
				if !t.ExpiresAt.IsZero() {
					expiry = "expires " + t.ExpiresAt.Local().Format(time.RFC3339)
				}
				fmt.Fprintf(c.ErrOrStderr(), "token %s of user %s (%s), %s: shown once, keep it now; revoke it with `conveyor token revoke %s`\n",
					t.ID, t.User, t.Scope, expiry, t.ID)
				return nil
			})
		},
	}
	f := create.Flags()
	f.StringVar(&user, "user", "", "the user the token acts as")
	f.StringVar(&expires, "expires", "", "how long the token lasts: 12h, 90m, 30d (default: it does not expire)")
	f.StringVar(&description, "description", "", "what the token is for, shown in conveyor token list")
	f.BoolVar(&workerScope, "worker", false, "a worker token: it may only lease and report jobs")

	var listUser string
	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens without their secrets: yours, or every user's for a global admin",
		Example: `  conveyor token list
  conveyor token list --user alice`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return r.call(func(ctx context.Context, cl *client.Client) error {
				tokens, err := cl.Tokens(ctx, listUser)
				if err != nil {
					return explain("list tokens", err, nil)
				}
				if r.output == "json" {
					return r.json(c, map[string]any{"tokens": tokens})
				}
				tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tUSER\tSCOPE\tSTATE\tCREATED\tEXPIRES\tLAST USED\tDESCRIPTION")
				for _, t := range tokens {
					state := "valid"
					switch {
					case !t.RevokedAt.IsZero():
						state = "revoked"
					case !t.ExpiresAt.IsZero() && !time.Now().Before(t.ExpiresAt):
						state = "expired"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.User, t.Scope, state, when(t.CreatedAt),
						when(t.ExpiresAt), when(t.LastUsedAt), dash(t.Description))
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().StringVar(&listUser, "user", "", "only this user's tokens (a global admin's choice)")

	revoke := &cobra.Command{
		Use:     "revoke ID",
		Short:   "Revoke a token: yours, or anyone's for a global admin",
		Example: `  conveyor token revoke 3f9a1c2b7d4e`,
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return r.call(func(ctx context.Context, cl *client.Client) error {
				t, err := cl.RevokeToken(ctx, args[0])
				if err != nil {
					return explain("revoke token "+args[0], err, func(msg string) string { return msg })
				}
				if r.output == "json" {
					return r.json(c, t)
				}
				fmt.Fprintf(c.OutOrStdout(), "token %s of user %s revoked\n", t.ID, t.User)
				return nil
			})
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// grantFlags are the flags naming a grant.
type grantFlags struct{ user, group, pipeline string }

func (g *grantFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&g.user, "user", "", "the user")
	c.Flags().StringVar(&g.group, "group", "", "the group (instead of --user)")
	c.Flags().StringVar(&g.pipeline, "pipeline", "", "only on this pipeline (default: on every pipeline)")
}

func (g *grantFlags) grant(verb, role string) (client.Grant, error) {
	if (g.user == "") == (g.group == "") {
		return client.Grant{}, usageErr("role %s: name who with either --user NAME or --group NAME", verb)
	}
	switch role {
	case client.RoleViewer, client.RoleOperator, client.RoleApprover, client.RoleAdmin:
	default:
		return client.Grant{}, usageErr("role %q: use viewer, operator, approver or admin", role)
	}
	return client.Grant{User: g.user, Group: g.group, Role: role, Pipeline: g.pipeline}, nil
}

// describeGrant renders a grant as "ROLE on pipeline P to user U".
func describeGrant(g client.Grant) string {
	where := "on every pipeline"
	if g.Pipeline != "" {
		where = "on pipeline " + g.Pipeline
	}
	who := "user " + g.User
	if g.Group != "" {
		who = "group " + g.Group
	}
	return fmt.Sprintf("%s %s to %s", g.Role, where, who)
}

func (r *remote) roleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "role",
		Short: "Grant and revoke roles on pipelines (needs the global admin role)",
		Long: `Grant roles to users or groups, on one pipeline or on every pipeline:

  viewer     read pipelines, executions, logs, artifacts and events
  operator   viewer, and start, stop, retry, roll back, override conditions, transitions
  approver   viewer, and approve or reject approval actions
  admin      everything: apply and delete pipelines; granted globally, also users, tokens
             and roles`,
		Example: `  conveyor role grant operator --user alice --pipeline webapp
  conveyor role grant approver --group release-managers --pipeline webapp
  conveyor role grant viewer --group everyone
  conveyor role revoke operator --user alice --pipeline webapp
  conveyor role list`,
		Args: cobra.NoArgs,
	}
	for _, grant := range []bool{true, false} {
		var g grantFlags
		verb := "grant"
		if !grant {
			verb = "revoke"
		}
		sub := &cobra.Command{
			Use:   verb + " ROLE (--user NAME | --group NAME) [--pipeline PIPELINE]",
			Short: strings.ToUpper(verb[:1]) + verb[1:] + " a role: viewer, operator, approver or admin",
			Example: fmt.Sprintf(`  conveyor role %s operator --user alice --pipeline webapp
  conveyor role %s admin --group platform`, verb, verb),
			Args: cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				gr, err := g.grant(verb, args[0])
				if err != nil {
					return err
				}
				cl, err := r.client()
				if err != nil {
					return err
				}
				ctx, cancel := callCtx()
				defer cancel()
				what := describeGrant(gr)
				if grant {
					created, err := cl.GrantRole(ctx, gr)
					if err != nil {
						return explain("grant "+what, err, noUser(g.user))
					}
					if r.output == "json" {
						return r.json(c, map[string]any{"grant": gr, "created": created})
					}
					if created {
						fmt.Fprintf(c.OutOrStdout(), "granted %s\n", what)
					} else {
						fmt.Fprintf(c.OutOrStdout(), "%s: granted already\n", what)
					}
					return nil
				}
				if err := cl.RevokeRole(ctx, gr); err != nil {
					return explain("revoke "+what, err, func(string) string {
						return fmt.Sprintf("no grant of %s: see `conveyor role list`", what)
					})
				}
				if r.output == "json" {
					return r.json(c, map[string]any{"revoked": gr})
				}
				fmt.Fprintf(c.OutOrStdout(), "revoked %s\n", what)
				return nil
			},
		}
		g.add(sub)
		cmd.AddCommand(sub)
	}
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the roles granted",
		Example: `  conveyor role list -o json`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return r.call(func(ctx context.Context, cl *client.Client) error {
				grants, err := cl.Grants(ctx)
				if err != nil {
					return explain("list roles", err, nil)
				}
				if r.output == "json" {
					return r.json(c, map[string]any{"grants": grants})
				}
				printGrants(c.OutOrStdout(), grants)
				return nil
			})
		},
	}
	cmd.AddCommand(list)
	return cmd
}

func printGrants(out io.Writer, grants []client.Grant) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WHO\tROLE\tPIPELINE")
	for _, g := range grants {
		who := "user " + g.User
		if g.Group != "" {
			who = "group " + g.Group
		}
		pipeline := g.Pipeline
		if pipeline == "" {
			pipeline = "(every pipeline)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", who, g.Role, pipeline)
	}
	tw.Flush()
}

func (r *remote) whoamiCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "whoami",
		Short:   "Show the user, groups, token and roles the token acts with",
		Example: `  conveyor whoami --token "$TOKEN"`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return r.call(func(ctx context.Context, cl *client.Client) error {
				id, err := cl.WhoAmI(ctx)
				if err != nil {
					return explain("whoami", err, nil)
				}
				if r.output == "json" {
					return r.json(c, id)
				}
				out := c.OutOrStdout()
				fmt.Fprintf(out, "user %s", id.User)
				if len(id.Groups) > 0 {
					fmt.Fprintf(out, " (groups: %s)", strings.Join(id.Groups, ", "))
				}
				expiry := "does not expire"
				if !id.Token.ExpiresAt.IsZero() {
					expiry = "expires " + when(id.Token.ExpiresAt)
				}
				fmt.Fprintf(out, ", token %s (%s, %s)\n", id.Token.ID, id.Token.Scope, expiry)
				if len(id.Grants) == 0 {
					fmt.Fprintln(out, "no roles: an admin grants them with `conveyor role grant`")
					return nil
				}
				printGrants(out, id.Grants)
				return nil
			})
		},
	}
}

func (r *remote) signinCmd() *cobra.Command {
	var (
		user          string
		passwordStdin bool
	)
	cmd := &cobra.Command{
		Use:   "signin --user NAME --password-stdin",
		Short: "Exchange your password for a token that lasts 12 hours, printed on standard output",
		Long: `Sign in with a user's password (from the first line of standard input) and print the
API token the server gives for it, valid 12 hours, alone on standard output. After 5 failures
in a minute the server refuses further attempts for a while.`,
		Example: `  export CONVEYOR_TOKEN=$(printf '%s\n' "$PASSWORD" | conveyor signin --user alice --password-stdin)`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if user == "" || !passwordStdin {
				return usageErr("signin: give the user with --user NAME and the password on standard input with --password-stdin")
			}
			pw, err := readPassword(c.InOrStdin())
			if err != nil {
				return err
			}
			return r.call(func(ctx context.Context, cl *client.Client) error {
				t, err := cl.SignIn(ctx, user, pw)
				var ae *client.Error
				if errors.As(err, &ae) && ae.Status == 401 {
					return &exitError{code: 1, err: errors.New("sign in: wrong user name or password")}
				}
				if err != nil {
					return explain("sign in", err, nil)
				}
				if r.output == "json" {
					return r.json(c, t)
				}
				fmt.Fprintln(c.OutOrStdout(), t.Secret)
				fmt.Fprintf(c.ErrOrStderr(), "token %s of user %s, expires %s\n", t.ID, t.User, t.ExpiresAt.Local().Format(time.RFC3339))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "your user name")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
	return cmd
}
