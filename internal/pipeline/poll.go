package pipeline

import (
	"fmt"
	"time"
)

// Polling of Git sources (the Git provider's pollInterval).
const (
	// DefaultPollInterval is how often a Git source is polled when pollInterval is not set.
	DefaultPollInterval = 60 * time.Second
	// MinPollInterval is the shortest pollInterval accepted (0 aside, which turns polling off).
	MinPollInterval = 5 * time.Second
)

const pollIntervalPattern = `^(0|([0-9]*\.?[0-9]+(ns|us|µs|ms|s|m|h))+)$`

func checkPollInterval(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if d != 0 && d < MinPollInterval {
		return fmt.Errorf("%s is shorter than the minimum, %s (0 turns polling off)", s, MinPollInterval)
	}
	return nil
}

// PollInterval returns how often a Git source action's branch is polled: its pollInterval,
// DefaultPollInterval when unset, 0 when polling is off.
func (a *Action) PollInterval() time.Duration {
	s, _ := a.Configuration["pollInterval"].(string)
	if s == "" {
		return DefaultPollInterval
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return DefaultPollInterval // refused by Parse; not reached for a parsed pipeline
	}
	return d
}
