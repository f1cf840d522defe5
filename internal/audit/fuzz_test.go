package audit

import (
	"encoding/base64"
	"strings"
	"testing"
)

// FuzzParseKey fuzzes the audit key a server reads from audit.key or CONVEYOR_AUDIT_KEY: no
// value makes it panic, an accepted key has at least KeySize bytes and is what the value
// encodes, and no error quotes the value.
func FuzzParseKey(f *testing.F) {
	good := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", KeySize)))
	for _, seed := range []string{good, good + "\n", " " + good + " ", good[:20], good + "==", "not base64!",
		base64.StdEncoding.EncodeToString(make([]byte, KeySize-1)), base64.RawStdEncoding.EncodeToString(make([]byte, KeySize)),
		base64.URLEncoding.EncodeToString([]byte(strings.Repeat("\xff", KeySize))), ""} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		key, err := ParseKey(s)
		if err != nil {
			if v := strings.TrimSpace(s); len(v) >= 8 && strings.Contains(err.Error(), v) {
				t.Fatalf("the error quotes the key: %v", err)
			}
			return
		}
		want, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if len(key) < KeySize || derr != nil || string(key) != string(want) {
			t.Fatalf("ParseKey(%q) = %d bytes, want the %d it encodes", s, len(key), len(want))
		}
	})
}
