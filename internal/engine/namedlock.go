package engine

import (
	"fmt"
	"slices"

	"github.com/conveyorci/conveyor/internal/pipeline"
)

// Named locks (`lock:` on a stage or an action) are global: one execution of any pipeline
// holds one at a time, the others wait in order. Their rows come in State.NamedLocks and the
// changed ones go out in Result.NamedLocks; a waiter learns it got the lock through
// EvLockGrant, delivered by the loop like any event between executions.

// limits refuses a start past the pipeline's maxConcurrency or maxQueued.
func (s *stepper) limits() error {
	switch {
	case s.p.Mode() == pipeline.Parallel && s.p.MaxConcurrency > 0 && s.active >= s.p.MaxConcurrency:
		return fmt.Errorf("%w: pipeline %s already has %d executions in progress (maxConcurrency %d); wait for one to finish or raise maxConcurrency",
			ErrRefused, s.p.Name, s.active, s.p.MaxConcurrency)
	case s.p.Mode() == pipeline.Queued && s.p.MaxQueued > 0:
		queued := 0
		for _, l := range s.orig {
			queued += len(l.Waiting)
		}
		if queued >= s.p.MaxQueued {
			return fmt.Errorf("%w: pipeline %s already has %d executions queued (maxQueued %d); wait for the queue to shrink or raise maxQueued",
				ErrRefused, s.p.Name, queued, s.p.MaxQueued)
		}
	}
	return nil
}

// named returns a writable copy of the named lock, recorded as changed.
func (s *stepper) named(name string) *NamedLock {
	if l, ok := s.nlocks[name]; ok {
		return l
	}
	l := &NamedLock{Name: name}
	if o := s.namedOrig[name]; o != nil {
		c := *o
		c.Waiting = slices.Clone(o.Waiting)
		l = &c
	}
	s.nlocks[name] = l
	return l
}

func (s *stepper) peekNamed(name string) *NamedLock {
	if l, ok := s.nlocks[name]; ok {
		return l
	}
	return s.namedOrig[name]
}

// user names stage i (j < 0) or action j of stage i of the execution as a lock user.
func (s *stepper) user(i, j int) LockUser {
	u := LockUser{Execution: s.e.ID, Pipeline: s.e.Pipeline, Stage: s.e.Stages[i].Name}
	if j >= 0 {
		u.Action = s.e.Stages[i].Actions[j].Name
	}
	return u
}

// acquire reports whether u holds the named lock, taking it when it is free; otherwise u
// waits at the end of its queue (once).
func (s *stepper) acquire(name string, u LockUser) bool {
	l := s.peekNamed(name)
	switch {
	case l != nil && l.Holder == u:
		return true
	case l == nil || (l.Holder == LockUser{} && len(l.Waiting) == 0):
		s.named(name).Holder = u
		return true
	case slices.Contains(l.Waiting, u):
		return false
	}
	w := s.named(name)
	w.Waiting = append(w.Waiting, u)
	return false
}

// releaseNamed gives up u's hold on the named lock, handing it to the first waiter, or u's
// place in its queue. It changes nothing when u neither holds nor waits.
func (s *stepper) releaseNamed(name string, u LockUser) {
	l := s.peekNamed(name)
	switch {
	case l == nil:
	case l.Holder == u:
		w := s.named(name)
		w.Holder = LockUser{}
		if len(w.Waiting) > 0 {
			w.Holder = w.Waiting[0]
			w.Waiting = slices.Delete(w.Waiting, 0, 1)
			h := w.Holder
			s.cmds = append(s.cmds, Command{Type: CmdEmit, ExecutionID: h.Execution, Stage: h.Stage, Action: h.Action,
				Event: &Event{Type: EvLockGrant, ExecutionID: h.Execution, Pipeline: h.Pipeline, Stage: h.Stage, Action: h.Action, Lock: name, At: s.now}})
		}
	case slices.Contains(l.Waiting, u):
		w := s.named(name)
		w.Waiting = slices.DeleteFunc(w.Waiting, func(x LockUser) bool { return x == u })
	}
}

// takeStageLock takes stage i's named lock as the execution enters it; when it is busy the
// stage waits for it (Waiting, WaitingFor) and false is returned.
func (s *stepper) takeStageLock(i int) bool {
	name := s.p.Stages[i].Lock
	st := &s.e.Stages[i]
	if name == "" || s.acquire(name, s.user(i, -1)) {
		st.WaitingFor = ""
		return true
	}
	s.changed = true
	st.Status, st.WaitingFor = StageWaiting, "lock "+name
	return false
}

// releaseStageLock gives up stage i's named lock (or the place in its queue) as the
// execution leaves the stage.
func (s *stepper) releaseStageLock(i int) {
	if name := s.p.Stages[i].Lock; name != "" {
		s.releaseNamed(name, s.user(i, -1))
	}
	s.e.Stages[i].WaitingFor = ""
}

// takeActionLock takes action j's named lock before it starts; when it is busy the action
// waits for it (InProgress without a job, WaitingFor) and false is returned.
func (s *stepper) takeActionLock(i, j int) bool {
	name := s.p.Stages[i].Actions[j].Lock
	a := &s.e.Stages[i].Actions[j]
	if name == "" || s.acquire(name, s.user(i, j)) {
		a.WaitingFor = ""
		return true
	}
	s.changed = true
	a.Status, a.WaitingFor, a.JobID = ActionInProgress, "lock "+name, ""
	return false
}

// releaseActionLocks gives up the named locks of the actions of stage i that ended.
func (s *stepper) releaseActionLocks(i int) {
	for j := range s.e.Stages[i].Actions {
		a := &s.e.Stages[i].Actions[j]
		name := s.p.Stages[i].Actions[j].Lock
		if name == "" || a.Status == ActionInProgress {
			continue
		}
		s.releaseNamed(name, s.user(i, j))
		a.WaitingFor = ""
	}
}

// lockGrant lets a stage or an action that waited for a named lock go on; a grant it can no
// longer use passes the lock on, and a redelivered one changes nothing.
func (s *stepper) lockGrant() {
	i, j := -1, -1
	if s.ev.Action == "" {
		i = slices.IndexFunc(s.e.Stages, func(st Stage) bool { return st.Name == s.ev.Stage })
	} else {
		i, j = s.find(s.ev.Stage, s.ev.Action)
	}
	if i < 0 || s.ev.Lock == "" {
		return
	}
	u := s.user(i, j)
	if l := s.peekNamed(s.ev.Lock); l == nil || l.Holder != u {
		return // stale: the lock went on meanwhile
	}
	want := "lock " + s.ev.Lock
	st := &s.e.Stages[i]
	if j < 0 {
		switch {
		case s.e.Status == ExecInProgress && st.Status == StageWaiting && st.WaitingFor == want:
			s.changed = true
			st.Status, st.WaitingFor = StageInProgress, ""
			s.advance(i)
		case st.Status == StageInProgress:
			// A redelivered grant: the stage runs with the lock already.
		default:
			s.releaseNamed(s.ev.Lock, u)
		}
		return
	}
	switch a := &st.Actions[j]; {
	case s.e.Status == ExecInProgress && a.Status == ActionInProgress && a.WaitingFor == want:
		s.changed = true
		a.WaitingFor = ""
		s.startAction(i, j)
		s.advance(i)
	case a.Status == ActionInProgress && a.WaitingFor == "":
		// A redelivered grant: the action runs with the lock already.
	default:
		s.releaseNamed(s.ev.Lock, u)
	}
}
