package local

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sync"

	"github.com/conveyorci/conveyor/internal/store"
)

// LogDir keeps each job attempt's output in a file of its own.
type LogDir struct {
	Dir string
	// Tee, when set, also receives the output line by line.
	Tee func(jobID string, line []byte)
}

// Path is the file holding a job's output.
func (d *LogDir) Path(jobID string) string {
	return filepath.Join(d.Dir, url.PathEscape(jobID)+".log")
}

// Open creates (truncating) the job's log file.
func (d *LogDir) Open(j *store.Job) (io.WriteCloser, error) {
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	f, err := os.OpenFile(d.Path(j.ID), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create log file: %w", err)
	}
	if d.Tee == nil {
		return f, nil
	}
	return &teeWriter{f: f, id: j.ID, tee: d.Tee}, nil
}

// Tail returns at most the last n lines of a job's log.
func (d *LogDir) Tail(jobID string, n int) ([]byte, error) {
	b, err := os.ReadFile(d.Path(jobID))
	if err != nil {
		return nil, err
	}
	b = bytes.TrimRight(b, "\n")
	for i, cut := len(b)-1, 0; i >= 0; i-- {
		if b[i] == '\n' {
			if cut++; cut == n {
				return b[i+1:], nil
			}
		}
	}
	return b, nil
}

// teeWriter writes to the file and hands complete lines to tee.
type teeWriter struct {
	mu   sync.Mutex
	f    *os.File
	id   string
	tee  func(string, []byte)
	line []byte
}

func (t *teeWriter) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, err := t.f.Write(b)
	t.line = append(t.line, b[:n]...)
	for {
		i := bytes.IndexByte(t.line, '\n')
		if i < 0 {
			break
		}
		t.tee(t.id, t.line[:i])
		t.line = t.line[i+1:]
	}
	return n, err
}

func (t *teeWriter) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.line) > 0 {
		t.tee(t.id, t.line)
		t.line = nil
	}
	return t.f.Close()
}
