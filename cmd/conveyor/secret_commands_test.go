package main

import (
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/vault"
)

func TestSecretAndKeysHelp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"secret"}, []string{"--server", "--token", "--pipeline", "secrets: [NAME]"}},
		{[]string{"secret", "set"}, []string{"--pipeline", "standard input", "never taken as an argument", "at least 4"}},
		{[]string{"secret", "list"}, []string{"--pipeline", "--output", "never their values"}},
		{[]string{"secret", "delete"}, []string{"--pipeline"}},
		{[]string{"keys"}, []string{"--data-dir", "CONVEYOR_MASTER_KEY", "master.key", "stop the server first"}},
		{[]string{"keys", "rotate"}, []string{"--data-dir", "CONVEYOR_MASTER_KEY", "server must be stopped"}},
		{[]string{"keys", "rewrap"}, []string{"--data-dir", "CONVEYOR_MASTER_KEY"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			code, out := conveyor(t, append(tc.args, "--help")...)
			wantExit(t, code, 0, out)
			for _, want := range append([]string{"Usage:", "Examples:"}, tc.want...) {
				if !strings.Contains(out, want) {
					t.Errorf("help lacks %q:\n%s", want, out)
				}
			}
		})
	}
	code, out := conveyor(t, "server", "--help")
	wantExit(t, code, 0, out)
	for _, want := range []string{"CONVEYOR_MASTER_KEY", "master.key in --data-dir", "Back it up", "--sandbox-hide", "conveyor keys rotate"} {
		if !strings.Contains(out, want) {
			t.Errorf("server --help lacks %q:\n%s", want, out)
		}
	}
}

func TestReadSecretValue(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"value": "value", "value\n": "value", "value\r\n": "value", "value\n\n": "value\n",
		"two\nlines\n": "two\nlines", " spaced ": " spaced ",
	} {
		if got, err := readSecretValue(strings.NewReader(in)); err != nil || got != want {
			t.Errorf("%q: %q, %v; want %q", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"": "holds no value", "\n": "holds no value", "\r\n": "holds no value",
		strings.Repeat("x", vault.MaxValue+1): "over the maximum of 65536 bytes",
	} {
		if _, err := readSecretValue(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.10q: %v, want an error with %q", in, err, want)
		}
	}
}
