package sqlite

import (
	"sync"

	"github.com/conveyorci/conveyor/internal/engine"
)

// execCache keeps decoded executions by id and revision, so the engine loop, which reads
// and writes the same execution on every event, does not decode its document each time
// (for an execution of 100 actions, decoding costs more than the rest of a step). Only
// committed states enter it: those a committed transaction wrote, and those a View read.
// A row's rev column counts its writes, so an entry is used only while it is the row's
// current state, whoever wrote the row.
type execCache struct {
	mu sync.Mutex
	m  map[string]cachedExec
}

type cachedExec struct {
	rev  int64
	exec *engine.Execution
}

// cacheCap bounds the cache; past it the cache starts over (executions being worked on
// come back at once).
const cacheCap = 4096

// get returns a copy of the execution at revision rev, if cached.
func (c *execCache) get(id string, rev int64) *engine.Execution {
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if !ok || e.rev != rev {
		return nil
	}
	return e.exec.Clone()
}

// peek returns the cached execution at revision rev itself, not a copy, for reading only.
func (c *execCache) peek(id string, rev int64) *engine.Execution {
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if !ok || e.rev != rev {
		return nil
	}
	return e.exec
}

// put records a committed state; the cache owns e from now on.
func (c *execCache) put(id string, rev int64, e *engine.Execution) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= cacheCap {
		c.m = make(map[string]cachedExec)
	}
	if old, ok := c.m[id]; ok && old.rev > rev {
		return
	}
	c.m[id] = cachedExec{rev: rev, exec: e}
}
