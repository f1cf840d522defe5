package report

import (
	"io"
	"strings"
	"testing"
)

// A file past the limit is an error, not a cut report.
func TestLimitReader(t *testing.T) {
	t.Parallel()
	if b, err := io.ReadAll(&limitReader{r: strings.NewReader("12345"), n: 5}); err != nil || string(b) != "12345" {
		t.Fatalf("at the limit: %q, %v", b, err)
	}
	if _, err := io.ReadAll(&limitReader{r: strings.NewReader("123456"), n: 5}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("past the limit: %v", err)
	}
}
