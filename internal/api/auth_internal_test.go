package api

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/conveyorci/conveyor/internal/store"
)

func TestAuthorize(t *testing.T) {
	t.Parallel()
	g := func(role Role, pipeline string) *store.Grant {
		return &store.Grant{User: "u", Role: string(role), Pipeline: pipeline}
	}
	type ask struct {
		need     Role
		pipeline string
		want     bool
	}
	for _, tt := range []struct {
		name   string
		grants []*store.Grant
		asks   []ask
	}{
		{"no grants", nil, []ask{
			{RoleViewer, "p", false}, {RoleViewer, "", false}, {RoleAdmin, "p", false},
		}},
		{"viewer of p", []*store.Grant{g(RoleViewer, "p")}, []ask{
			{RoleViewer, "p", true}, {RoleOperator, "p", false}, {RoleApprover, "p", false}, {RoleAdmin, "p", false},
			{RoleViewer, "q", false}, {RoleViewer, "", false},
		}},
		{"operator of p", []*store.Grant{g(RoleOperator, "p")}, []ask{
			{RoleViewer, "p", true}, {RoleOperator, "p", true}, {RoleApprover, "p", false}, {RoleAdmin, "p", false},
			{RoleOperator, "q", false},
		}},
		{"approver of p", []*store.Grant{g(RoleApprover, "p")}, []ask{
			{RoleViewer, "p", true}, {RoleOperator, "p", false}, {RoleApprover, "p", true}, {RoleAdmin, "p", false},
		}},
		{"operator and approver of p", []*store.Grant{g(RoleOperator, "p"), g(RoleApprover, "p")}, []ask{
			{RoleOperator, "p", true}, {RoleApprover, "p", true}, {RoleAdmin, "p", false},
		}},
		{"admin of p", []*store.Grant{g(RoleAdmin, "p")}, []ask{
			{RoleViewer, "p", true}, {RoleOperator, "p", true}, {RoleApprover, "p", true}, {RoleAdmin, "p", true},
			{RoleViewer, "q", false}, {RoleAdmin, "", false},
		}},
		{"global viewer", []*store.Grant{g(RoleViewer, "")}, []ask{
			{RoleViewer, "p", true}, {RoleViewer, "q", true}, {RoleViewer, "", true}, {RoleOperator, "p", false},
		}},
		{"global admin", []*store.Grant{g(RoleAdmin, "")}, []ask{
			{RoleAdmin, "", true}, {RoleAdmin, "p", true}, {RoleApprover, "q", true}, {RoleViewer, "", true},
		}},
		{"global viewer and operator of p", []*store.Grant{g(RoleViewer, ""), g(RoleOperator, "p")}, []ask{
			{RoleOperator, "p", true}, {RoleOperator, "q", false}, {RoleViewer, "q", true}, {RoleOperator, "", false},
		}},
		{"unknown role", []*store.Grant{g("root", "")}, []ask{
			{RoleViewer, "p", false}, {"root", "p", false},
		}},
	} {
		for _, a := range tt.asks {
			if got := authorize(tt.grants, a.need, a.pipeline); got != a.want {
				t.Errorf("%s: authorize(%s on %q) = %v, want %v", tt.name, a.need, a.pipeline, got, a.want)
			}
		}
	}
	if authorizeSome(nil, RoleViewer) || !authorizeSome([]*store.Grant{g(RoleViewer, "q")}, RoleViewer) ||
		authorizeSome([]*store.Grant{g(RoleViewer, "q")}, RoleOperator) {
		t.Errorf("authorizeSome")
	}
}

// cheap are parameters fast enough for tests of the format.
var cheap = argonParams{memory: 64, time: 1, threads: 1}

func TestPasswordHash(t *testing.T) {
	t.Parallel()
	for _, p := range []argonParams{cheap, defaultArgon} {
		h := hashPassword("correct horse battery staple", p)
		if !strings.HasPrefix(h, "$argon2id$v=19$m=") {
			t.Fatalf("hash %q: not a PHC argon2id string", h)
		}
		got, _, _, err := parsePHC(h)
		if err != nil || got != p {
			t.Fatalf("parse %q: %+v, %v; want %+v", h, got, err, p)
		}
		if ok, err := checkPassword("correct horse battery staple", h); !ok || err != nil {
			t.Fatalf("the right password: %v, %v", ok, err)
		}
		for _, wrong := range []string{"", "correct horse battery stapl", "Correct horse battery staple"} {
			if ok, err := checkPassword(wrong, h); ok || err != nil {
				t.Fatalf("wrong password %q: %v, %v", wrong, ok, err)
			}
		}
	}
	// A new salt each time.
	if hashPassword("pw", cheap) == hashPassword("pw", cheap) {
		t.Fatalf("two hashes of one password are equal")
	}
	// The key is argon2id's over the salt stored, with the parameters stored.
	h := hashPassword("pw", cheap)
	p, salt, key, err := parsePHC(h)
	if err != nil {
		t.Fatal(err)
	}
	if want := argon2.IDKey([]byte("pw"), salt, p.time, p.memory, p.threads, keyLen); !bytes.Equal(key, want) || len(salt) != saltLen {
		t.Fatalf("key %x, want %x (salt %d bytes)", key, want, len(salt))
	}
}

func TestPasswordBadHash(t *testing.T) {
	t.Parallel()
	good := hashPassword("pw", cheap)
	parts := strings.Split(good, "$")
	salt, key := parts[4], parts[5]
	for _, bad := range []string{
		"",
		"plain",
		"$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1,x=2$" + salt + "$" + key,
		"$argon2id$v=19$m=-1,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key,
		"$argon2id$v=19$m=4,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=99999999,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=99,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$",
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "=$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "$",
		"$argon2id$v=19$m=64,t=1,p=1$not base64!$" + key,
		"argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key,
	} {
		if _, _, _, err := parsePHC(bad); !errors.Is(err, errBadHash) {
			t.Errorf("parse %q: %v, want errBadHash", bad, err)
		}
		if ok, err := checkPassword("pw", bad); ok || !errors.Is(err, errBadHash) {
			t.Errorf("check against %q: %v, %v", bad, ok, err)
		}
	}
}

func FuzzParsePHC(f *testing.F) {
	f.Add(hashPassword("pw", cheap))
	f.Add("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, key, err := parsePHC(s)
		if err != nil {
			return
		}
		if p.memory > 1<<20 || p.time > 16 || p.threads > 64 || len(salt) < 8 || len(key) < 16 {
			t.Fatalf("accepted %q: %+v", s, p)
		}
	})
}

func TestLimiter(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	l := newLimiter(3, time.Minute)
	for i := range 3 {
		if d := l.wait(at(i), "a", "u"); d != 0 {
			t.Fatalf("failure %d: refused for %v before the limit", i, d)
		}
		l.fail(at(i), "a", "u")
	}
	// Three failures at 0, 1, 2 s: refused until the first leaves the minute.
	if d := l.wait(at(10), "a"); d != 50*time.Second {
		t.Fatalf("after 3 failures: wait %v, want 50s", d)
	}
	if d := l.wait(at(10), "other", "u"); d != 50*time.Second {
		t.Fatalf("any key refused refuses: wait %v", d)
	}
	if d := l.wait(at(59), "a"); d != time.Second {
		t.Fatalf("at 59s: wait %v, want 1s", d)
	}
	if d := l.wait(at(60), "a"); d != 0 {
		t.Fatalf("at 60s: wait %v, want 0", d)
	}
	l.reset("u")
	if d := l.wait(at(10), "u"); d != 0 {
		t.Fatalf("after reset: wait %v", d)
	}
	// Keys are bounded: stale ones are forgotten when the map is full.
	for i := range limiterKeys {
		l.fail(at(100), string(rune('A'+i%26))+time.Duration(i).String())
	}
	l.fail(at(200), "fresh")
	l.mu.Lock()
	n := len(l.fails)
	l.mu.Unlock()
	if n > limiterKeys {
		t.Fatalf("%d keys kept, want at most %d", n, limiterKeys)
	}
	if d := l.wait(at(200), "fresh"); d != 0 {
		t.Fatalf("one failure refused: %v", d)
	}
}
