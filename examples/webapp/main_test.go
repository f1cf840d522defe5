package main

import "testing"

func TestGreeting(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{"", "hello, world (webapp dev)"},
		{"Ada", "hello, Ada (webapp dev)"},
	} {
		if got := greeting(c.name); got != c.want {
			t.Errorf("greeting(%q) = %q, want %q", c.name, got, c.want)
		}
	}
}
