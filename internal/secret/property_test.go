package secret

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
)

// Alphabets of random text, as lists of pieces: secretChars has the bytes that encodings
// change ('"', '\\', '/', '+', '<', '%', ' ', non-ASCII, invalid UTF-8, NUL) but no '*', the
// Mask's own character (see the package comment).
var (
	alnum       = strings.Split("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", "")
	secretChars = append(strings.Split(`"\/+<>&=%?#: `+"\n\x00\xff", ""), append(alnum, "é", "ß", "世", "😀")...)
	textChars   = append(strings.Split(` *=:"\/+%-_.`+"\n", ""), alnum...)
)

func randomText(rng *rand.Rand, n int, pieces []string) string {
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(pieces[rng.IntN(len(pieces))])
	}
	return b.String()
}

func randomBytes(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return string(b)
}

// encodedForms returns the forms of v that a program prints whole, computed here without
// forms(), so that a mistake there shows.
func encodedForms(t testing.TB, v string) []string {
	jsonForm := func(escapeHTML bool) string {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(escapeHTML)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		s := strings.TrimSuffix(b.String(), "\n")
		return s[1 : len(s)-1]
	}
	return []string{
		v,
		base64.StdEncoding.EncodeToString([]byte(v)),
		base64.RawStdEncoding.EncodeToString([]byte(v)),
		base64.URLEncoding.EncodeToString([]byte(v)),
		base64.RawURLEncoding.EncodeToString([]byte(v)),
		url.QueryEscape(v),
		url.PathEscape(v),
		jsonForm(true),
		jsonForm(false),
	}
}

// reference masks text the slow, obvious way: mark the bytes of every occurrence of every
// form, then replace each run of marked bytes by Mask.
func reference(text string, forms []string) string {
	covered := make([]bool, len(text))
	for _, f := range forms {
		for i := range len(text) {
			if strings.HasPrefix(text[i:], f) {
				for j := range len(f) {
					covered[i+j] = true
				}
			}
		}
	}
	var b strings.Builder
	for i := range len(text) {
		switch {
		case !covered[i]:
			b.WriteByte(text[i])
		case i == 0 || !covered[i-1]:
			b.WriteString(Mask)
		}
	}
	return b.String()
}

// writeSplit writes text to a Writer of m in random pieces, empty ones included, and returns
// what came out.
func writeSplit(t testing.TB, m *Masker, text string, rng *rand.Rand) string {
	t.Helper()
	var out bytes.Buffer
	w := m.Writer(&out)
	for len(text) > 0 {
		n := min(rng.IntN(2*m.longest+2), len(text))
		if k, err := w.Write([]byte(text[:n])); k != n || err != nil {
			t.Fatalf("Write = %d, %v", k, err)
		}
		text = text[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// TestMaskRandom masks random texts made of plain text, forms of random secrets, parts of
// them and base64 of secrets among other bytes, and checks that String matches the reference,
// that a Writer fed random pieces matches String, that no form is left, and that a text with
// no form comes out as it went in.
func TestMaskRandom(t *testing.T) {
	t.Parallel()
	seeds := uint64(2000)
	if testing.Short() {
		seeds = 200
	}
	var untouched, masked int
	for seed := range seeds {
		rng := rand.New(rand.NewPCG(seed, 1))
		secrets := make([]string, 1+rng.IntN(5))
		var all []string
		for i := range secrets {
			secrets[i] = randomText(rng, 4+rng.IntN(37), secretChars)
			if i > 0 && rng.IntN(2) == 0 { // starts as another ends: they can overlap
				prev := secrets[rng.IntN(i)]
				secrets[i] = prev[rng.IntN(len(prev)):] + secrets[i]
			}
			all = append(all, forms(secrets[i])...)
			all = append(all, encodedForms(t, secrets[i])...)
		}
		m := newMasker(t, secrets...)
		var b strings.Builder
		for range rng.IntN(12) {
			v := secrets[rng.IntN(len(secrets))]
			f := all[rng.IntN(len(all))]
			switch rng.IntN(6) {
			case 0:
				b.WriteString(f)
			case 1: // v, then another secret overlapping its end if it can
				w := secrets[rng.IntN(len(secrets))]
				k := min(len(v), len(w))
				for k > 0 && !strings.HasSuffix(v, w[:k]) {
					k--
				}
				b.WriteString(v + w[k:])
			case 2: // a near miss
				b.WriteString(f[:rng.IntN(len(f))])
			case 3:
				before := randomText(rng, rng.IntN(8), secretChars)
				after := randomText(rng, rng.IntN(8), secretChars)
				b.WriteString(base64.StdEncoding.EncodeToString([]byte(before + v + after)))
			default:
				b.WriteString(randomText(rng, rng.IntN(60), textChars))
			}
		}
		text := b.String()

		got := m.String(text)
		if want := reference(text, all); got != want {
			t.Fatalf("seed %d, secrets %q: String(%q) =\n%q, want\n%q", seed, secrets, text, got, want)
		}
		if streamed := writeSplit(t, m, text, rng); streamed != got {
			t.Fatalf("seed %d, secrets %q: Writer gave\n%q, String\n%q", seed, secrets, streamed, got)
		}
		found := false
		for _, f := range all {
			if strings.Contains(got, f) {
				t.Fatalf("seed %d, secrets %q: %q shows form %q", seed, secrets, got, f)
			}
			found = found || strings.Contains(text, f)
		}
		if !found {
			untouched++
			if got != text {
				t.Fatalf("seed %d: String(%q) = %q, but it holds no secret", seed, text, got)
			}
		} else {
			masked++
		}
	}
	t.Logf("%d texts with a secret, %d without", masked, untouched)
	if untouched < int(seeds)/20 || masked < int(seeds)/2 {
		t.Errorf("%d texts had a secret and %d none: the generator no longer tries both", masked, untouched)
	}
}

// TestBase64InsideRandom encodes random secrets between random bytes, at every alignment.
func TestBase64InsideRandom(t *testing.T) {
	t.Parallel()
	encodings := []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding}
	for seed := range uint64(1000) {
		rng := rand.New(rand.NewPCG(seed, 2))
		v := randomText(rng, 4+rng.IntN(37), secretChars)
		m := newMasker(t, v)
		for align := range 3 {
			before := randomBytes(rng, 3*rng.IntN(4)+align)
			after := randomBytes(rng, rng.IntN(6))
			checkBase64Inside(t, m, encodings[rng.IntN(len(encodings))], before, v, after)
		}
		if t.Failed() {
			t.Fatalf("seed %d, secret %q", seed, v)
		}
	}
}

// FuzzMasker checks that masked output never shows the secret, and that a Writer fed the text
// in pieces gives what String gives.
func FuzzMasker(f *testing.F) {
	f.Add("hunter2", "p@ss/w+rd", []byte("login hunter2 and aHVudGVyMg== and p%40ss%2Fw%2Brd"), uint64(1))
	f.Add("abab", "baba", []byte("abababababa"), uint64(2))
	f.Add("\x00\xffé<", "<>&\"", []byte(`{"a":"\u0000\ufffdé\u003c"}`), uint64(3))
	f.Fuzz(func(t *testing.T, secret, other string, text []byte, seed uint64) {
		m, err := NewMasker(secret, other)
		if err != nil {
			return
		}
		got := m.String(string(text))
		if want := string(m.Bytes(text)); got != want {
			t.Fatalf("String gave %q, Bytes %q", got, want)
		}
		if !strings.Contains(secret, "*") && strings.Contains(got, secret) {
			t.Fatalf("String(%q) = %q shows the secret", text, got)
		}
		if streamed := writeSplit(t, m, string(text), rand.New(rand.NewPCG(seed, 3))); streamed != got {
			t.Fatalf("Writer gave %q, String %q", streamed, got)
		}
	})
}
