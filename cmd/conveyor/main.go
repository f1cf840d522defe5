// Command conveyor is Conveyor's one binary: the local runner, the pipeline file tools, and
// (later) the server and the remote worker. It only builds the command tree and maps
// errors to exit statuses: 0 success, 1 a failed execution or an error, 2 bad usage or an
// invalid pipeline file.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/spf13/cobra"
)

// exitError carries an exit status up to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

func usageErr(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

func main() {
	root := &cobra.Command{
		Use:   "conveyor",
		Short: "Conveyor: self-hosted CI/CD pipelines of stages, actions and artifacts",
		Long: `Conveyor runs pipelines of stages of actions, passing artifacts from one stage to the
next, the way AWS CodePipeline does, on your own machines, from one binary.

Start with:
  conveyor validate pipeline.yaml     check a pipeline file
  conveyor run pipeline.yaml          run it here, now, with nothing else installed`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: 2, err: fmt.Errorf("%w\nSee '%s --help'.", err, c.CommandPath())}
	})
	root.AddCommand(validateCmd(), runCmd(), schemaCmd(), serverCmd(), workerCmd())
	root.AddCommand(clientCommands()...)
	root.AddCommand(authCommands()...)
	root.AddCommand(auditCmd())
	root.AddCommand(secretCmd(), keysCmd(), actionTypeCmd())
	root.AddCommand(lintCmd(), graphCmd())
	root.AddCommand(importCmd())
	stopProfile := startCPUProfile()
	err := root.Execute()
	stopProfile()
	if err == nil {
		return
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	} else if isUsage(err) {
		code = 2
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintln(os.Stderr, "conveyor: "+msg)
	}
	os.Exit(code)
}

// startCPUProfile writes a CPU profile of the whole command to the file named by
// CONVEYOR_CPUPROFILE, when it is set: how the benchmarks' figures are explained (go tool pprof).
// It returns the function that ends the profile.
func startCPUProfile() func() {
	path := os.Getenv("CONVEYOR_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "conveyor: CONVEYOR_CPUPROFILE:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "conveyor: CONVEYOR_CPUPROFILE:", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// isUsage recognises cobra's own usage errors (unknown command, wrong argument count).
func isUsage(err error) bool {
	msg := err.Error()
	for _, sub := range []string{"unknown command", "accepts ", "requires ", "unknown flag", "unknown shorthand"} {
		if strings.Contains(msg, sub) {
			return true
		}
	}
	return false
}
