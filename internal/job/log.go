package job

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/conveyorci/conveyor/internal/store"
)

// Log chunks are appended to the store at least this often while output comes, or sooner
// when this much is buffered; a crash loses at most the last second.
const (
	logFlushEvery = time.Second
	logChunkSize  = 64 << 10
)

// jobLog buffers a job's output and appends it to the store in chunks while the job runs.
// What is left when it ends is handed to the reporter, to commit with the result: a quick
// job writes its log in no transaction of its own.
type jobLog struct {
	p   *Pool
	j   *store.Job
	id  string
	tee func(jobID string, line []byte)

	mu      sync.Mutex
	buf     []byte
	line    []byte // for tee: the current incomplete line
	written int64
	capped  bool

	kick chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
}

func newJobLog(p *Pool, j *store.Job) *jobLog {
	l := &jobLog{p: p, j: j, id: j.ID, tee: p.opts.Tee, kick: make(chan struct{}, 1), done: make(chan struct{})}
	l.wg.Add(1)
	go l.flusher()
	return l
}

// Write buffers b; it never fails (past the cap, output is dropped with a note).
func (l *jobLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(b)
	if l.capped {
		return n, nil
	}
	if room := l.p.opts.MaxLog - l.written; int64(len(b)) > room {
		b = b[:max(room, 0)]
		l.capped = true
	}
	l.written += int64(len(b))
	l.buf = append(l.buf, b...)
	if l.capped {
		l.buf = append(l.buf, fmt.Sprintf("\n[conveyor: the log reached its cap of %d bytes; the rest of the output is dropped]\n", l.p.opts.MaxLog)...)
	}
	if l.tee != nil {
		l.teeLines(b)
	}
	if len(l.buf) >= logChunkSize {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	return n, nil
}

func (l *jobLog) teeLines(b []byte) {
	l.line = append(l.line, b...)
	for {
		i := bytes.IndexByte(l.line, '\n')
		if i < 0 {
			return
		}
		l.tee(l.id, l.line[:i])
		l.line = l.line[i+1:]
	}
}

func (l *jobLog) flusher() {
	defer l.wg.Done()
	t := time.NewTicker(logFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-t.C:
		case <-l.kick:
		}
		l.flush()
	}
}

// flush appends what is buffered as one chunk.
func (l *jobLog) flush() {
	l.mu.Lock()
	chunk := l.buf
	l.buf = nil
	l.mu.Unlock()
	if len(chunk) == 0 {
		return
	}
	if err := l.p.b.AppendLog(context.Background(), l.j, chunk); err != nil {
		l.p.log.Warn("append job log", "job", l.id, "err", err)
	}
}

// close stops the flusher and returns what is still buffered.
func (l *jobLog) close() []byte {
	close(l.done)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tee != nil && len(l.line) > 0 {
		l.tee(l.id, l.line)
		l.line = nil
	}
	rest := l.buf
	l.buf = nil
	return rest
}
