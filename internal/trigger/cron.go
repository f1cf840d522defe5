package trigger

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// cron is a parsed five-field cron expression: the allowed values of each field as bits.
type cron struct {
	minute, hour, dom, month, dow uint64
	domStar, dowStar              bool
}

var cronMacros = map[string]string{
	"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
	"@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}

var monthNames = []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// parseCron parses what pipeline.Parse accepts: five fields (lists, ranges, steps, names) or
// a macro.
func parseCron(expr string) (*cron, error) {
	expr = strings.TrimSpace(expr)
	if m, ok := cronMacros[strings.ToLower(expr)]; ok {
		expr = m
	}
	f := strings.Fields(expr)
	if len(f) != 5 {
		return nil, fmt.Errorf("cron %q: %d fields, not 5", expr, len(f))
	}
	c := &cron{domStar: f[2] == "*", dowStar: f[4] == "*"}
	var err error
	for i, spec := range []struct {
		dst    *uint64
		lo, hi int
		names  []string
	}{{&c.minute, 0, 59, nil}, {&c.hour, 0, 23, nil}, {&c.dom, 1, 31, nil}, {&c.month, 1, 12, monthNames}, {&c.dow, 0, 7, dayNames}} {
		if *spec.dst, err = cronField(f[i], spec.lo, spec.hi, spec.names); err != nil {
			return nil, fmt.Errorf("cron %q: %w", expr, err)
		}
	}
	if c.dow&(1<<7) != 0 { // 7 is Sunday too
		c.dow |= 1
	}
	return c, nil
}

func cronField(field string, lo, hi int, names []string) (uint64, error) {
	var bits uint64
	value := func(s string) (int, error) {
		for i, n := range names {
			if strings.EqualFold(s, n) {
				return lo + i, nil
			}
		}
		v, err := strconv.Atoi(s)
		if err != nil || v < lo || v > hi {
			return 0, fmt.Errorf("%q is not a value from %d to %d", s, lo, hi)
		}
		return v, nil
	}
	for _, part := range strings.Split(field, ",") {
		rng, stepS, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			var err error
			if step, err = strconv.Atoi(stepS); err != nil || step < 1 {
				return 0, fmt.Errorf("step %q", stepS)
			}
		}
		from, to := lo, hi
		if rng != "*" {
			a, b, isRange := strings.Cut(rng, "-")
			var err error
			if from, err = value(a); err != nil {
				return 0, err
			}
			to = from
			if isRange {
				if to, err = value(b); err != nil {
					return 0, err
				}
			} else if hasStep {
				to = hi
			}
		}
		for v := from; v <= to; v += step {
			bits |= 1 << v
		}
	}
	return bits, nil
}

// next returns the first fire time strictly after t, in loc, or the zero time when there is
// none within five years. It walks real instants minute by minute (skipping hours and days
// that cannot match), so a wall-clock time that a DST change skips never fires, and one that
// occurs twice fires only at its first occurrence.
func (c *cron) next(t time.Time, loc *time.Location) time.Time {
	t = t.In(loc).Truncate(time.Minute).Add(time.Minute)
	end := t.AddDate(5, 0, 0)
	for t.Before(end) {
		w := t.In(loc)
		switch {
		case c.month&(1<<int(w.Month())) == 0 || !c.dayMatches(w):
			// Jump to the next local midnight (at least an hour on, whatever DST does).
			y, m, d := w.Date()
			nt := time.Date(y, m, d+1, 0, 0, 0, 0, loc)
			if !nt.After(t) {
				nt = t.Add(time.Hour)
			}
			t = nt
		case c.hour&(1<<w.Hour()) == 0:
			t = t.Add(time.Duration(60-w.Minute()) * time.Minute)
		case c.minute&(1<<w.Minute()) == 0:
			t = t.Add(time.Minute)
		case repeated(t, loc):
			t = t.Add(time.Minute)
		default:
			return t
		}
	}
	return time.Time{}
}

func (c *cron) dayMatches(w time.Time) bool {
	dom, dow := c.dom&(1<<w.Day()) != 0, c.dow&(1<<int(w.Weekday())) != 0
	if !c.domStar && !c.dowStar {
		return dom || dow
	}
	return dom && dow
}

// repeated reports whether the wall-clock minute of t occurred already at an earlier instant
// (the second pass through an hour a DST change repeats).
func repeated(t time.Time, loc *time.Location) bool {
	w := t.In(loc)
	for _, d := range []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour} {
		e := t.Add(-d).In(loc)
		if e.Hour() == w.Hour() && e.Minute() == w.Minute() && e.Day() == w.Day() {
			return true
		}
	}
	return false
}
