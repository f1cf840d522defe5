package vault

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/conveyorci/conveyor/internal/secret"
	"github.com/conveyorci/conveyor/internal/store"
)

// Keys seals and opens small values with the master keys: *keyring.Ring is one. Open takes
// the aad Seal was given; a value altered, or opened with another aad, is an error. Both are
// safe for concurrent use.
type Keys interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
}

// aadPrefix starts the associated data of every sealed secret: its version, so the format
// can change.
const aadPrefix = "conveyor secret v1|"

// AAD returns the associated data a secret's value is sealed with.
func AAD(scope, name string) []byte {
	return []byte(aadPrefix + scope + "|" + name)
}

var (
	// reName is a secret's name as a pipeline file writes it (internal/pipeline's rule).
	reName = regexp.MustCompile(`^[A-Za-z0-9@_-]{1,128}$`)
	// reScope is a pipeline's name (internal/pipeline's rule).
	reScope = regexp.MustCompile(`^[A-Za-z0-9.@_-]{1,100}$`)
)

// CheckName returns an error unless name can name a secret: what a pipeline's `secrets:`
// accepts.
func CheckName(name string) error {
	if !reName.MatchString(name) {
		return fmt.Errorf("secret name %q: want 1 to 128 letters, digits, '@', '-' or '_', as in a pipeline's secrets:", name)
	}
	return nil
}

// CheckScope returns an error unless scope is "" (global) or can name a pipeline.
func CheckScope(scope string) error {
	if scope != "" && !reScope.MatchString(scope) {
		return fmt.Errorf("pipeline name %q: want 1 to 100 letters, digits, '.', '@', '-' or '_'", scope)
	}
	return nil
}

// Describe names a secret for messages: "global secret N" or "secret N of pipeline P".
func Describe(scope, name string) string {
	if scope == "" {
		return "global secret " + name
	}
	return fmt.Sprintf("secret %s of pipeline %s", name, scope)
}

// Vault seals secrets into a store and opens them. It is safe for concurrent use.
type Vault struct {
	st   store.Store
	keys Keys
}

// New returns a Vault over st whose values keys seals.
func New(st store.Store, keys Keys) *Vault {
	return &Vault{st: st, keys: keys}
}

// MaxValue is the size in bytes of the largest secret value: a job receives it in an
// environment variable, and Linux refuses to start a process with one over 128 KiB.
const MaxValue = 64 << 10

// CheckValue returns an error unless value can be a secret's: secret.CheckValue (long
// enough to be masked) and at most MaxValue bytes. The error never holds the value.
func CheckValue(value string) error {
	if err := secret.CheckValue(value); err != nil {
		return err
	}
	if len(value) > MaxValue {
		return fmt.Errorf("secret value is %d bytes, over the maximum of %d (a job receives it in an environment variable)", len(value), MaxValue)
	}
	return nil
}

// Seal checks a secret's scope ("" for global), name and value, and returns the value
// sealed for that scope and name, for store.Tx.PutSecret: the API stores it in the
// transaction that records the change in the audit log. No error holds the value.
func (v *Vault) Seal(scope, name, value string) ([]byte, error) {
	what := "set " + Describe(scope, name)
	if err := CheckScope(scope); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := CheckName(name); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := CheckValue(value); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	sealed, err := v.keys.Seal([]byte(value), AAD(scope, name))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return sealed, nil
}

// Put seals value as the secret name of scope ("" for global), set by whom at now, replacing
// any value it had, and reports whether the secret is new (see Seal).
func (v *Vault) Put(ctx context.Context, scope, name, value, by string, now time.Time) (created bool, err error) {
	sealed, err := v.Seal(scope, name, value)
	if err != nil {
		return false, err
	}
	err = v.st.Update(ctx, func(tx store.Tx) error {
		var err error
		created, err = tx.PutSecret(ctx, &store.Secret{Scope: scope, Name: name, Sealed: sealed, UpdatedAt: now, UpdatedBy: by})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("set %s: %w", Describe(scope, name), err)
	}
	return created, nil
}

// Delete removes a secret; an error wrapping store.ErrNotFound when there is none.
func (v *Vault) Delete(ctx context.Context, scope, name string) error {
	return v.st.Update(ctx, func(tx store.Tx) error { return tx.DeleteSecret(ctx, scope, name) })
}

// List returns the secrets of the scopes given (every scope when none), without values.
func (v *Vault) List(ctx context.Context, scopes ...string) ([]*store.Secret, error) {
	var out []*store.Secret
	err := v.st.View(ctx, func(r store.Reader) error {
		var err error
		out, err = r.Secrets(ctx, scopes...)
		return err
	})
	return out, err
}

// MissingError is a secret a pipeline's job takes and nobody set.
type MissingError struct {
	Pipeline string
	Names    []string // sorted
}

func (e *MissingError) Error() string {
	var how []string
	for _, n := range e.Names {
		how = append(how, fmt.Sprintf("conveyor secret set %s --pipeline %s", n, e.Pipeline))
	}
	what := "secret " + e.Names[0] + " is"
	if len(e.Names) > 1 {
		what = "secrets " + strings.Join(e.Names, ", ") + " are"
	}
	return fmt.Sprintf("%s not set for pipeline %s: set it with: %s (the value is read from standard input; without --pipeline it is global, for every pipeline)",
		what, e.Pipeline, strings.Join(how, "; "))
}

// Secrets returns the values of the named secrets as pipeline sees them (its own, else the
// global ones): job.SecretSource, which the worker pool calls once per job that takes
// secrets. A name without a secret is a *MissingError saying how to set it. A value that does
// not open (altered, moved to another name or scope, or sealed with a master key no longer
// in the ring) is an error naming the secret, never showing a value.
func (v *Vault) Secrets(ctx context.Context, pipeline string, names []string) (map[string]string, error) {
	var found map[string]*store.Secret
	err := v.st.View(ctx, func(r store.Reader) error {
		var err error
		found, err = r.SecretValues(ctx, pipeline, names)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read secrets of pipeline %s: %w", pipeline, err)
	}
	var missing []string
	for _, n := range names {
		if _, ok := found[n]; !ok && !slices.Contains(missing, n) {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, &MissingError{Pipeline: pipeline, Names: missing}
	}
	out := make(map[string]string, len(found))
	for name, s := range found {
		plain, err := v.keys.Open(s.Sealed, AAD(s.Scope, s.Name))
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", Describe(s.Scope, s.Name), err)
		}
		out[name] = string(plain)
	}
	return out, nil
}

// Rewrap gives every stored secret a data key wrapped by the current master key, with
// rewrap (keyring's Ring.RewrapSealed), after a rotation; the ciphertexts stay as they are.
// It reports how many secrets there are and how many it changed (a secret already under the
// current key is left as is); progress, when not nil, is called after each secret. A secret
// changed or deleted meanwhile is skipped: whoever changed it sealed it under the current
// key already.
func Rewrap(ctx context.Context, st store.Store, rewrap func(sealed []byte) ([]byte, error), progress func(done, total int)) (total, changed int, err error) {
	var list []*store.Secret
	if err := st.View(ctx, func(r store.Reader) error {
		var err error
		list, err = r.Secrets(ctx)
		return err
	}); err != nil {
		return 0, 0, fmt.Errorf("rewrap secrets: %w", err)
	}
	for i, s := range list {
		ok, err := rewrapOne(ctx, st, s.Scope, s.Name, rewrap)
		if err != nil {
			return len(list), changed, fmt.Errorf("rewrap %s: %w", Describe(s.Scope, s.Name), err)
		}
		if ok {
			changed++
		}
		if progress != nil {
			progress(i+1, len(list))
		}
	}
	return len(list), changed, nil
}

func rewrapOne(ctx context.Context, st store.Store, scope, name string, rewrap func([]byte) ([]byte, error)) (bool, error) {
	var s *store.Secret
	if err := st.View(ctx, func(r store.Reader) error {
		vals, err := r.SecretValues(ctx, scope, []string{name})
		s = vals[name]
		return err
	}); err != nil {
		return false, err
	}
	if s == nil || s.Scope != scope { // deleted meanwhile
		return false, nil
	}
	neu, err := rewrap(s.Sealed)
	if err != nil {
		return false, err
	}
	if string(neu) == string(s.Sealed) {
		return false, nil
	}
	err = st.Update(ctx, func(tx store.Tx) error { return tx.ResealSecret(ctx, scope, name, s.Sealed, neu) })
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		return false, nil
	}
	return err == nil, err
}
