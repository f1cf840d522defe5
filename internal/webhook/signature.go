package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/conveyorci/conveyor/internal/signature"
)

// ErrUnsigned is a delivery that carries no signature (or token) at all.
var ErrUnsigned = errors.New("unsigned delivery")

// ErrBadSignature is a delivery whose signature does not match the secret, or is not of the
// kind the forge sends (another algorithm, not hex).
var ErrBadSignature = errors.New("bad signature")

// SignatureHeader is the header carrying each forge's signature (GitLab's is the secret
// token itself).
var SignatureHeader = map[Forge]string{GitHub: "X-Hub-Signature-256", GitLab: "X-Gitlab-Token", Gitea: "X-Gitea-Signature"}

// Verify checks that a delivery of forge f was signed with secret: GitHub's
// X-Hub-Signature-256 ("sha256=" and the hex HMAC-SHA256 of the body), Gitea's
// X-Gitea-Signature (the hex HMAC-SHA256 of the body) or GitLab's X-Gitlab-Token (the secret
// itself). Comparisons take constant time. The error wraps ErrUnsigned or ErrBadSignature
// and says why, never with the secret or the expected signature.
func Verify(f Forge, h http.Header, body []byte, secret string) error {
	if secret == "" {
		return fmt.Errorf("%w: the webhook secret is empty", ErrBadSignature)
	}
	name := SignatureHeader[f]
	got := strings.TrimSpace(h.Get(name))
	switch f {
	case GitHub:
		if got == "" {
			if h.Get("X-Hub-Signature") != "" {
				return fmt.Errorf("%w: only an SHA-1 signature (X-Hub-Signature); SHA-256 (%s) is required", ErrBadSignature, name)
			}
			return fmt.Errorf("%w: no %s header: set a secret on the webhook", ErrUnsigned, name)
		}
		hexSig, ok := strings.CutPrefix(got, "sha256=")
		if !ok {
			return fmt.Errorf("%w: %s is not of the form sha256=HEX", ErrBadSignature, name)
		}
		return checkHMAC(name, hexSig, body, secret)
	case Gitea:
		if got == "" {
			return fmt.Errorf("%w: no %s header: set a secret on the webhook", ErrUnsigned, name)
		}
		return checkHMAC(name, got, body, secret)
	case GitLab:
		if got == "" {
			return fmt.Errorf("%w: no %s header: set a secret token on the webhook", ErrUnsigned, name)
		}
		// Compare digests: equal lengths, so the time taken tells nothing of the length.
		a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(secret))
		if subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
			return fmt.Errorf("%w: %s does not match", ErrBadSignature, name)
		}
		return nil
	}
	return fmt.Errorf("verify delivery: unknown forge %q", f)
}

func checkHMAC(header, hexSig string, body []byte, secret string) error {
	sig, err := hex.DecodeString(hexSig)
	if err != nil || len(sig) != sha256.Size {
		return fmt.Errorf("%w: %s is not a hex HMAC-SHA256", ErrBadSignature, header)
	}
	if !hmac.Equal(sig, Sign(body, secret)) {
		return fmt.Errorf("%w: %s does not match the body signed with the webhook secret", ErrBadSignature, header)
	}
	return nil
}

// Sign returns the HMAC-SHA256 of body with secret, as GitHub and Gitea sign deliveries, and
// Conveyor and generic senders (signature.Sign).
func Sign(body []byte, secret string) []byte { return signature.Sign(body, secret) }

// SignHeaders sets on h what forge f sends to sign body with secret (for tests and tools
// that replay deliveries).
func SignHeaders(f Forge, h http.Header, body []byte, secret string) {
	switch f {
	case GitHub:
		h.Set(SignatureHeader[f], "sha256="+hex.EncodeToString(Sign(body, secret)))
	case Gitea:
		h.Set(SignatureHeader[f], hex.EncodeToString(Sign(body, secret)))
	case GitLab:
		h.Set(SignatureHeader[f], secret)
	}
}
