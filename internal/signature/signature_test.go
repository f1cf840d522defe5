package signature_test

import (
	"net/http"
	"testing"

	"github.com/conveyorci/conveyor/internal/signature"
)

// TestSet checks the signature against a value computed independently:
// printf '{"a":1}' | openssl dgst -sha256 -hmac key
func TestSet(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	signature.Set(h, []byte(`{"a":1}`), "key")
	const want = "sha256=88a67f24bbcdaed0e6c997404bb79a743baf44c6bab2f4c27328e3009d22e342"
	if got := h.Get(signature.Header); got != want {
		t.Errorf("%s = %s, want %s", signature.Header, got, want)
	}
}
