package client

import (
	"context"
	"net/http"
	"time"
)

// Worker is a row of the server's workers registry (GET /api/v1/workers): a process that
// leases jobs, as it last said it was.
type Worker struct {
	Name      string   `json:"name"`
	Labels    []string `json:"labels"`
	Providers []string `json:"providers"` // "Category/Provider" keys; none: any
	Version   string   `json:"version,omitempty"`
	Slots     int      `json:"slots,omitempty"` // jobs it runs at once; 0: it does not say
	Running   int      `json:"running"`         // jobs leased to it now
	// LastSeen is by the server's store's clock; UnseenSeconds how long before the answer
	// that was, by the same clock (this machine's may differ).
	LastSeen      time.Time `json:"lastSeen"`
	UnseenSeconds float64   `json:"unseenSeconds"`
	Live          bool      `json:"live"` // seen recently; a worker not live is gone
}

// Workers lists the workers registry, by name.
func (c *Client) Workers(ctx context.Context) ([]Worker, error) {
	var out struct {
		Workers []Worker `json:"workers"`
	}
	err := c.call(ctx, request{method: http.MethodGet, path: []string{"workers"}}, nil, &out)
	return out.Workers, err
}
