package registry

import "testing"

// FuzzNormalizeInsecureRegistries: no input panics, and what is accepted is accepted again unchanged.
func FuzzNormalizeInsecureRegistries(f *testing.F) {
	for _, s := range []string{"127.0.0.1:5000", "10.0.0.0/8", "registry.local", "http://x", "[::1]:5000", "a/b", "", "::1/128"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := NormalizeInsecureRegistries([]string{s})
		if err != nil {
			return
		}
		again, err := NormalizeInsecureRegistries(out)
		if err != nil || len(again) != len(out) {
			t.Fatalf("%q → %q → %q, %v", s, out, again, err)
		}
		for i := range out {
			if again[i] != out[i] {
				t.Fatalf("%q → %q → %q", s, out, again)
			}
		}
	})
}
