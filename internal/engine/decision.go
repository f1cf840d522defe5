package engine

import "time"

// Decision is a person's decision on an approval action: the EvApproval event that ended
// the attempt. Step records it on the action; a new attempt starts without one.
type Decision struct {
	Approved bool      `json:"approved"`
	By       string    `json:"by"`
	At       time.Time `json:"at"`
	Comment  string    `json:"comment,omitempty"`
	// From is where the decision came from (the API client's remote address).
	From string `json:"from,omitempty"`
}
