package e2e_test

import (
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCLIErrors checks that the mistakes a user makes first end roam with a
// non-zero status and a message that says what to do.
func TestCLIErrors(t *testing.T) {
	t.Parallel()
	// runFails runs roam, expects a non-zero exit, and returns its output.
	runFails := func(t *testing.T, args ...string) string {
		t.Helper()
		p, _ := startRoam(t, args...)
		code := p.exitedWithin(readyTimeout)
		out := p.out.String()
		if code == 0 {
			t.Fatalf("roam %s exited 0; output:\n%s", strings.Join(args, " "), out)
		}
		if strings.Contains(out, "roam: ready on") {
			t.Fatalf("roam %s got ready before failing; output:\n%s", strings.Join(args, " "), out)
		}
		return out
	}

	t.Run("port_in_use", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		out := runFails(t, append([]string{"run"}, append(shopAndConformance, "--port", port, "--data-dir", t.TempDir())...)...)
		for _, want := range []string{"port " + port, "in use", "--port"} {
			if !strings.Contains(out, want) {
				t.Errorf("output does not mention %q:\n%s", want, out)
			}
		}
	})

	t.Run("no_apps", func(t *testing.T) {
		t.Parallel()
		out := runFails(t, "run", "./sdk", "--port", "0", "--data-dir", t.TempDir())
		for _, want := range []string{"no Roam apps", "./sdk", "sdk.NewApp"} {
			if !strings.Contains(out, want) {
				t.Errorf("output does not mention %q:\n%s", want, out)
			}
		}
	})

	t.Run("no_handlers", func(t *testing.T) {
		t.Parallel()
		out := runFails(t, "run", "./e2e/internal/emptyapp", "--port", "0", "--data-dir", t.TempDir())
		for _, want := range []string{"emptyapp", "registers no handlers", "sdk.Handle"} {
			if !strings.Contains(out, want) {
				t.Errorf("output does not mention %q:\n%s", want, out)
			}
		}
	})

	t.Run("not_a_package", func(t *testing.T) {
		t.Parallel()
		out := runFails(t, "run", "./no/such/dir", "--port", "0", "--data-dir", t.TempDir())
		if !strings.Contains(out, "no/such/dir") {
			t.Errorf("output does not name the missing directory:\n%s", out)
		}
	})

	t.Run("version", func(t *testing.T) {
		t.Parallel()
		p, _ := startRoam(t, "version")
		if code := p.exitedWithin(30 * time.Second); code != 0 {
			t.Fatalf("roam version exited %d; output:\n%s", code, p.out)
		}
		re := regexp.MustCompile(`^roam \S+ go\d+\.\d+\S* \w+/\w+\n$`)
		if out := p.out.String(); !re.MatchString(out) {
			t.Fatalf("roam version printed %q, want a line matching %s", out, re)
		}
	})
}
