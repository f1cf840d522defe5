package run

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Sandbox runs processes inside bubblewrap (bwrap): the system read-only, everything else
// invisible but the directories of Cmd.Writable, in PID, IPC, UTS and (by default) network
// namespaces of their own, with no capabilities, no new privileges (bwrap sets
// PR_SET_NO_NEW_PRIVS: setuid programs do not elevate) and no controlling terminal.
//
// What the processes see:
//   - read-only: /usr, /bin, /sbin, /lib, /lib32, /lib64, /libx32 and /etc (as the host has
//     them: a symbolic link stays one), and the paths of ReadOnly. In /etc, whatever other
//     users may not read (/etc/shadow, /etc/ssl/private, host keys) is masked: a server
//     running as root would otherwise hand its owner's rights on them to every action;
//   - read-write: the directories of Cmd.Writable, at the same paths;
//   - empty and private to the run: /tmp, /dev (null, zero, random, urandom, tty, pts, shm),
//     and $HOME when the environment sets it outside the paths above, so that tools
//     writing caches and configuration there work;
//   - /proc of its own PID namespace: only the run's processes, the first one PID 2 (bwrap
//     is PID 1);
//   - the root itself, holding the mount points of the above (and the directories leading
//     to them), read-only.
//
// Nothing else of the host is there: not /home, /root, /var, /run, /srv, /opt, /work... so
// the data directory, key files and other workspaces are invisible wherever they are, unless
// under one of the paths above: Validate refuses a Hide path there.
//
// The environment is the Cmd's, plus PWD (the working directory), which bwrap sets and any
// shell would set anyway.
//
// Process groups: bwrap is started as Host starts a process (its own group, SIGKILL when
// its supervisor dies) and is what Started reports. Inside, bwrap's PID 1 (in a session
// and group of its own, from --new-session) runs the Cmd's program and dies with bwrap
// (--die-with-parent); when PID 1 dies, the kernel kills every process of the namespace.
// So KillGroup on the recorded group kills everything inside, and whatever the program
// leaves behind dies when it exits, as with Host, even a process that left its group. A
// stop sends SIGTERM to the group the program runs in (bwrap's PID 1 ignores it), then,
// after the grace period, SIGKILL to PID 1, which takes the namespace with it.
//
// Prepare works as Host's does, the directories writable fixed when it starts: a warm
// process serves only jobs whose directories are known ahead, which the commands provider's
// are not (it runs every shell cold under a Sandbox, see Sandboxed).
//
// Not done: running as a separate user. bwrap's --uid needs a user namespace, in which,
// started as root, the new user maps to root outside: it changes nothing to what the
// processes may do to host files. A real separate user needs bwrap started as that user
// and workspaces it owns. Limits (MaxMemory, MaxCPU) are per process, not per action: a
// cgroup would be needed for that.
//
// The zero value is ready to use: private network, nothing hidden but what the allowlist
// leaves out. A Sandbox must not be copied after first use, and is safe for concurrent use.
type Sandbox struct {
	// Network gives the processes the host's network. Off (the default), they get a network
	// namespace of their own with only a loopback interface: neither the internet nor the
	// machine's own services (the API, a database) are reachable. Actions that need the
	// network (fetching dependencies) need it on, for now for every action of the server.
	Network bool
	// Hide lists host paths the processes must not read: the data directory, key files, the
	// directory of the workspaces. The allowlist already leaves them out; Hide is what
	// Validate and Run check: none may be at or under a path bound read-only (the system
	// paths or ReadOnly), and no Cmd.Writable directory may hold one.
	Hide []string
	// ReadOnly lists more host paths to bind read-only, e.g. a toolchain under /opt; those
	// that do not exist are skipped.
	ReadOnly []string
	// Writable lists host directories every process may write besides its Cmd's, e.g. the
	// directory a local deployment writes to. They must exist and hold no Hide path.
	Writable []string
	// MaxMemory, when positive, caps the address space of each process (RLIMIT_AS, in
	// bytes); MaxCPU, when positive, its CPU time (RLIMIT_CPU, rounded up to seconds).
	// Both are applied with prlimit(1) inside the sandbox, which must then be installed.
	MaxMemory int64
	MaxCPU    time.Duration
	// Bwrap is the bwrap program; empty means bwrap found in the runner's PATH or in
	// DefaultPath.
	Bwrap string

	mu       sync.Mutex
	masks    []string  // bwrap arguments masking what others may not read in /etc
	maskedAt time.Time // when masks was made; zero: never
}

// maskTTL is how long the masks of /etc are reused: walking /etc costs about as much as
// starting bwrap, and what it holds seldom changes.
const maskTTL = time.Minute

// etcMasks returns the bwrap arguments masking what others may not read in /etc.
func (s *Sandbox) etcMasks() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.maskedAt.IsZero() || time.Since(s.maskedAt) > maskTTL {
		s.masks, s.maskedAt = maskUnreadable("/etc"), time.Now()
	}
	return s.masks
}

var _ Executor = (*Sandbox)(nil)

// Run runs c inside the sandbox, with the contract of the package-level Run. c.Dir, the
// program and the directories of c.Writable must be visible in the sandbox and exist: a
// *StartError says which is not.
func (s *Sandbox) Run(ctx context.Context, c Cmd) (int, error) {
	return runCmd(ctx, c, s.launch)
}

// Prepare starts c inside the sandbox to wait for its work, with the contract of the
// package-level Prepare; c.Writable is fixed now.
func (s *Sandbox) Prepare(c Cmd) (*Prepared, error) {
	return prepareCmd(c, s.launch)
}

// Sandboxed reports that the processes see only the directories each Cmd lists in
// Writable: a provider must not run a Cmd prepared before it knew them.
func (s *Sandbox) Sandboxed() bool { return true }

// systemPaths are bound read-only: enough to run the system's programs, nothing of its
// data.
var systemPaths = [...]string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"}

// Validate checks the options: every Hide and ReadOnly path is absolute, and no Hide path
// is at or under a path bound read-only, where the processes could read it.
func (s *Sandbox) Validate() error {
	for _, p := range s.ReadOnly {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("sandbox read-only path %q: not absolute", p)
		}
	}
	for _, p := range s.Writable {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("sandbox writable path %q: not absolute", p)
		}
		for _, h := range s.Hide {
			for _, hp := range aliases(h) {
				for _, wp := range aliases(p) {
					if within(hp, wp) {
						return fmt.Errorf("sandbox writable path %s: it holds %s, which is hidden from actions", p, h)
					}
				}
			}
		}
	}
	ro := s.readOnly()
	for _, h := range s.Hide {
		if !filepath.IsAbs(h) {
			return fmt.Errorf("sandbox hidden path %q: not absolute", h)
		}
		for _, r := range ro {
			for _, hp := range aliases(h) {
				if within(hp, r) {
					return fmt.Errorf("sandbox hidden path %s: it is under %s, which actions see read-only; move it elsewhere (e.g. /var/lib/conveyor)", h, r)
				}
			}
		}
	}
	return nil
}

// readOnly is every host path bound read-only, its symbolic links resolved.
func (s *Sandbox) readOnly() []string {
	var out []string
	for _, p := range append(systemPaths[:], s.ReadOnly...) {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			out = append(out, r)
		} else if slices.Contains(s.ReadOnly, p) {
			out = append(out, filepath.Clean(p)) // bound if it comes to exist
		}
	}
	return out
}

// launch makes the bwrap command line that runs c.
func (s *Sandbox) launch(c Cmd, env []string) (launch, error) {
	if err := s.Validate(); err != nil {
		return launch{}, err
	}
	bwrap, err := s.bwrap()
	if err != nil {
		return launch{}, err
	}
	// Resolved as on the host: the sandbox's system is the host's, at the same paths.
	prog, err := LookPath(c.Args[0], Getenv(env, "PATH"))
	if err != nil {
		return launch{}, err
	}
	writable := make([]string, 0, len(c.Writable)+len(s.Writable))
	for _, w := range append(slices.Clone(c.Writable), s.Writable...) {
		w, err := filepath.Abs(w)
		if err != nil {
			return launch{}, err
		}
		if fi, err := os.Stat(w); err != nil {
			return launch{}, fmt.Errorf("writable directory: %w", err)
		} else if !fi.IsDir() {
			return launch{}, fmt.Errorf("writable directory %s: not a directory", w)
		}
		for _, h := range s.Hide {
			for _, hp := range aliases(h) {
				for _, wp := range aliases(w) {
					if within(hp, wp) {
						return launch{}, fmt.Errorf("writable directory %s: it holds %s, which is hidden from actions", w, h)
					}
				}
			}
		}
		if !slices.Contains(writable, w) {
			writable = append(writable, w)
		}
	}
	bound := append(s.readOnly(), writable...)
	visible := func(p string) bool {
		for _, pp := range aliases(p) {
			for _, b := range bound {
				if within(pp, b) {
					return true
				}
			}
		}
		return false
	}
	if filepath.IsAbs(prog) && !visible(prog) {
		return launch{}, fmt.Errorf("%s is not visible in the sandbox: install it under /usr, or add its directory to the sandbox's read-only paths", prog)
	}
	dir := c.Dir
	if dir != "" {
		if dir, err = filepath.Abs(dir); err != nil {
			return launch{}, err
		}
		if fi, err := os.Stat(dir); err != nil {
			return launch{}, fmt.Errorf("working directory: %w", err)
		} else if !fi.IsDir() {
			return launch{}, fmt.Errorf("working directory %s: not a directory", dir)
		}
		if dir != "/" && !visible(dir) {
			return launch{}, fmt.Errorf("working directory %s is not visible in the sandbox: list it in Writable", dir)
		}
	}

	args := []string{bwrap,
		"--unshare-pid", "--unshare-ipc", "--unshare-uts",
		"--die-with-parent", "--new-session", "--cap-drop", "ALL",
	}
	if !s.Network {
		args = append(args, "--unshare-net")
	}
	for _, p := range systemPaths {
		fi, err := os.Lstat(p)
		switch {
		case err != nil:
			continue
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return launch{}, err
			}
			args = append(args, "--symlink", target, p)
		default:
			args = append(args, "--ro-bind", p, p)
		}
	}
	args = append(args, s.etcMasks()...)
	if s.Network {
		// resolv.conf may link to a file under /run, which the sandbox leaves out.
		if r, err := filepath.EvalSymlinks("/etc/resolv.conf"); err == nil && !visible(r) {
			args = append(args, "--ro-bind", r, r)
		}
	}
	args = append(args, "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp")
	if home := Getenv(env, "HOME"); filepath.IsAbs(home) && filepath.Clean(home) != "/" && !visible(home) {
		args = append(args, "--tmpfs", filepath.Clean(home))
	}
	for _, p := range s.ReadOnly {
		args = append(args, "--ro-bind-try", p, p)
	}
	// Last, so that a directory under /tmp or $HOME is bound over the empty one.
	for _, w := range writable {
		args = append(args, "--bind", w, w)
	}
	// bwrap's root is a tmpfs holding the mount points: read-only too.
	args = append(args, "--remount-ro", "/")
	if dir != "" {
		args = append(args, "--chdir", dir)
	}
	args = append(args, "--")
	if lim := s.limits(); len(lim) > 0 {
		prlimit, err := LookPath("prlimit", DefaultPath)
		if err != nil {
			return launch{}, fmt.Errorf("limit memory or CPU time: prlimit is not installed (it comes with util-linux): %w", err)
		}
		args = append(append(append(args, prlimit), lim...), "--")
	}
	args = append(append(args, prog), c.Args[1:]...)
	return launch{path: bwrap, args: args, signal: signalSandbox}, nil
}

func (s *Sandbox) limits() []string {
	var lim []string
	if s.MaxMemory > 0 {
		lim = append(lim, "--as="+strconv.FormatInt(s.MaxMemory, 10))
	}
	if s.MaxCPU > 0 {
		secs := int64((s.MaxCPU + time.Second - 1) / time.Second)
		lim = append(lim, "--cpu="+strconv.FormatInt(secs, 10))
	}
	return lim
}

func (s *Sandbox) bwrap() (string, error) {
	if s.Bwrap != "" {
		return s.Bwrap, nil
	}
	return findBwrap()
}

// installHint says how to get bubblewrap.
const installHint = "install bubblewrap: apt-get install bubblewrap (Debian, Ubuntu), dnf install bubblewrap (Fedora), apk add bubblewrap (Alpine)"

// findBwrap looks for bwrap in the runner's PATH (the program is the runner's choice, not an
// action's), then in DefaultPath.
func findBwrap() (string, error) {
	if p, err := exec.LookPath("bwrap"); err == nil {
		return p, nil
	}
	if p, err := LookPath("bwrap", DefaultPath); err == nil {
		return p, nil
	}
	return "", errors.New("bwrap is not installed: " + installHint)
}

// SandboxAvailable reports whether Sandbox can run here: bwrap is installed and can create
// the namespaces the sandbox uses. The error says what is missing and how to install it.
func SandboxAvailable() error {
	bwrap, err := findBwrap()
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bwrap, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
		"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
		"--die-with-parent", "--new-session", "--cap-drop", "ALL", "--", "true")
	cmd.Env = []string{"PATH=" + DefaultPath}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sandbox: %s does not work here (%v: %s): it needs user namespaces when not run as root (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0), or %s",
			bwrap, err, strings.TrimSpace(string(out)), installHint)
	}
	return nil
}

// signalSandbox signals what bwrap, pid, runs. SIGTERM goes to the group of the program
// (the group of bwrap's PID 1, its only child), so that it can stop cleanly; SIGKILL to
// PID 1, whose death kills the whole namespace, then bwrap exits. Until PID 1 is there
// (the first milliseconds), bwrap itself is signalled: its death kills what it started.
func signalSandbox(pid int, sig syscall.Signal) {
	if init := childOf(pid); init > 0 {
		// After --new-session, PID 1 leads a group of its own, whose id is its pid;
		// before, there is no such group yet (ESRCH).
		target := -init
		if sig == syscall.SIGKILL {
			target = init
		}
		if syscall.Kill(target, sig) == nil {
			return
		}
	}
	_ = syscall.Kill(pid, sig)
}

// childOf returns a child of process pid, or 0. Only pid's children have it as parent, and
// pid, unreaped, cannot be another process meanwhile.
func childOf(pid int) int {
	d, err := os.Open("/proc")
	if err != nil {
		return 0
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return 0
	}
	for _, name := range names {
		if child, err := strconv.Atoi(name); err == nil && ppid(child) == pid {
			return child
		}
	}
	return 0
}

// ppid returns the parent of process pid (field 4 of /proc/PID/stat), or 0.
func ppid(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// maskUnreadable returns the bwrap arguments that mask what, under root, other users may
// not read: an empty read-only directory for a directory, /dev/null (which the sandbox
// cannot open: it is bound without device access) for a file.
func maskUnreadable(root string) []string {
	var args []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if p == root {
			return nil
		}
		if d == nil {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil // its target is masked or not where it is
		}
		fi, ierr := d.Info()
		if ierr != nil {
			return nil
		}
		perm := fi.Mode().Perm()
		switch {
		case d.IsDir() && perm&0o005 != 0o005:
			args = append(args, "--tmpfs", p, "--remount-ro", p)
			return filepath.SkipDir
		case d.IsDir():
			return nil
		case perm&0o004 == 0:
			args = append(args, "--ro-bind", "/dev/null", p)
		}
		return nil
	})
	return args
}

// within reports whether path p is dir or under it; both are clean and absolute.
func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// aliases returns p, absolute and clean, and, when different, p with its symbolic links
// resolved (those of its longest existing prefix, for a path that does not exist yet).
func aliases(p string) []string {
	p, err := filepath.Abs(p)
	if err != nil {
		return []string{filepath.Clean(p)}
	}
	rest := ""
	for cur := p; ; {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			if r = filepath.Join(r, rest); r != p {
				return []string{p, r}
			}
			return []string{p}
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return []string{p}
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}
