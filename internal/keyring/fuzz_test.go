package keyring_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/keyring"
)

// FuzzFromEnv fuzzes the master keys a server reads from CONVEYOR_MASTER_KEY: no value
// makes it panic, a ring it accepts has a current key among its IDs, and no error quotes the
// key material of an entry.
func FuzzFromEnv(f *testing.F) {
	k1 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, keyring.KeySize))
	k2 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, keyring.KeySize))
	for _, seed := range []string{
		"k1:" + k1, "k1:" + k1 + ",k2:" + k2, "k1:" + k1 + "\nk2:" + k2 + "\n", " k1 : " + k1 + " ",
		"# comment\nk1:" + k1, "k1:" + k1 + ",k1:" + k2, "k1:" + k1[:20], "k1" + k1, ":" + k1,
		"bad id!:" + k1, strings.Repeat("i", 65) + ":" + k1, "", ",,,", "k1:" + k1 + "==",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		ring, err := keyring.FromEnv(value)
		if err == nil {
			ids := ring.IDs()
			if len(ids) == 0 || !strings.Contains(strings.Join(ids, "\n")+"\n", ring.CurrentID()+"\n") {
				t.Fatalf("ring of %q: current %q not among %q", value, ring.CurrentID(), ids)
			}
			return
		}
		entries := strings.FieldsFunc(value, func(c rune) bool { return c == '\n' || c == ',' })
		var ids strings.Builder // every ID as an error may quote it, escapes and all
		for _, entry := range entries {
			id, _, _ := strings.Cut(entry, ":")
			ids.WriteString(strconv.Quote(id) + "\n")
		}
		for _, entry := range entries {
			id, material, ok := strings.Cut(entry, ":")
			material = strings.TrimSpace(material)
			if !ok || len(material) < 12 || strings.Count(value, material) > 1 || strings.Contains(id, material) ||
				strings.Contains(ids.String(), material) ||
				strings.Contains(keyring.EnvVar, material) {
				continue // too short to tell, or the same text also appears where an error may quote it
			}
			if strings.Contains(err.Error(), material) {
				t.Fatalf("the error quotes key material %q: %v", material, err)
			}
		}
	})
}

// FuzzOpen fuzzes the sealed values Open reads back from the store: none makes it panic,
// every failure wraps ErrIntegrity or ErrUnknownKey, and only what was sealed opens (with this
// key, only "the value" ever is).
func FuzzOpen(f *testing.F) {
	ring, err := keyring.FromEnv("k1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{3}, keyring.KeySize)))
	if err != nil {
		f.Fatal(err)
	}
	aad := []byte("global/token")
	sealed, err := ring.Seal([]byte("the value"), aad)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add(sealed[:len(sealed)-1])
	f.Add(append(bytes.Clone(sealed), 0))
	f.Add([]byte{1, 0, 0})
	f.Add([]byte{1, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		plain, err := ring.Open(in, aad)
		switch {
		case err == nil && string(plain) != "the value": // each fuzz worker seals its own copy
			t.Fatalf("opened a value that was never sealed: %x → %q", in, plain)
		case err != nil && !errors.Is(err, keyring.ErrIntegrity) && !errors.Is(err, keyring.ErrUnknownKey):
			t.Fatalf("error %v wraps neither ErrIntegrity nor ErrUnknownKey", err)
		}
	})
}
