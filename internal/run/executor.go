package run

import "context"

// Executor runs an action's processes. Host runs them directly on this machine; a sandbox
// (bubblewrap: a read-only system, private namespaces, only the workspace writable) or a
// container runtime are other implementations of the same seam. Providers take an Executor
// and run everything through it.
//
// Run and Prepare have the contracts of the package-level Run and Prepare: a process group of
// its own, the environment given and nothing else, killed when done, dead with its
// supervisor. Both are safe for concurrent use.
type Executor interface {
	Run(ctx context.Context, c Cmd) (exitCode int, err error)
	Prepare(c Cmd) (*Prepared, error)
}

// Host runs processes on this machine, as the user Conveyor runs as.
type Host struct{}

var _ Executor = Host{}

// Run runs c on the host: see the package-level Run.
func (Host) Run(ctx context.Context, c Cmd) (int, error) { return Run(ctx, c) }

// Prepare starts c on the host to wait for its work: see the package-level Prepare.
func (Host) Prepare(c Cmd) (*Prepared, error) { return Prepare(c) }

// Or returns e, or Host when e is nil.
func Or(e Executor) Executor {
	if e == nil {
		return Host{}
	}
	return e
}
