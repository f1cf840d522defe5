package job_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/job"
)

// startGroup starts `sleep 60` as the leader of a process group of its own and returns its
// pid and start time (field 22 of /proc/PID/stat, as run.KillGroup reads it).
func startGroup(t *testing.T) (int, uint64) {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait() // reap it, so a killed one does not linger as a zombie
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	start, err := strconv.ParseUint(strings.Fields(rest)[19], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid, start
}

func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// TestProcessLog: what one incarnation records, the next kills; a group recorded with
// another start time (its pid reused since) is left alone; compaction keeps the live groups.
func TestProcessLog(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "processes")
	log, err := job.OpenProcessLog(path)
	if err != nil {
		t.Fatal(err)
	}
	lost, lostStart := startGroup(t)
	other, otherStart := startGroup(t)
	if err := log.Add(lost, lostStart); err != nil {
		t.Fatal(err)
	}
	if err := log.Add(other, otherStart+1); err != nil { // as if other's pid had been reused
		t.Fatal(err)
	}
	// Many actions come and go: the file is compacted and keeps the two live groups.
	for i := range 5000 {
		log.Add(100000+i, 1)
		log.Remove(100000+i, 1)
	}
	if fi, _ := os.Stat(path); fi.Size() > 5<<10 {
		t.Errorf("process log is %d bytes after 5,000 actions: not compacted", fi.Size())
	}
	log.Close() // the "crash": the next incarnation opens the same file

	again, err := job.OpenProcessLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	n, err := again.KillRecorded()
	if err != nil || n < 2 || n > 500 {
		t.Fatalf("KillRecorded: %d groups, %v; want the 2 live ones and at most a compaction's worth of ended ones", n, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for running(lost) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if running(lost) {
		t.Errorf("the recorded group %d still runs", lost)
	}
	if !running(other) {
		t.Errorf("group %d was killed, though recorded with another start time (a reused pid)", other)
	}
	if fi, _ := os.Stat(path); fi.Size() != 0 {
		t.Errorf("process log holds %d bytes after KillRecorded", fi.Size())
	}
}
