package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// serverSecretPipeline takes deploy-token (the pipeline's own) and shared (global): it checks
// their values by digest (so the file never holds them), prints them, and writes the token
// into its artifact Out.
const serverSecretPipeline = `name: secretdemo
secrets: [deploy-token, shared]
stages:
  - name: Build
    actions:
      - name: Use
        category: Build
        provider: Commands
        environment:
          TOKEN: { secret: deploy-token }
          SHARED: { secret: shared }
        configuration:
          commands:
            - test "$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)" = TOKEN_SHA256 && echo "token=$TOKEN"
            - test "$(printf %s "$SHARED" | sha256sum | cut -d' ' -f1)" = SHARED_SHA256 && echo "shared=$SHARED"
            - mkdir -p out && printf %s "$TOKEN" > out/token.txt
        outputArtifacts:
          - name: Out
            files: ["out/**"]
`

// zstdDecoder decompresses whole zstd streams (DecodeAll is safe for concurrent use).
var zstdDecoder, _ = zstd.NewReader(nil)

var executionIDRE = regexp.MustCompile(`(?i)execution ([0-9a-f]{8}-[0-9a-f-]{27})`)

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestServerSecrets: secrets set with the CLI reach an action of `conveyor server` and never
// show in its log or in any file of the data directory; `conveyor keys rotate` (refused while
// the server runs, and with CONVEYOR_MASTER_KEY set) moves everything to a new key, after
// which the new key alone opens the secrets and the artifacts stored before.
func TestServerSecrets(t *testing.T) {
	t.Parallel()
	const token, shared = "tok-9f8e7d6c5b4a-Secret", "shared-Value-314159"
	dir := filepath.Join(t.TempDir(), "data")
	env := []string{"CONVEYOR_ADMIN_TOKEN=" + testToken, "CONVEYOR_MASTER_KEY="}
	p := runServerArgs(t, dir, []string{"--sandbox", "off"}, env...)
	s := &server{url: p.url, token: testToken}

	out := s.ok(t, testToken, token+"\n", "secret", "set", "deploy-token", "--pipeline", "secretdemo")
	if !strings.Contains(out, "secret deploy-token of pipeline secretdemo created") {
		t.Errorf("secret set:\n%s", out)
	}
	// An action whose secret is set nowhere fails, saying how to set it.
	file := writeFile(t, t.TempDir(), "p.yaml", strings.NewReplacer("TOKEN_SHA256", sha256Hex(token), "SHARED_SHA256", sha256Hex(shared)).Replace(serverSecretPipeline))
	s.ok(t, testToken, "", "pipeline", "apply", "-f", file)
	code, stdout, stderr := s.as(t, testToken, "", "start", "secretdemo", "--watch")
	if code != 1 || !strings.Contains(stdout+stderr, "secret shared is not set for pipeline secretdemo: set it with: conveyor secret set shared --pipeline secretdemo") {
		t.Errorf("start with a secret missing: exit status %d\n%s%s", code, stdout, stderr)
	}
	s.ok(t, testToken, shared, "secret", "set", "shared")
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"secret", "set", "empty"}, "standard input holds no value"},
		{"\n", []string{"secret", "set", "empty"}, "standard input holds no value"},
		{"abc\n", []string{"secret", "set", "short"}, "shorter than the minimum of 4 bytes (it has 3)"},
		{"", []string{"secret", "set", "name", "the-value-as-argument"}, "accepts 1 arg"},
		{"value", []string{"secret", "set", "bad.name"}, `secret name "bad.name"`},
	} {
		code, stdout, stderr := s.as(t, testToken, tc.stdin, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("conveyor %s: exit status %d, want 2 with %q\n%s%s", strings.Join(tc.args, " "), code, tc.want, stdout, stderr)
		}
	}
	list := s.ok(t, testToken, "", "secret", "list", "--pipeline", "secretdemo")
	if !regexp.MustCompile(`(?m)^deploy-token\s+pipeline secretdemo\s+`).MatchString(list) ||
		!regexp.MustCompile(`(?m)^shared\s+global\s+`).MatchString(list) {
		t.Errorf("secret list --pipeline secretdemo:\n%s", list)
	}

	run := func(what string) string {
		t.Helper()
		out := s.ok(t, testToken, "", "start", "secretdemo", "--watch")
		m := executionIDRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("%s: no execution id in:\n%s", what, out)
		}
		log := s.ok(t, testToken, "", "logs", m[1], "Build.Use")
		if !strings.Contains(log, "token=***") || !strings.Contains(log, "shared=***") {
			t.Errorf("%s: the log lacks the masked lines:\n%s", what, log)
		}
		for _, v := range []string{token, shared} {
			if strings.Contains(out+log, v) {
				t.Errorf("%s: the output shows a secret's value:\n%s\n%s", what, out, log)
			}
		}
		return m[1]
	}
	checkArtifact := func(what, id string) {
		t.Helper()
		dest := filepath.Join(t.TempDir(), "out")
		s.ok(t, testToken, "", "artifact", "get", id, "Out", "--extract", dest)
		if b, err := os.ReadFile(filepath.Join(dest, "out", "token.txt")); err != nil || string(b) != token {
			t.Errorf("%s: artifact Out of %s holds %q, %v", what, id, b, err)
		}
	}
	first := run("first execution")
	checkArtifact("before the rotation", first)

	// Rotation needs the data directory to itself.
	code, stdout, stderr = cli(t, "", "keys", "rotate", "--data-dir", dir)
	if code != 2 || !strings.Contains(stderr, "stop the server first") {
		t.Errorf("keys rotate while the server runs: exit status %d\n%s%s", code, stdout, stderr)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("server exit status %d:\n%s", code, p.stderr)
	}
	// Nothing the server keeps holds a value in the clear: not the store (nor its WAL), not
	// the artifacts, not their temporary files. Workspaces (work/) hold what actions write.
	scanned := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			if d != nil && d.IsDir() && d.Name() == "work" && filepath.Dir(path) == dir {
				return filepath.SkipDir
			}
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		scanned++
		// An artifact stored in the clear is a zstd stream, whose literals may be Huffman
		// coded: look inside what decompresses too.
		if plain, err := zstdDecoder.DecodeAll(b, nil); err == nil {
			b = append(b, plain...)
		}
		for _, v := range []string{token, shared} {
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("%s holds a secret's value in the clear", path)
			}
		}
		return nil
	})
	if err != nil || scanned < 3 {
		t.Fatalf("scan the data directory: %d files, %v", scanned, err)
	}

	// With CONVEYOR_MASTER_KEY set, rotation is the operator's: a new entry is printed.
	cmd := exec.Command(conveyorBin, "keys", "rotate", "--data-dir", dir)
	cmd.Env = append(os.Environ(), "CONVEYOR_MASTER_KEY=k1:"+strings.Repeat("A", 43)+"=")
	var envOut, envErr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &envOut, &envErr
	if err := cmd.Run(); cmd.ProcessState.ExitCode() != 1 || !regexp.MustCompile(`^mk-[0-9a-f]{12}:[A-Za-z0-9+/]{43}=\n$`).MatchString(envOut.String()) ||
		!strings.Contains(envErr.String(), "conveyor keys rewrap --data-dir "+dir) {
		t.Errorf("keys rotate with CONVEYOR_MASTER_KEY: %v\nstdout:\n%s\nstderr:\n%s", err, envOut.String(), envErr.String())
	}

	code, stdout, stderr = cli(t, "", "keys", "rotate", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("keys rotate: exit status %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"secrets: 2, 2 rewrapped", "artifacts referenced by executions: 1, 1 rewrapped, 0 stored unencrypted, 0 no longer stored"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("keys rotate output lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "secrets: 2/2") || !strings.Contains(stderr, "artifacts: 1/1") {
		t.Errorf("keys rotate progress:\n%s", stderr)
	}
	// Keep only the new key: everything must open without the old one.
	keyFile := filepath.Join(dir, "master.key")
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("key file after the rotation: %d keys, want 2", len(lines))
	}
	if err := os.WriteFile(keyFile, []byte(lines[1]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	p = runServerArgs(t, dir, []string{"--sandbox", "off"}, env...)
	s.url = p.url
	checkArtifact("after the rotation, with the new key alone", first)
	run("execution after the rotation")
	if code := p.stop(t); code != 0 {
		t.Fatalf("server exit status %d:\n%s", code, p.stderr)
	}

	// A lost key file is not silently replaced while secrets need it.
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	code, out = conveyor(t, "server", "--listen", "127.0.0.1:0", "--data-dir", dir, "--sandbox", "off")
	if code != 1 || !strings.Contains(out, "the store holds 2 secrets but its master key file "+keyFile+" was missing: restore it") {
		t.Errorf("server without its key file: exit status %d:\n%s", code, out)
	}
	if _, err := os.Stat(keyFile); !os.IsNotExist(err) {
		t.Errorf("the key file made for a store with secrets was left: %v", err)
	}
}
