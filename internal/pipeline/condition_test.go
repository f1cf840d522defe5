package pipeline

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestCronMatches(t *testing.T) {
	t.Parallel()
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	mon0930 := time.Date(2026, 11, 23, 9, 30, 0, 0, paris) // a Monday
	sun0930 := time.Date(2026, 11, 22, 9, 30, 0, 0, paris)
	for _, c := range []struct {
		expr string
		t    time.Time
		want bool
	}{
		{"* 9-17 * * mon-fri", mon0930, true},
		{"* 9-17 * * mon-fri", sun0930, false},
		{"* 9-17 * * 1-5", mon0930.Add(9 * time.Hour), false},
		{"*/15 * * * *", mon0930, true},
		{"*/7 * * * *", mon0930, false},
		{"30 9 * * 7", sun0930, true},   // 7 is Sunday too
		{"30 9 1 * mon", mon0930, true}, // both day fields restricted: either matches
		{"30 9 1 * tue", mon0930, false},
		{"@daily", time.Date(2026, 1, 1, 0, 0, 0, 0, paris), true},
		{"@hourly", mon0930, false},
		{"bad", mon0930, false},
	} {
		if got := CronMatches(c.expr, c.t); got != c.want {
			t.Errorf("CronMatches(%q, %s) = %v, want %v", c.expr, c.t, got, c.want)
		}
	}
}

func TestRuleEval(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"GO": "yes"}
	lookup := func(ns, name string) (string, bool) { v, ok := vars[name]; return v, ok && ns == "variables" }
	now := time.Date(2026, 11, 23, 8, 30, 0, 0, time.UTC) // 9:30 in Paris
	for _, c := range []struct {
		r    Rule
		want bool
	}{
		{Rule{Name: "a", RuleType: RuleVariableCheck, Configuration: map[string]string{"variable": "#{variables.GO}", "operator": "EQ", "value": "yes"}}, true},
		{Rule{Name: "b", RuleType: RuleVariableCheck, Configuration: map[string]string{"variable": "#{variables.GO}", "operator": "NE", "value": "yes"}}, false},
		{Rule{Name: "c", RuleType: RuleVariableCheck, Configuration: map[string]string{"variable": "#{variables.GO}", "operator": "CONTAINS", "value": "e"}}, true},
		{Rule{Name: "d", RuleType: RuleVariableCheck, Configuration: map[string]string{"variable": "#{variables.GO}", "operator": "MATCHES", "value": "^y.s$"}}, true},
		{Rule{Name: "e", RuleType: RuleVariableCheck, Configuration: map[string]string{"variable": "#{variables.X}", "operator": "NE", "value": ""}}, false},
		{Rule{Name: "f", RuleType: RuleDeploymentWindow, Configuration: map[string]string{"cron": "* 9 * * *", "timeZone": "Europe/Paris"}}, true},
		{Rule{Name: "g", RuleType: RuleDeploymentWindow, Configuration: map[string]string{"cron": "* 9 * * *"}}, false},
	} {
		if got, why := c.r.Eval(now, lookup); got != c.want {
			t.Errorf("rule %s: %v (%s), want %v", c.r.Name, got, why, c.want)
		}
	}
}

// TestRuleJSON checks that a pipeline's rules, written as JSON, read back with json.Unmarshal
// (as the store does) to equal rules: a Commands rule's commands sit inside configuration.
func TestRuleJSON(t *testing.T) {
	t.Parallel()
	p, err := Load("testdata/valid/conditions.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back Pipeline
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	var commands int
	for si, st := range p.Stages {
		for _, pair := range [][2]*Conditions{{st.BeforeEntry, back.Stages[si].BeforeEntry}, {st.OnSuccess, back.Stages[si].OnSuccess}, {st.OnFailure, back.Stages[si].OnFailure}} {
			if !reflect.DeepEqual(pair[0], pair[1]) {
				t.Errorf("stage %s: conditions differ after json.Unmarshal:\n%+v\n%+v", st.Name, pair[0], pair[1])
			}
			if pair[0] == nil {
				continue
			}
			for _, c := range pair[0].Conditions {
				for _, r := range c.Rules {
					if r.RuleType == RuleCommands && len(r.Commands) > 0 {
						commands++
					}
				}
			}
		}
	}
	if commands == 0 {
		t.Fatal("testdata/valid/conditions.yaml has no Commands rule")
	}
}
