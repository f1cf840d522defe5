package secret

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
)

// MinLength is the length in bytes of the shortest secret value, and of the shortest form that
// is masked: shorter ones would mask ordinary words and numbers.
const MinLength = 4

// Mask replaces every masked run of text.
const Mask = "***"

// ErrTooShort classifies a secret value shorter than MinLength bytes.
var ErrTooShort = errors.New("secret value is shorter than the minimum of " + strconv.Itoa(MinLength) + " bytes")

// CheckValue returns an error if v cannot be masked safely. The error never contains v.
//
// Values with NUL or other binary bytes are accepted: a binary key is most likely printed as
// base64, which is masked.
func CheckValue(v string) error {
	if v == "" {
		return fmt.Errorf("%w (it is empty)", ErrTooShort)
	}
	if len(v) < MinLength {
		return fmt.Errorf("%w (it has %d)", ErrTooShort, len(v))
	}
	return nil
}

// A Masker replaces the secret values it was built from, in each of their forms, by Mask.
// It is read-only once built, so safe for concurrent use. A nil *Masker masks nothing.
type Masker struct {
	// filter has bit prefixHash(p) set for the first MinLength bytes p of every form, so most
	// positions of a text are passed over with one load, one multiplication and one bit test.
	filter []uint64
	// byPrefix holds the forms by their first MinLength bytes, longest first.
	byPrefix map[uint32][][]byte
	longest  int
}

const filterBits = 16

func prefixHash(p uint32) uint32 { return p * 0x9E3779B1 >> (32 - filterBits) }

// NewMasker returns a Masker for values. Every value must pass CheckValue; duplicates are
// allowed. With no values it returns a Masker that masks nothing.
func NewMasker(values ...string) (*Masker, error) {
	seen := map[string]bool{}
	for i, v := range values {
		if err := CheckValue(v); err != nil {
			return nil, fmt.Errorf("new masker: value %d: %w", i, err)
		}
		for _, f := range forms(v) {
			seen[f] = true
		}
	}
	if len(seen) == 0 {
		return &Masker{}, nil
	}
	m := &Masker{filter: make([]uint64, 1<<filterBits/64), byPrefix: map[uint32][][]byte{}}
	for f := range seen {
		p := binary.LittleEndian.Uint32([]byte(f))
		h := prefixHash(p)
		m.filter[h/64] |= 1 << (h % 64)
		m.byPrefix[p] = append(m.byPrefix[p], []byte(f))
		m.longest = max(m.longest, len(f))
	}
	for _, fs := range m.byPrefix {
		slices.SortFunc(fs, func(a, b []byte) int { return cmp.Compare(len(b), len(a)) })
	}
	return m, nil
}

func (m *Masker) empty() bool { return m == nil || m.longest == 0 }

// forms returns the texts under which v is masked (see the package comment), each once,
// none shorter than MinLength.
func forms(v string) []string {
	b := []byte(v)
	all := []string{v}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		raw := enc.WithPadding(base64.NoPadding)
		all = append(all, enc.EncodeToString(b), raw.EncodeToString(b))
		for align := range 3 {
			all = append(all, inner(raw, b, align))
		}
	}
	all = append(all, url.QueryEscape(v), url.PathEscape(v), jsonString(v, true), jsonString(v, false))
	var out []string
	for _, f := range all {
		if len(f) >= MinLength && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// inner returns the characters of the unpadded encoding of b that b alone determines when b
// starts at offset align (mod 3) of the encoded data: b holds bits [8*align, 8*(align+len(b)))
// and character k shows bits [6k, 6k+6).
func inner(raw *base64.Encoding, b []byte, align int) string {
	e := raw.EncodeToString(append(make([]byte, align), b...))
	return e[(8*align+5)/6 : 8*(align+len(b))/6]
}

// jsonString returns v as a JSON string, without its quotes.
func jsonString(v string, escapeHTML bool) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(escapeHTML)
	_ = enc.Encode(v) // a string always encodes
	s := buf.String()
	return s[1 : len(s)-2] // the quotes and the newline Encode adds
}
