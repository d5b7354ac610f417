package host

import "testing"

// TestOriginDefaultPort: an allowed origin written with its scheme's own
// port matches the browser's Origin, which never spells that port; other
// ports still do not.
func TestOriginDefaultPort(t *testing.T) {
	for _, c := range []struct {
		allowed, origin string
		want            bool
	}{
		{"https://shop.example:443", "https://shop.example", true},
		{"HTTPS://shop.example:443/", "https://shop.example", true},
		{"http://shop.example:80", "http://shop.example", true},
		{"https://shop.example:80", "https://shop.example", false},
		{"http://shop.example:443", "http://shop.example", false},
		{"https://shop.example:8443", "https://shop.example", false},
		{"https://shop.example", "https://shop.example:443", false},
	} {
		if got := originAllowed([]string{c.allowed}, c.origin); got != c.want {
			t.Errorf("originAllowed(%q, %q) = %v, want %v", c.allowed, c.origin, got, c.want)
		}
	}
}
