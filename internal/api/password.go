package api

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Passwords are kept as argon2id hashes in the PHC string format, with their parameters, so
// that the parameters can be raised later without breaking the hashes stored:
//
//	$argon2id$v=19$m=19456,t=2,p=1$SALT$KEY   (SALT and KEY: base64, standard, no padding)

// argonParams are the argon2id cost parameters: memory in KiB, passes, lanes.
type argonParams struct {
	memory  uint32
	time    uint32
	threads uint8
}

// defaultArgon are OWASP's recommended minimum for argon2id (19 MiB, 2 passes, 1 lane):
// about 20 ms a hash, so that sign-ins in parallel do not exhaust the server's memory.
var defaultArgon = argonParams{memory: 19 * 1024, time: 2, threads: 1}

const (
	saltLen = 16
	keyLen  = 32
	// maxPassword bounds a password's length in bytes (argon2 takes any, a request should not).
	maxPassword = 1024
	// minPassword is the shortest password accepted.
	minPassword = 8
)

// errBadHash is returned for a stored hash that is not an argon2id PHC string this package
// can check.
var errBadHash = errors.New("not an argon2id PHC string")

// hashPassword returns the PHC string of password with a new random salt.
func hashPassword(password string, p argonParams) string {
	salt := make([]byte, saltLen)
	rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, p.time, p.memory, p.threads, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// checkPassword reports whether password matches the PHC string hash, comparing the derived
// keys in constant time. A malformed hash is an error wrapping errBadHash.
func checkPassword(password, hash string) (bool, error) {
	p, salt, key, err := parsePHC(hash)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.time, p.memory, p.threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// parsePHC reads an argon2id PHC string. It refuses parameters no hash of this package has,
// and costs a hash could be abused with (memory over 1 GiB, over 16 passes or 64 lanes).
func parsePHC(s string) (argonParams, []byte, []byte, error) {
	var p argonParams
	bad := func(format string, args ...any) (argonParams, []byte, []byte, error) {
		return p, nil, nil, fmt.Errorf("%w: %s", errBadHash, fmt.Sprintf(format, args...))
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return bad("want $argon2id$v=19$m=M,t=T,p=P$SALT$KEY")
	}
	if parts[1] != "argon2id" {
		return bad("algorithm %q", parts[1])
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return bad("version %q, want v=%d", parts[2], argon2.Version)
	}
	var m, t, lanes uint64
	for i, kv := range strings.Split(parts[3], ",") {
		name, val, ok := strings.Cut(kv, "=")
		want := [...]string{"m", "t", "p"}
		if !ok || i >= len(want) || name != want[i] {
			return bad("parameters %q, want m=M,t=T,p=P", parts[3])
		}
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return bad("parameter %s=%q", name, val)
		}
		switch name {
		case "m":
			m = n
		case "t":
			t = n
		case "p":
			lanes = n
		}
	}
	switch {
	case lanes < 1 || lanes > 64:
		return bad("p=%d, want 1 to 64", lanes)
	case t < 1 || t > 16:
		return bad("t=%d, want 1 to 16", t)
	case m < 8*lanes || m > 1<<20:
		return bad("m=%d, want %d to %d KiB", m, 8*lanes, 1<<20)
	}
	b64 := base64.RawStdEncoding.Strict()
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 || len(salt) > 64 {
		return bad("salt: want 8 to 64 bytes of unpadded base64")
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return bad("key: want 16 to 64 bytes of unpadded base64")
	}
	return argonParams{memory: uint32(m), time: uint32(t), threads: uint8(lanes)}, salt, key, nil
}
