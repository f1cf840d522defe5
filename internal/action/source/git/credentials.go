package git

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/conveyorci/conveyor/internal/action/shell"
)

// Credentials authenticate git to a remote repository: a token (or password) over HTTPS, or
// a private key over SSH with the server's host keys. The zero value is none: git then uses
// what the runner's user has (an ssh-agent, ~/.ssh), as before credentials existed.
type Credentials struct {
	// Username goes with Token; empty means x-access-token (GitHub, GitLab and Gitea take
	// any user name with an access token).
	Username string
	// Token is an access token, or Username's password, for an http:// or https:// remote.
	Token string
	// SSHKey is a private key (a deploy key) for an ssh:// or host:path remote, without a
	// passphrase.
	SSHKey string
	// KnownHosts holds known_hosts lines for the SSH server; required with SSHKey: host keys
	// are always checked.
	KnownHosts string
}

// DefaultUsername is the user name sent with a token when none is configured.
const DefaultUsername = "x-access-token"

// CredentialsFrom reads the credentials of a Git source's configuration, as the action gets
// it (job.Configuration: the values of secrets in place of their references). Keys of the
// wrong type are ignored: parseConfig reports them.
func CredentialsFrom(cfg map[string]any) Credentials {
	s := func(k string) string { v, _ := cfg[k].(string); return v }
	return Credentials{Username: s("username"), Token: s("token"), SSHKey: s("sshKey"), KnownHosts: s("knownHosts")}
}

// validate checks what git cannot be given: a token and a key together (which one would
// count?), a key without host keys, values that would break the helper's protocol.
func (c Credentials) validate() error {
	switch {
	case c.Token != "" && c.SSHKey != "":
		return errors.New("configuration token and sshKey are both set: a repository is fetched over HTTPS (token) or SSH (sshKey), give the one its URL uses")
	case c.SSHKey != "" && strings.TrimSpace(c.KnownHosts) == "":
		return errors.New("configuration sshKey needs knownHosts, the SSH server's host keys (ssh-keyscan HOST prints them): host keys are always checked")
	case strings.ContainsAny(strings.TrimRight(c.Token, "\r\n"), "\r\n\x00"):
		return errors.New("configuration token must be one line")
	case strings.ContainsAny(c.Username, "\r\n\x00"):
		return errors.New("configuration username must be one line")
	}
	return nil
}

// empty reports whether c carries nothing to authenticate with.
func (c Credentials) empty() bool { return c.Token == "" && c.SSHKey == "" }

// secrets are the values git's output must never show.
func (c Credentials) secrets() []string {
	var s []string
	if t := strings.TrimRight(c.Token, "\r\n"); t != "" {
		s = append(s, t)
	}
	for l := range strings.Lines(c.SSHKey) {
		// A key's lines: git never prints them, but a broken key file could be echoed.
		if l = strings.TrimSpace(l); len(l) >= 16 && !strings.HasPrefix(l, "-----") {
			s = append(s, l)
		}
	}
	return s
}

// auth is what lets the git processes of one job authenticate: environment variables, and
// for SSH the key and known_hosts in a private directory that close removes.
type auth struct {
	dir     string      // "" when nothing was written
	env     []string    // NAME=VALUE
	config  [][2]string // git configuration, given through GIT_CONFIG_COUNT
	secrets []string
}

// prepare makes the auth for fetching from repoURL with c; nil when c is empty. The caller
// must close it.
func (c Credentials) prepare(repoURL string) (*auth, error) {
	if c.empty() {
		return nil, nil
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	a := &auth{secrets: c.secrets()}
	if c.Token != "" {
		// A credential helper answering from the environment: the token is on no command
		// line (which other users can read in /proc) and in no file. It answers only for the
		// repository's scheme and host, so a submodule or a redirect elsewhere never gets it.
		scope := ""
		if u, err := url.Parse(repoURL); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
			scope = u.Scheme + "://" + u.Host
		}
		if scope == "" {
			return nil, fmt.Errorf("configuration token is for an http:// or https:// repository, not %s", redactURL(repoURL))
		}
		a.env = append(a.env,
			"CONVEYOR_GIT_USERNAME="+cmp.Or(c.Username, DefaultUsername),
			"CONVEYOR_GIT_PASSWORD="+strings.TrimRight(c.Token, "\r\n"))
		a.config = append(a.config, [2]string{"credential." + scope + ".helper",
			`!f() { test "$1" = get && printf 'username=%s\npassword=%s\n' "$CONVEYOR_GIT_USERNAME" "$CONVEYOR_GIT_PASSWORD"; }; f`})
	}
	if c.SSHKey != "" {
		dir, err := os.MkdirTemp("", "conveyor-ssh-") // 0700
		if err != nil {
			return nil, fmt.Errorf("write the ssh key: %w", err)
		}
		a.dir = dir
		key, hosts := filepath.Join(dir, "key"), filepath.Join(dir, "known_hosts")
		err = os.WriteFile(key, []byte(lines(c.SSHKey)), 0o600)
		if err == nil {
			err = os.WriteFile(hosts, []byte(lines(c.KnownHosts)), 0o600)
		}
		if err != nil {
			a.close()
			return nil, fmt.Errorf("write the ssh key: %w", err)
		}
		// -F /dev/null: only this key and these host keys count, not the runner's
		// ~/.ssh/config or /etc/ssh/ssh_known_hosts.
		a.env = append(a.env, "GIT_SSH_COMMAND=ssh -F /dev/null -i "+shell.Quote(key)+
			" -o IdentitiesOnly=yes -o IdentityAgent=none -o UserKnownHostsFile="+shell.Quote(hosts)+
			" -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes",
			"GIT_SSH_VARIANT=ssh")
	}
	return a, nil
}

// close removes the files of a; nil-safe.
func (a *auth) close() {
	if a != nil && a.dir != "" {
		os.RemoveAll(a.dir)
	}
}

// redact replaces the secrets of a in s.
func (a *auth) redact(s string) string {
	if a == nil {
		return s
	}
	for _, v := range a.secrets {
		s = strings.ReplaceAll(s, v, "***")
	}
	return s
}

// lines normalizes a multi-line secret as stored (CRLF, a missing final newline, which
// OpenSSH refuses in a key) to what the programs read.
func lines(s string) string {
	return strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n")) + "\n"
}

// redactURL is u for messages: its password, if any, left out (the user name is kept:
// ssh://git@host says which account the key is for).
func redactURL(u string) string {
	if p, err := url.Parse(u); err == nil && p.User != nil {
		if _, ok := p.User.Password(); ok {
			p.User = url.User(p.User.Username())
			return p.String()
		}
	}
	return u
}
