package secret

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestCheckValue(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"", "a", "abc", "\x00\x00\x00"} {
		err := CheckValue(v)
		if !errors.Is(err, ErrTooShort) {
			t.Errorf("CheckValue(%q) = %v, want ErrTooShort", v, err)
			continue
		}
		if !strings.Contains(err.Error(), strconv.Itoa(MinLength)) {
			t.Errorf("CheckValue(%q) = %q: does not say the minimum", v, err)
		}
	}
	for _, v := range []string{"abcd", "\x00\x00\x00\x00", "ünï", strings.Repeat("x", 4096)} {
		if err := CheckValue(v); err != nil {
			t.Errorf("CheckValue(%q) = %v, want nil", v, err)
		}
	}
}

func TestNewMaskerRefusesShortValues(t *testing.T) {
	t.Parallel()
	m, err := NewMasker("long enough", "pw1")
	if !errors.Is(err, ErrTooShort) || m != nil {
		t.Fatalf("NewMasker = %v, %v; want nil, ErrTooShort", m, err)
	}
	if strings.Contains(err.Error(), "pw1") {
		t.Errorf("the error shows the value: %q", err)
	}
	if !strings.Contains(err.Error(), "value 1") {
		t.Errorf("the error does not say which value: %q", err)
	}
}

func TestForms(t *testing.T) {
	t.Parallel()
	// echo -n abcd | base64 = YWJjZA==; the inner parts are cut from the encodings of
	// "abcd", "\x00abcd" (AGFiY2Q) and "\x00\x00abcd" (AABhYmNk).
	want := []string{"abcd", "YWJjZA==", "YWJjZA", "YWJjZ", "FiY2", "hYmNk"}
	if got := forms("abcd"); !slices.Equal(got, want) {
		t.Errorf("forms(abcd) = %q, want %q", got, want)
	}
	// "abc" is too short to mask, its base64 YWJj is not.
	if got := forms("abc"); !slices.Equal(got, []string{"YWJj"}) {
		t.Errorf("forms(abc) = %q, want [YWJj]", got)
	}
}

// TestEachForm masks a secret written in each form, inside ordinary text.
func TestEachForm(t *testing.T) {
	t.Parallel()
	// ">>>" and "???" encode to "Pj4+" and "Pz8/": the two base64 alphabets differ.
	const v = `p@ss w"rd\é<&>>>???/+=`
	m, err := NewMasker(v)
	if err != nil {
		t.Fatal(err)
	}
	jsonForm := func(escapeHTML bool) string {
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(escapeHTML)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		s := strings.TrimSpace(b.String())
		return s[1 : len(s)-1]
	}
	marshalled, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, form string }{
		{"raw", v},
		{"base64 std", base64.StdEncoding.EncodeToString([]byte(v))},
		{"base64 std raw", base64.RawStdEncoding.EncodeToString([]byte(v))},
		{"base64 url", base64.URLEncoding.EncodeToString([]byte(v))},
		{"base64 url raw", base64.RawURLEncoding.EncodeToString([]byte(v))},
		{"query escape", url.QueryEscape(v)},
		{"path escape", url.PathEscape(v)},
		{"json.Marshal", string(marshalled[1 : len(marshalled)-1])},
		{"json without HTML escaping", jsonForm(false)},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		if other, ok := seen[tt.form]; ok {
			t.Errorf("%s is the same as %s: choose a secret that tells them apart", tt.name, other)
		}
		seen[tt.form] = tt.name
		t.Run(tt.name, func(t *testing.T) {
			for _, in := range []string{tt.form, "token=" + tt.form + "\n", `{"a":"` + tt.form + `"}`} {
				want := strings.Replace(in, tt.form, Mask, 1)
				if got := m.String(in); got != want {
					t.Errorf("String(%q) = %q, want %q", in, got, want)
				}
			}
		})
	}
}

// TestBase64Inside checks that a secret encoded inside a longer text, at each alignment, shows
// at most the one character at each end that also depends on its neighbours.
func TestBase64Inside(t *testing.T) {
	t.Parallel()
	const v = "correct horse battery staple"
	m, err := NewMasker(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding} {
		for _, before := range []string{"", "x", "xy", "xyz", "user:"} {
			for _, after := range []string{"", "\n", "!?", "the rest"} {
				checkBase64Inside(t, m, enc, before, v, after)
			}
		}
	}
}

// checkBase64Inside masks enc(before+v+after) and fails if more than the characters made
// only of before's and after's bits and one character at each end of v's is visible.
func checkBase64Inside(t *testing.T, m *Masker, enc *base64.Encoding, before, v, after string) {
	t.Helper()
	e := enc.EncodeToString([]byte(before + v + after))
	got := m.String(e)
	head, tail, ok := strings.Cut(got, Mask)
	if !ok || strings.Contains(tail, Mask) {
		t.Errorf("base64 of %q+secret+%q: String(%s) = %s, want one %s", before, after, e, got, Mask)
		return
	}
	for _, f := range forms(v) {
		if strings.Contains(got, f) {
			t.Errorf("base64 of %q+secret+%q: String(%s) = %s shows %s", before, after, e, got, f)
		}
	}
	// Character k shows bits [6k, 6k+6); v holds bits [8*len(before), 8*len(before+v)).
	maxHead := (8*len(before) + 5) / 6
	maxTail := len(e) - 8*(len(before)+len(v))/6
	if !strings.HasPrefix(e, head) || len(head) > maxHead || !strings.HasSuffix(e, tail) || len(tail) > maxTail {
		t.Errorf("base64 of %q+secret+%q: String(%s) = %s, want at most %d characters before %s and %d after",
			before, after, e, got, maxHead, Mask, maxTail)
	}
}
