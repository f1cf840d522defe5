package local

import (
	"context"
	"fmt"
	"strings"

	"github.com/conveyorci/conveyor/internal/audit"
	"github.com/conveyorci/conveyor/internal/job"
	"github.com/conveyorci/conveyor/internal/store"
)

// AuditedSecrets returns src recording every use of secrets in log: a "secret.use" entry
// (actor "worker:ID" of the job's worker, target the job's execution, details the job, its
// action and the secrets' names, never a value), appended in a transaction of its own before
// the values are handed over. So a use is recorded before it happens and a crash after that
// loses nothing; a use that cannot be recorded does not happen (the job fails). A lookup
// that fails is recorded too, with its error as outcome.
func AuditedSecrets(src job.SecretSource, log *audit.Log, st store.Store) job.SecretSource {
	return &auditedSecrets{src: src, log: log, st: st}
}

type auditedSecrets struct {
	src job.SecretSource
	log *audit.Log
	st  store.Store
}

var _ job.SecretSource = (*auditedSecrets)(nil)

func (s *auditedSecrets) Secrets(ctx context.Context, pipeline string, names []string) (map[string]string, error) {
	values, err := s.src.Secrets(ctx, pipeline, names)
	e := audit.Entry{Actor: "system", Action: "secret.use", Target: "pipeline/" + pipeline, Outcome: audit.OK}
	d := map[string]any{"secrets": names}
	if j, ok := job.JobOf(ctx); ok {
		e.Actor, e.Target = "worker:"+j.Worker, "pipeline/"+pipeline+"/execution/"+j.ExecutionID
		d["job"], d["stage"], d["action"], d["attempt"] = j.ID, j.Spec.Stage, j.Spec.Action, j.Spec.Attempt
	}
	e.Details = d
	if err != nil {
		e.Outcome = audit.Failed(err)
	}
	if aerr := s.st.Update(ctx, func(tx store.Tx) error { return s.log.Append(ctx, tx, e) }); aerr != nil {
		return nil, fmt.Errorf("record the use of secrets %s: %w", strings.Join(names, ", "), aerr)
	}
	if err != nil {
		return nil, err
	}
	return values, nil
}
