package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

type cucumberFeature struct {
	Name     string `json:"name"`
	URI      string `json:"uri"`
	Elements []struct {
		Name  string `json:"name"`
		Type  string `json:"type"` // "scenario", "background"
		Steps []struct {
			Keyword string `json:"keyword"`
			Name    string `json:"name"`
			Result  struct {
				Status       string `json:"status"`
				Duration     int64  `json:"duration"` // nanoseconds
				ErrorMessage string `json:"error_message"`
			} `json:"result"`
		} `json:"steps"`
	} `json:"elements"`
}

// parseCucumber reads Cucumber's JSON report: each scenario is a case, failed when a step
// failed, skipped when a step was skipped, pending or undefined (and none failed).
// Backgrounds are steps of the scenarios, not cases.
func parseCucumber(r io.Reader) (*Result, error) {
	var features []cucumberFeature
	if err := json.NewDecoder(r).Decode(&features); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, fmt.Errorf("not Cucumber JSON: at byte %d: %w", se.Offset, err)
		case errors.As(err, &te):
			return nil, fmt.Errorf("not Cucumber JSON (a list of features): at byte %d: %w", te.Offset, err)
		}
		return nil, fmt.Errorf("not Cucumber JSON: %w", err)
	}
	res := &Result{}
	for _, f := range features {
		for _, el := range f.Elements {
			if el.Type == "background" {
				for _, s := range el.Steps {
					res.Duration = addDuration(res.Duration, time.Duration(max(s.Result.Duration, 0)))
				}
				continue
			}
			res.Tests++
			c := Case{Suite: f.Name, Class: f.URI, Name: el.Name}
			skipped := false
			for _, s := range el.Steps {
				res.Duration = addDuration(res.Duration, time.Duration(max(s.Result.Duration, 0)))
				switch s.Result.Status {
				case "failed":
					if c.Status == "" {
						c.Status = CaseFailed
						msg, rest, _ := strings.Cut(strings.TrimSpace(s.Result.ErrorMessage), "\n")
						c.Message = clip(strings.TrimSpace(s.Keyword)+" "+s.Name+": "+msg, MaxMessage)
						c.Text = excerpt(clip(rest, 2*MaxText))
					}
				case "skipped", "pending", "undefined":
					skipped = true
				}
			}
			switch {
			case c.Status != "":
				res.Failed++
				res.keep(c)
			case skipped:
				res.Skipped++
			default:
				res.Passed++
			}
		}
	}
	return res, nil
}
