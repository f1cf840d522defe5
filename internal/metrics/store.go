package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/store"
)

var (
	execDesc = prometheus.NewDesc("conveyor_executions",
		"Executions in the store, by pipeline and status (read at each scrape).", []string{"pipeline", "status"}, nil)
	queuedDesc = prometheus.NewDesc("conveyor_jobs_queued",
		"Jobs (action attempts) waiting for a worker.", nil, nil)
	leasedDesc = prometheus.NewDesc("conveyor_jobs_leased",
		"Jobs held by a worker.", nil, nil)
	leaseAgeDesc = prometheus.NewDesc("conveyor_job_oldest_lease_age_seconds",
		"Age of the oldest leased job, since it was queued (the store does not record when a lease began); 0 when none.", nil, nil)
	scrapeErrDesc = prometheus.NewDesc("conveyor_store_scrape_error",
		"1 when the last scrape could not read the store (the other store series are then absent).", nil, nil)
)

// storeCollector reads executions and jobs from the store at each scrape: what it reports
// is the store's state, whatever restarts happened.
type storeCollector struct {
	st  store.Store
	now func() time.Time
}

var _ prometheus.Collector = (*storeCollector)(nil)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- execDesc
	ch <- queuedDesc
	ch <- leasedDesc
	ch <- leaseAgeDesc
	ch <- scrapeErrDesc
}

type execKey struct {
	pipeline string
	status   engine.ExecutionStatus
}

// executionStatuses are every status an execution can have.
var executionStatuses = []engine.ExecutionStatus{engine.ExecInProgress, engine.ExecStopping, engine.ExecStopped,
	engine.ExecSucceeded, engine.ExecFailed, engine.ExecSuperseded, engine.ExecCancelled}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	counts := map[execKey]int{}
	var jobs []*store.Job
	err := c.st.View(ctx, func(rd store.Reader) error {
		pipelines, err := rd.Pipelines(ctx)
		if err != nil {
			return err
		}
		// Indexed counts, not a read of the history: a scrape costs the same with 100
		// executions as with 100,000.
		for _, p := range pipelines {
			for _, status := range executionStatuses {
				n, err := rd.CountExecutions(ctx, p.Name, status)
				if err != nil {
					return err
				}
				if n > 0 {
					counts[execKey{p.Name, status}] = n
				}
			}
		}
		jobs, err = rd.Jobs(ctx, store.JobQueued, store.JobLeased)
		return err
	})
	if err != nil {
		ch <- prometheus.MustNewConstMetric(scrapeErrDesc, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(scrapeErrDesc, prometheus.GaugeValue, 0)
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(execDesc, prometheus.GaugeValue, float64(n), k.pipeline, string(k.status))
	}
	var queued, leased int
	var oldest time.Time
	for _, j := range jobs {
		switch j.State {
		case store.JobQueued:
			queued++
		case store.JobLeased:
			leased++
			if oldest.IsZero() || j.CreatedAt.Before(oldest) {
				oldest = j.CreatedAt
			}
		}
	}
	age := 0.0
	if !oldest.IsZero() {
		age = max(c.now().Sub(oldest).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(queuedDesc, prometheus.GaugeValue, float64(queued))
	ch <- prometheus.MustNewConstMetric(leasedDesc, prometheus.GaugeValue, float64(leased))
	ch <- prometheus.MustNewConstMetric(leaseAgeDesc, prometheus.GaugeValue, age)
}
