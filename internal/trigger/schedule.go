package trigger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/pipeline"
)

// Scheduler fires the pipelines' schedule triggers at their cron times in their time zones
// (a time a DST change skips does not fire; one it repeats fires once). Each schedule's last
// fire time is kept in its lease row (key "schedule:PIPELINE:INDEX"), committed with the
// start, so that fires missed while no server ran it are caught up by exactly one execution
// (at the latest missed time), and a new schedule fires first at its next time, never for the
// past. Starts use Key "schedule:PIPELINE:INDEX:FIRE-TIME" (RFC 3339, UTC): a fire reported
// twice starts one execution.
type Scheduler struct {
	opts Options
}

// NewScheduler returns a scheduler; Run runs it.
func NewScheduler(opts Options) *Scheduler {
	opts.defaults()
	return &Scheduler{opts: opts}
}

// schedule is one schedule trigger this scheduler owns.
type schedule struct {
	key      string // the lease key
	pipeline string
	index    int
	expr     string
	tz       string
	cron     *cron
	loc      *time.Location
	last     time.Time // the last fire (or the baseline)
	next     time.Time // zero: never
}

func (s *schedule) same(o *schedule) bool { return s.expr == o.expr && s.tz == o.tz }

// schedules returns the schedule triggers of the pipelines, by lease key.
func (sc *Scheduler) schedules(pipes []*pipeline.Pipeline) map[string]*schedule {
	out := map[string]*schedule{}
	for _, p := range pipes {
		for i, t := range p.Triggers {
			if t.Schedule == nil {
				continue
			}
			c, err := parseCron(t.Schedule.Cron)
			if err != nil {
				sc.opts.Logger.Warn("schedule not run", "pipeline", p.Name, "trigger", i, "err", err)
				continue
			}
			tz := t.Schedule.TimeZone
			if tz == "" {
				tz = "UTC"
			}
			loc, err := time.LoadLocation(tz)
			if err != nil {
				sc.opts.Logger.Warn("schedule not run", "pipeline", p.Name, "trigger", i, "err", err)
				continue
			}
			key := "schedule:" + p.Name + ":" + strconv.Itoa(i)
			out[key] = &schedule{key: key, pipeline: p.Name, index: i, expr: t.Schedule.Cron, tz: tz, cron: c, loc: loc}
		}
	}
	return out
}

// Run fires schedules until ctx is done, then releases its leases.
func (sc *Scheduler) Run(ctx context.Context) error {
	o := &sc.opts
	owned := map[string]*schedule{}
	defer func() {
		keys := make([]string, 0, len(owned))
		for k := range owned {
			keys = append(keys, k)
		}
		o.release(context.WithoutCancel(ctx), keys)
	}()
	var nextReload time.Time
	for {
		now := o.Now()
		if !now.Before(nextReload) {
			if err := sc.reload(ctx, owned); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				o.Logger.Warn("reload schedules", "err", err)
			}
			nextReload = now.Add(o.Reload)
		}
		wake := nextReload
		for _, s := range owned {
			if s.next.IsZero() {
				continue
			}
			if !now.Before(s.next) {
				if err := sc.fire(ctx, s, now); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					o.Logger.Warn("schedule fire failed; retried at the next reload", "pipeline", s.pipeline, "trigger", s.index, "err", err)
					continue
				}
			}
			if !s.next.IsZero() && s.next.Before(wake) {
				wake = s.next
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-o.Until(wake):
		}
	}
}

// reload reads the schedules again and takes or renews their leases. A schedule taken with
// no fire recorded gets now as its baseline.
func (sc *Scheduler) reload(ctx context.Context, owned map[string]*schedule) error {
	o := &sc.opts
	pipes, err := o.pipelines(ctx)
	if err != nil {
		return err
	}
	want := sc.schedules(pipes)
	held, err := renew(ctx, o, want, owned)
	if err != nil {
		return err
	}
	now := o.Now()
	for k, state := range held {
		if owned[k] != nil {
			continue
		}
		s := want[k]
		if last, err := time.Parse(time.RFC3339, state); err == nil {
			s.last = last
		} else {
			s.last = now // a new schedule: it fires from now on, not for the past
			if err := o.Store.Update(ctx, o.setState(ctx, k, now.UTC().Format(time.RFC3339))); err != nil {
				return err
			}
		}
		s.next = s.cron.next(s.last, s.loc)
		owned[k] = s
	}
	return nil
}

// fire starts the execution of the latest fire time at or before now (one run for however
// many were missed), records it, and computes the next.
func (sc *Scheduler) fire(ctx context.Context, s *schedule, now time.Time) error {
	at := s.next
	for n := s.cron.next(at, s.loc); !n.IsZero() && !n.After(now); n = s.cron.next(at, s.loc) {
		at = n
	}
	fireKey := at.UTC().Format(time.RFC3339)
	detail := s.expr
	if s.tz != "UTC" {
		detail += " (" + s.tz + ")"
	}
	c := Cause{Pipeline: s.pipeline, Trigger: engine.Trigger{Type: "Schedule", Detail: detail},
		Key: fmt.Sprintf("schedule:%s:%d:%s", s.pipeline, s.index, fireKey)}
	e, started, err := Start(loop.WithTx(ctx, sc.opts.setState(ctx, s.key, fireKey)), sc.opts.Loop, c)
	if errors.Is(err, engine.ErrRefused) {
		sc.opts.Logger.Warn("schedule: execution refused", "pipeline", s.pipeline, "trigger", s.index, "err", err)
		err = sc.opts.Store.Update(ctx, sc.opts.setState(ctx, s.key, fireKey))
	}
	if err != nil {
		return err
	}
	if started {
		sc.opts.Logger.Info("schedule fired", "pipeline", s.pipeline, "trigger", s.index, "at", fireKey, "execution", e.ID)
	}
	s.last, s.next = at, s.cron.next(at, s.loc)
	return nil
}
