package notify

import (
	"net/http"
	"strings"
	"testing"
)

// TestSendRedactsTarget: a chat webhook's URL is a secret; the errors of a request that
// does not get through, logged by the outbox, leave out its path's last element and query.
func TestSendRedactsTarget(t *testing.T) {
	t.Parallel()
	n := New(Options{})
	for _, target := range []string{
		"http://127.0.0.1:1/services/T0/B0/s3cret-path?token=s3cret-query",     // nothing listens on port 1
		"http://127.0.0.1:1/services/T0/B0/s3cret-path?token=s3cret-query\x7f", // not a URL
	} {
		err := n.send(t.Context(), http.MethodPost, target, http.Header{}, []byte("{}"))
		if err == nil {
			t.Fatalf("send to %q: no error", target)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("send to %q: the error shows the secret: %v", target, err)
		}
	}
}
