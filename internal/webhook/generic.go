package webhook

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/conveyorci/conveyor/internal/jsonpath"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/signature"
)

// Generic webhooks (POST /hooks/generic/NAME): any sender that can sign a JSON body.
const (
	// GenericSignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body, keyed
	// with the webhook trigger's secret (GitHub's scheme under Conveyor's name).
	// Conveyor signs what it sends the same way (package signature).
	GenericSignatureHeader = signature.Header
	// GenericDeliveryHeader carries the sender's id of the delivery: a redelivery with the
	// same id starts nothing new.
	GenericDeliveryHeader = signature.DeliveryHeader
)

// VerifyGeneric checks a generic delivery's X-Conveyor-Signature against secret, as Verify
// does for the forges: the error wraps ErrUnsigned or ErrBadSignature.
func VerifyGeneric(h http.Header, body []byte, secret string) error {
	if secret == "" {
		return fmt.Errorf("%w: the webhook secret is empty", ErrBadSignature)
	}
	got := strings.TrimSpace(h.Get(GenericSignatureHeader))
	if got == "" {
		return fmt.Errorf("%w: no %s header: sign the body with HMAC-SHA256 and send %s: sha256=HEX",
			ErrUnsigned, GenericSignatureHeader, GenericSignatureHeader)
	}
	hexSig, ok := strings.CutPrefix(got, "sha256=")
	if !ok {
		return fmt.Errorf("%w: %s is not of the form sha256=HEX", ErrBadSignature, GenericSignatureHeader)
	}
	return checkHMAC(GenericSignatureHeader, hexSig, body, secret)
}

// GenericMatch is what a generic delivery does to one webhook trigger.
type GenericMatch struct {
	// Start: every filter matched. When not, Reason says which did not.
	Start  bool
	Reason string
	// Revision is the first value the trigger's revision path selects ("" without one).
	Revision string
	// Variables are the pipeline variables the trigger's paths set (those that select a
	// value).
	Variables map[string]string
}

// MaxVariable caps the length of a variable taken from a delivery.
const MaxVariable = 4096

// MatchGeneric evaluates trigger w on doc, a delivery's body decoded by jsonpath.Decode. It
// is pure; the signature is checked elsewhere.
func MatchGeneric(w *pipeline.WebhookTrigger, doc any) GenericMatch {
	for _, f := range w.Filters {
		p, err := jsonpath.Compile(f.JSONPath)
		if err != nil {
			return GenericMatch{Reason: fmt.Sprintf("filter %s: %v", f.JSONPath, err)}
		}
		vals := p.Strings(doc)
		if !f.Match(vals) {
			want := "equal " + quote(f.Equals)
			if f.Matches != "" {
				want = "match " + quote(f.Matches)
			}
			got := "selects nothing"
			if len(vals) > 0 {
				got = "is " + quote(clip(strings.Join(vals, ", "), 128))
			}
			return GenericMatch{Reason: fmt.Sprintf("filter %s: %s, which does not %s", f.JSONPath, got, want)}
		}
	}
	m := GenericMatch{Start: true}
	if w.Revision != "" {
		if p, err := jsonpath.Compile(w.Revision); err == nil {
			if v := p.Strings(doc); len(v) > 0 {
				m.Revision = v[0]
			}
		}
		if m.Revision == "" || m.Revision == "null" {
			return GenericMatch{Reason: fmt.Sprintf("revision %s selects no commit in the delivery", w.Revision)}
		}
		if strings.HasPrefix(m.Revision, "-") || strings.ContainsAny(m.Revision, " \t\r\n\x00") || len(m.Revision) > 256 {
			return GenericMatch{Reason: fmt.Sprintf("revision %s selects %s, which is not a Git revision", w.Revision, quote(clip(m.Revision, 64)))}
		}
	}
	for name, path := range w.Variables {
		p, err := jsonpath.Compile(path)
		if err != nil {
			continue
		}
		if v := p.Strings(doc); len(v) > 0 {
			if len(v[0]) > MaxVariable {
				return GenericMatch{Reason: fmt.Sprintf("variable %s: %s selects %d bytes; the limit is %d", name, path, len(v[0]), MaxVariable)}
			}
			if m.Variables == nil {
				m.Variables = map[string]string{}
			}
			m.Variables[name] = v[0]
		}
	}
	return m
}

func quote(s string) string { return fmt.Sprintf("%q", s) }
