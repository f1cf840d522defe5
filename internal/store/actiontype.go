package store

import (
	"context"
	"time"
)

// --- Custom action types and job acknowledgements (internal/api, action_types.go). ---

// ActionTypeReader reads custom action types and job acknowledgements; part of Reader.
type ActionTypeReader interface {
	// ActionTypes lists the registered custom action types, by category then provider.
	ActionTypes(ctx context.Context) ([]*ActionType, error)
	// ActionType returns one custom action type (ErrNotFound when not registered).
	ActionType(ctx context.Context, category, provider string) (*ActionType, error)
	// JobAcknowledged reports whether the job's lease under epoch was acknowledged
	// (AcknowledgeJob): a lease of an earlier epoch does not count.
	JobAcknowledged(ctx context.Context, id string, epoch int64) (bool, error)
}

// ActionTypeWriter changes custom action types and job acknowledgements; part of Tx.
type ActionTypeWriter interface {
	// PutActionType registers t, or replaces the type of that category and provider, and
	// reports whether it is new. A new type's CreatedAt and CreatedBy are its UpdatedAt and
	// UpdatedBy; a replaced one keeps them.
	PutActionType(ctx context.Context, t *ActionType) (created bool, err error)
	// DeleteActionType removes a custom action type; ErrNotFound when there is none. Whether
	// a pipeline still uses it is the caller's check.
	DeleteActionType(ctx context.Context, category, provider string) error
	// AcknowledgeJob records that the worker holding the job's lease under epoch took it
	// (CodePipeline's AcknowledgeJob): ErrConflict when the job is not leased under epoch,
	// ErrNotFound when there is no such job. Acknowledging again changes nothing. Records of
	// jobs no longer leased are dropped on the way, so they do not pile up.
	AcknowledgeJob(ctx context.Context, id string, epoch int64, now time.Time) error
}

// ActionType is a custom action type: an action provider that Conveyor does not run itself,
// whose jobs a custom worker polls for (CodePipeline's CreateCustomActionType). Pipelines
// use it as category Category, provider Provider.
type ActionType struct {
	Category    string
	Provider    string
	Version     string // "1" unless registered otherwise
	Description string
	// Properties are the configuration properties an action of the type takes.
	Properties []ActionTypeProperty
	CreatedAt  time.Time
	CreatedBy  string
	UpdatedAt  time.Time
	UpdatedBy  string
}

// ActionTypeProperty is one configuration property of a custom action type. A secret one
// is written { secret: NAME } in a pipeline, NAME one of the pipeline's secrets.
type ActionTypeProperty struct {
	Name        string `json:"name"`
	Required    bool   `json:"required,omitempty"`
	Secret      bool   `json:"secret,omitempty"`
	Description string `json:"description,omitempty"`
}
