package run

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// KillGroup kills, with SIGKILL, what is left of the process group pgid whose leader started at
// startTime, as Cmd.Started reported them: after a crash of the supervisor, what a lost action
// left running. It is idempotent and returns nil when nothing of that group is left.
//
// The start time (in clock ticks since boot, field 22 of /proc/PID/stat) guards against pid
// reuse. Linux does not reuse a pid while a process or a process group still holds it, so:
//   - when the leader lives (a zombie counts) with that start time, the group is the one
//     recorded and is killed;
//   - when a process with another start time holds the pid, the recorded group died out
//     before the pid was reused: nothing of it is left, and nothing is killed;
//   - when the leader is gone (the usual case: Pdeathsig killed it with the supervisor), its
//     remaining members still hold the group id. They are killed only if every one of them
//     started at or after startTime; a member older than the recorded leader proves that the
//     group is not the recorded one. The one case this cannot tell apart is a group that died
//     out entirely, whose pid was then reused, after the pid space wrapped around, by a new
//     group leader that exited in turn leaving members: unlikely enough to accept.
func KillGroup(pgid int, startTime uint64) error {
	if pgid <= 1 {
		// kill(-1) is every process, kill(0) the caller's own group.
		return fmt.Errorf("kill process group %d: not a process group id", pgid)
	}
	leader, err := readStat(pgid)
	switch {
	case err == nil && leader.start != startTime:
		return nil
	case err == nil:
		return killGroup(pgid)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("kill process group %d: %w", pgid, err)
	}
	members, err := groupMembers(pgid)
	if err != nil {
		return fmt.Errorf("kill process group %d: %w", pgid, err)
	}
	if len(members) == 0 {
		return nil
	}
	for _, m := range members {
		if m.start < startTime {
			return nil
		}
	}
	return killGroup(pgid)
}

// killGroup sends the group SIGKILL and returns once none of it is left: SIGKILL is sent at
// once but a process takes a moment to die (longer on a loaded machine), and what comes next
// (a new attempt of the action) must not run beside it.
func killGroup(pgid int) error {
	err := syscall.Kill(-pgid, syscall.SIGKILL)
	if err != nil && err != syscall.ESRCH {
		return fmt.Errorf("kill process group %d: %w", pgid, err)
	}
	deadline := time.Now().Add(killWait)
	for delay := time.Millisecond; groupLive(pgid); delay = min(2*delay, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("kill process group %d: still alive %v after SIGKILL", pgid, killWait)
		}
		time.Sleep(delay)
	}
	return nil
}

// killWait bounds how long killGroup waits for a killed group to die.
const killWait = 10 * time.Second

// groupLive reports whether the leader of group pgid or any member is alive (zombies are dead).
func groupLive(pgid int) bool {
	if st, err := readStat(pgid); err == nil && st.pgrp == pgid && st.state != 'Z' && st.state != 'X' {
		return true
	}
	return groupAlive(pgid)
}

// StartTime returns the start time of process pid, in clock ticks since boot (field 22 of
// /proc/PID/stat), the value Cmd.Started reports.
func StartTime(pid int) (uint64, error) {
	st, err := readStat(pid)
	return st.start, err
}

// stat is what Run and KillGroup need of /proc/PID/stat.
type stat struct {
	pid   int
	state byte // R, S, D, Z, ...
	pgrp  int
	start uint64
}

func readStat(pid int) (stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, err
	}
	st, err := parseStat(string(b))
	if err != nil {
		return stat{}, fmt.Errorf("read /proc/%d/stat: %w", pid, err)
	}
	return st, nil
}

// parseStat parses a /proc/PID/stat line: "pid (comm) state ppid pgrp ... starttime ...",
// where comm may hold spaces and parentheses, so fields are counted from its last ')'.
func parseStat(s string) (stat, error) {
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return stat{}, errors.New("malformed stat line")
	}
	f := strings.Fields(s[end+1:]) // f[0] is field 3 (state), f[k] is field k+3
	if len(f) < 20 || len(f[0]) != 1 {
		return stat{}, errors.New("malformed stat line")
	}
	pid, err1 := strconv.Atoi(strings.TrimSpace(s[:open]))
	pgrp, err2 := strconv.Atoi(f[2])
	start, err3 := strconv.ParseUint(f[19], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return stat{}, fmt.Errorf("malformed stat line: %w", err)
	}
	return stat{pid: pid, state: f[0][0], pgrp: pgrp, start: start}, nil
}

// groupMembers lists the live processes (zombies excluded) of group pgid, other than its
// leader.
func groupMembers(pgid int) ([]stat, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, err
	}
	var members []stat
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid == pgid {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.pgrp != pgid || st.state == 'Z' || st.state == 'X' {
			continue // gone meanwhile, or not a member
		}
		members = append(members, st)
	}
	return members, nil
}

// groupAlive reports whether group pgid has a live member other than its leader.
func groupAlive(pgid int) bool {
	members, err := groupMembers(pgid)
	return err == nil && len(members) > 0
}
