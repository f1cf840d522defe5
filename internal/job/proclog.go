package job

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/conveyorci/conveyor/internal/run"
)

// ProcessLog records the process groups of the actions a process runs, in a file of its data
// directory, so that when it starts again after a crash it finds and kills whatever the lost
// actions left running (run.KillGroup checks each group's start time: a reused pid is never
// killed). Recording a group is one write to a file opened in append mode, no transaction and
// no fsync: the record survives the crash of the process, which is what it is for (after a
// crash of the machine there is nothing left to kill). The file is rewritten with the live
// groups alone when it grows.
//
// It is safe for concurrent use.
type ProcessLog struct {
	path string

	mu   sync.Mutex
	f    *os.File
	size int64
	live map[procID]bool
}

type procID struct {
	pgid  int
	start uint64
}

// compactAt is the size past which the file is rewritten with the live groups only: small,
// since after a crash each group it lists costs a look through /proc (about 400 here).
const compactAt = 4 << 10

// OpenProcessLog opens (creating it) the process log at path. Call KillRecorded first when
// the file may hold groups of a previous incarnation.
func OpenProcessLog(path string) (*ProcessLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open process log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open process log: %w", err)
	}
	return &ProcessLog{path: path, f: f, size: fi.Size(), live: map[procID]bool{}}, nil
}

// KillRecorded kills every group the file records (those of a previous incarnation: call it
// before this one runs anything) and empties the file. It returns how many groups it read.
func (l *ProcessLog) KillRecorded() (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	data, err := os.ReadFile(l.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("read process log: %w", err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		id, ok := parseProc(line)
		if !ok {
			continue // a line cut short by the crash, or empty
		}
		n++
		if err := run.KillGroup(id.pgid, id.start); err != nil {
			return n, fmt.Errorf("kill process group %d left by a previous run: %w", id.pgid, err)
		}
	}
	if err := l.f.Truncate(0); err != nil {
		return n, fmt.Errorf("empty process log: %w", err)
	}
	l.size = 0
	return n, nil
}

func parseProc(line string) (procID, bool) {
	a, b, ok := strings.Cut(strings.TrimSpace(line), " ")
	if !ok {
		return procID{}, false
	}
	pgid, err1 := strconv.Atoi(a)
	start, err2 := strconv.ParseUint(b, 10, 64)
	if err1 != nil || err2 != nil || pgid <= 1 {
		return procID{}, false
	}
	return procID{pgid, start}, true
}

// Add records a running group.
func (l *ProcessLog) Add(pgid int, start uint64) error {
	line := strconv.Itoa(pgid) + " " + strconv.FormatUint(start, 10) + "\n"
	l.mu.Lock()
	defer l.mu.Unlock()
	l.live[procID{pgid, start}] = true
	n, err := l.f.WriteString(line)
	l.size += int64(n)
	if err != nil {
		return fmt.Errorf("record process group %d: %w", pgid, err)
	}
	return nil
}

// Remove forgets a group whose action ended; the file is rewritten when it has grown.
func (l *ProcessLog) Remove(pgid int, start uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.live, procID{pgid, start})
	if l.size < compactAt {
		return
	}
	// Written aside and renamed over: a crash in between leaves the old file, complete.
	var b strings.Builder
	for id := range l.live {
		fmt.Fprintf(&b, "%d %d\n", id.pgid, id.start)
	}
	tmp := filepath.Join(filepath.Dir(l.path), "."+filepath.Base(l.path)+".tmp")
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return // the file keeps growing; nothing is lost
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		os.Remove(tmp)
		return
	}
	if err := os.Rename(tmp, l.path); err != nil {
		f.Close()
		os.Remove(tmp)
		return
	}
	l.f.Close()
	l.f, l.size = f, int64(b.Len())
}

// Close closes the file.
func (l *ProcessLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// recorder returns the Started callback of a job's workspace that records each group in l,
// and a function that forgets them all once the job's provider has returned.
func (l *ProcessLog) recorder() (started func(pgid int, start uint64) error, done func()) {
	var mu sync.Mutex
	var mine []procID
	started = func(pgid int, start uint64) error {
		mu.Lock()
		mine = append(mine, procID{pgid, start})
		mu.Unlock()
		return l.Add(pgid, start)
	}
	done = func() {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range mine {
			l.Remove(id.pgid, id.start)
		}
	}
	return started, done
}
