package main

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// secretPipeline takes secret deploy-key into TOKEN and prints it in several forms.
const secretPipeline = `name: secrets
secrets: [deploy-key]
stages:
  - name: Build
    actions:
      - name: Show
        category: Build
        provider: Commands
        environment:
          TOKEN: { secret: deploy-key }
        configuration:
          commands:
            - test "$TOKEN" = "$EXPECTED" && echo "token ok"
            - echo "token=$TOKEN"
            - printf '%s' "$TOKEN" | base64
  - name: Fail
    actions:
      - name: Leak
        category: Test
        provider: Commands
        environment:
          TOKEN: { secret: deploy-key }
        configuration:
          commands: ['echo "about to fail with $TOKEN"; exit 3']
`

// TestRunSecrets runs a pipeline that takes a secret with each way conveyor run accepts one,
// and checks the value never shows in its output, raw or base64.
func TestRunSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const value = "s3cret-Value-42"
	file := writeFile(t, dir, "pipeline.yaml", strings.ReplaceAll(secretPipeline, "$EXPECTED", value))
	secretsFile := writeFile(t, dir, "secrets.env", "# local test secrets\n\ndeploy-key="+value+"\n")
	b64 := base64.StdEncoding.EncodeToString([]byte(value))

	check := func(name string, out string) {
		t.Helper()
		if !strings.Contains(out, "token ok") || !strings.Contains(out, "token=***") || !strings.Contains(out, "about to fail with ***") {
			t.Errorf("%s: output lacks the masked lines:\n%s", name, out)
		}
		for _, leak := range []string{value, b64[:len(b64)-4]} {
			if strings.Contains(out, leak) {
				t.Errorf("%s: output shows %q:\n%s", name, leak, out)
			}
		}
	}
	code, out := conveyor(t, "run", file, "--logs", "--secret", "deploy-key="+value)
	wantExit(t, code, 1, out) // the Fail stage fails
	check("--secret NAME=VALUE", out)

	code, out = conveyor(t, "run", file, "--logs", "--secrets-file", secretsFile)
	wantExit(t, code, 1, out)
	check("--secrets-file", out)

	cmd := exec.Command(conveyorBin, "run", file, "--logs", "--secret", "deploy-key")
	cmd.Env = append(os.Environ(), "deploy-key="+value)
	b, _ := cmd.CombinedOutput()
	check("--secret NAME (environment)", string(b))

	// deploy-key cannot be exported from a shell: DEPLOY_KEY stands for it.
	cmd = exec.Command(conveyorBin, "run", file, "--logs", "--secret", "deploy-key")
	cmd.Env = append(os.Environ(), "DEPLOY_KEY="+value)
	b, _ = cmd.CombinedOutput()
	check("--secret NAME (environment, DEPLOY_KEY)", string(b))

	// Missing, unknown and too short secrets are usage errors that say what to do.
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "actions take secrets with no value: deploy-key; pass each with --secret"},
		{[]string{"--secret", "other=abcdef"}, "does not list secret other; it lists deploy-key"},
		{[]string{"--secret", "deploy-key=abc"}, "shorter than the minimum of 4 bytes"},
		{[]string{"--secret", "deploy-key"}, "neither deploy-key nor DEPLOY_KEY is set in the environment"},
		{[]string{"--secrets-file", filepath.Join(dir, "nope.env")}, "--secrets-file: open"},
	} {
		code, out := conveyor(t, append([]string{"run", file}, c.args...)...)
		wantExit(t, code, 2, out)
		if !strings.Contains(out, c.want) {
			t.Errorf("run %v: output %q; want it to say %q", c.args, out, c.want)
		}
	}
}
