package oci

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// privateRegistry serves go-containerregistry's in-process registry behind
// HTTP basic auth, as a private registry does: a request without user's
// password is answered 401 with a Basic challenge and distribution's error
// body; the user "outsider" authenticates but may read nothing (403). It
// returns the registry's host:port, and what counts its requests by the
// credentials they carried.
func privateRegistry(t *testing.T, user, password string) (string, *sent) {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	seen := &sent{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		seen.add(u, p)
		switch {
		case u == user && p == password:
			reg.ServeHTTP(w, r)
		case u == "outsider" && p == password && r.URL.Path != "/v2/":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`)
		case u == "outsider" && p == password:
			w.WriteHeader(http.StatusOK)
		default:
			w.Header().Set("WWW-Authenticate", `Basic realm="roam-test"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), seen
}

// tokenRegistry serves go-containerregistry's in-process registry as most
// public registries serve a private repository (Docker Hub, ghcr.io...):
// behind bearer tokens, which a token service at /token gives in exchange
// for user's password (and refuses, 401, to any other or to none). A
// refused password is then refused by the token service, not by the
// registry. It returns the registry's host:port, and what counts the token
// service's requests by the credentials they carried.
func tokenRegistry(t *testing.T, user, password string) (string, *sent) {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	seen := &sent{}
	const token = "roam-test-token"
	var realm string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/token" {
			u, p, _ := r.BasicAuth()
			seen.add(u, p)
			if u != user || p != password {
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"incorrect username or password"}]}`)
				return
			}
			io.WriteString(w, `{"token":"`+token+`"}`)
			return
		}
		if r.Header.Get("Authorization") == "Bearer "+token {
			reg.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`",service="roam-test",scope="repository:shop/inventory-wasm:pull"`)
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
	}))
	realm = srv.URL + "/token"
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), seen
}

// sent counts a test registry's requests by the credentials they carried,
// "user:password" ("" for none): which of several pull secrets a pull
// tried.
type sent struct {
	mu sync.Mutex
	n  map[string]int
}

func sentKey(user, password string) string {
	if user == "" && password == "" {
		return ""
	}
	return user + ":" + password
}

func (s *sent) add(user, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = map[string]int{}
	}
	s.n[sentKey(user, password)]++
}

// count is how many requests carried user:password since the last count
// of them.
func (s *sent) count(user, password string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.n[sentKey(user, password)]
	delete(s.n, sentKey(user, password))
	return n
}

// dockerConfig writes what the edge host sees of a pull secret: a
// directory whose config.json is the Secret's .dockerconfigjson, as
// kubectl create secret docker-registry writes it (an auths entry with
// username, password and their base64 auth). The directory is DOCKER_CONFIG.
func dockerConfig(t *testing.T, registry, user, password string) string {
	t.Helper()
	entry := map[string]string{"username": user, "password": password,
		"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))}
	b, err := json.Marshal(map[string]any{"auths": map[string]any{registry: entry}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o440); err != nil {
		t.Fatal(err)
	}
	return dir
}

// isolateCredentials hides the machine's credentials from the keychain:
// no ~/.docker/config.json, no Podman auth file, no DOCKER_CONFIG.
func isolateCredentials(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("REGISTRY_AUTH_FILE", "")
	t.Setenv("DOCKER_CONFIG", "")
	t.Setenv(EnvDockerConfigs, "")
}

// TestPullWasmPrivateRegistry is the edge host's pull of its module from a
// private registry: pushed as roam dist --push pushes it, refused without
// credentials or with wrong ones (the error says which registry, and what
// to do), pulled with a DOCKER_CONFIG laid out as roam manifests mounts
// the --pull-secret Secret.
func TestPullWasmPrivateRegistry(t *testing.T) {
	isolateCredentials(t)
	host, _ := privateRegistry(t, "roam", "s3cret")
	good := dockerConfig(t, host, "roam", "s3cret")

	wasm := append([]byte("\x00asm\x01\x00\x00\x00"), bytes.Repeat([]byte{7}, 64)...)
	art, err := WasmArtifact(wasm, "inventory.wasm", time.Unix(0, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	// A push without credentials, as roam dist --push makes it: the error
	// names the registry and docker login.
	_, err = Push(context.Background(), host+"/shop/inventory-wasm:v1", art)
	if err == nil || !strings.Contains(err.Error(), "registry "+host+" refused the push without credentials (401 Unauthorized)") ||
		!strings.Contains(err.Error(), "docker login "+host) {
		t.Errorf("push without credentials: %v", err)
	}
	t.Setenv("DOCKER_CONFIG", dockerConfig(t, host, "roam", "guess"))
	if _, err = Push(context.Background(), host+"/shop/inventory-wasm:v1", art); err == nil || !strings.Contains(err.Error(), "refused (401 Unauthorized) the credentials for it in ") {
		t.Errorf("push with a wrong password: %v", err)
	}
	t.Setenv("DOCKER_CONFIG", good)
	digest, err := Push(context.Background(), host+"/shop/inventory-wasm:v1", art)
	if err != nil {
		t.Fatalf("push with credentials: %v", err)
	}
	// The reference roam manifests gives the edge host: pinned by digest.
	ref := Scheme + host + "/shop/inventory-wasm@" + digest.String()

	for _, c := range []struct {
		name      string
		dockerDir string // "" leaves DOCKER_CONFIG unset
		want      []string
	}{
		{"no credentials", "", []string{
			"registry " + host + " refused the pull without credentials (401 Unauthorized)",
			filepath.Join(os.Getenv("HOME"), ".docker", "config.json") + " (DOCKER_CONFIG is not set) has none for " + host,
			"roam manifests --pull-secret", "spec.imagePullSecrets", "$DOCKER_CONFIG/config.json", "docker login " + host,
			"UNAUTHORIZED: authentication required",
		}},
		{"a pull secret for another registry", dockerConfig(t, "ghcr.io", "roam", "s3cret"), []string{
			"refused the pull without credentials (401 Unauthorized)", "($DOCKER_CONFIG/config.json) has none for " + host, "--pull-secret",
		}},
		{"a wrong password", dockerConfig(t, host, "roam", "guess"), []string{
			"registry " + host + " refused (401 Unauthorized) the credentials for it in ", "($DOCKER_CONFIG/config.json)",
			"check the user name and password or token", "--pull-secret", "that shop/inventory-wasm exists",
		}},
		{"credentials without access", dockerConfig(t, host, "outsider", "s3cret"), []string{
			"registry " + host + " denied the pull (403 Forbidden) to the credentials for it in ", "may not read shop/inventory-wasm",
			"DENIED: requested access to the resource is denied",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("DOCKER_CONFIG", c.dockerDir)
			_, err := PullWasm(context.Background(), ref, t.TempDir())
			if err == nil {
				t.Fatal("pulled from a private registry without valid credentials")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, ref+": ") {
				t.Errorf("the error does not start with the module reference %s: %s", ref, msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("the error does not say %q:\n%s", w, msg)
				}
			}
			if c.dockerDir != "" && !strings.Contains(msg, filepath.Join(c.dockerDir, "config.json")) {
				t.Errorf("the error does not name %s/config.json:\n%s", c.dockerDir, msg)
			}
			var te *transport.Error
			if !errors.As(err, &te) {
				t.Errorf("the registry's error is not wrapped: %T", err)
			}
			t.Log(msg)
		})
	}

	// Several pull secrets, as roam manifests mounts them: each in a
	// directory of its own, all listed in $ROAM_DOCKER_CONFIGS, which
	// DOCKER_CONFIG (the first's) does not override. Credentials for the
	// registry only in the second file are found; a refusal names the file
	// the credentials came from, or every file looked in. (Several files
	// with credentials for the registry: TestPullWasmTriesEachPullSecret.)
	other, wrong := dockerConfig(t, "ghcr.io", "roam", "s3cret"), dockerConfig(t, host, "roam", "guess")
	t.Setenv("DOCKER_CONFIG", other)
	for _, c := range []struct {
		name string
		dirs []string
		want []string
	}{
		{"pull secrets for other registries", []string{other, dockerConfig(t, "quay.io", "roam", "s3cret")}, []string{
			"refused the pull without credentials (401 Unauthorized): none of " + filepath.Join(other, "config.json") + ", ",
			"($ROAM_DOCKER_CONFIGS) has any for " + host, "$ROAM_DOCKER_CONFIGS, in order",
		}},
		{"a wrong password in the second", []string{other, wrong}, []string{
			"refused (401 Unauthorized) the credentials for it in " + filepath.Join(wrong, "config.json") + " ($ROAM_DOCKER_CONFIGS)",
			"check the user name and password or token",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(EnvDockerConfigs, strings.Join(c.dirs, string(filepath.ListSeparator)))
			_, err := PullWasm(context.Background(), ref, t.TempDir())
			if err == nil {
				t.Fatal("pulled from a private registry without valid credentials")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error does not say %q:\n%s", w, err)
				}
			}
			t.Log(err)
		})
	}
	t.Setenv(EnvDockerConfigs, other+string(filepath.ListSeparator)+good)
	if p, err := PullWasm(context.Background(), ref, t.TempDir()); err != nil || p.Manifest != digest {
		t.Fatalf("pull with the credentials in the second of $%s=%s: %+v, %v", EnvDockerConfigs, os.Getenv(EnvDockerConfigs), p, err)
	}
	t.Setenv(EnvDockerConfigs, "")

	// The pull secret as mounted: pulled, checked, cached.
	t.Setenv("DOCKER_CONFIG", good)
	cache := t.TempDir()
	p, err := PullWasm(context.Background(), ref, cache)
	if err != nil {
		t.Fatalf("pull with DOCKER_CONFIG=%s: %v", good, err)
	}
	if b, err := os.ReadFile(p.Path); err != nil || !bytes.Equal(b, wasm) || p.Manifest != digest || filepath.Base(p.Path) != "inventory.wasm" {
		t.Fatalf("pulled %+v: %v", p, err)
	}
	// A restarted edge host with the same cache (the pod's /data) needs
	// neither the registry nor credentials for a module pinned by digest.
	t.Setenv("DOCKER_CONFIG", "")
	if p, err := PullWasm(context.Background(), ref, cache); err != nil || !p.Cached {
		t.Fatalf("cached pull without credentials: %+v, %v", p, err)
	}
}

// TestPullWasmTriesEachPullSecret: with several pull secrets holding
// credentials for the registry, the edge host pulls as the kubelet does,
// with each in turn until the registry accepts one, so that a pull in the
// middle of a rotation, the Secret with the old password still listed
// first, succeeds. Only a refusal moves on to the next: a missing tag is
// not asked for again with other credentials. Both with a registry that
// checks a basic password itself and with one behind a token service
// (Docker Hub, ghcr.io...), where it is the token service that refuses.
func TestPullWasmTriesEachPullSecret(t *testing.T) {
	for _, kind := range []struct {
		name     string
		registry func(t *testing.T, user, password string) (string, *sent)
	}{{"basic auth", privateRegistry}, {"token service", tokenRegistry}} {
		t.Run(kind.name, func(t *testing.T) {
			isolateCredentials(t)
			host, seen := kind.registry(t, "roam", "s3cret")
			wasm := append([]byte("\x00asm\x01\x00\x00\x00"), bytes.Repeat([]byte{9}, 64)...)
			art, err := WasmArtifact(wasm, "inventory.wasm", time.Unix(0, 0), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Setenv("DOCKER_CONFIG", dockerConfig(t, host, "roam", "s3cret"))
			digest, err := Push(context.Background(), host+"/shop/inventory-wasm:v1", art)
			if err != nil {
				t.Fatal(err)
			}
			t.Setenv("DOCKER_CONFIG", "")
			ref := Scheme + host + "/shop/inventory-wasm@" + digest.String()
			other := dockerConfig(t, "ghcr.io", "roam", "s3cret")
			old := dockerConfig(t, host, "roam", "old-s3cret") // the Secret before the rotation
			current := dockerConfig(t, host, "roam", "s3cret")
			guess := dockerConfig(t, host, "roam", "guess")
			configs := func(dirs ...string) {
				t.Setenv(EnvDockerConfigs, strings.Join(dirs, string(filepath.ListSeparator)))
			}
			seen.count("roam", "s3cret")

			// The old Secret first: refused, then the current one pulls.
			configs(other, old, current)
			cache := t.TempDir()
			p, err := PullWasm(context.Background(), ref, cache)
			if err != nil || p.Manifest != digest {
				t.Fatalf("pull with the old password first and the current one second: %+v, %v", p, err)
			}
			if n, m := seen.count("roam", "old-s3cret"), seen.count("roam", "s3cret"); n == 0 || m == 0 {
				t.Errorf("the registry saw %d requests with the old password and %d with the current one; want both tried", n, m)
			}
			// ...and says so, for the host to log the stale Secret.
			if len(p.Refused) != 1 || !strings.Contains(p.Refused[0], filepath.Join(old, "config.json")) || !strings.Contains(p.Refused[0], "401") {
				t.Errorf("Refused = %q, want the old Secret's file and its 401", p.Refused)
			}
			// The module alone (its manifest cached): the same for the
			// module's request.
			if err := os.Remove(p.Path); err != nil {
				t.Fatal(err)
			}
			if p, err := PullWasm(context.Background(), ref, cache); err != nil || p.Cached {
				t.Fatalf("pull of the module alone, the old password first: %+v, %v", p, err)
			}
			if n := seen.count("roam", "old-s3cret"); n == 0 {
				t.Error("the module was fetched without trying the old password first")
			}

			// The current Secret first: the other is never sent.
			configs(current, old)
			if p, err := PullWasm(context.Background(), ref, t.TempDir()); err != nil || len(p.Refused) != 0 {
				t.Fatalf("pull with the current password first: %v, refused %q", err, p.Refused)
			}
			if n := seen.count("roam", "old-s3cret"); n != 0 {
				t.Errorf("the old password was sent %d times after the current one was accepted", n)
			}

			// Every one wrong: the error says which registry, how many
			// credentials it refused and from which files, and ends with
			// the last refusal. No anonymous pull follows them.
			seen.count("", "")
			configs(old, other, guess)
			_, err = PullWasm(context.Background(), ref, t.TempDir())
			if err == nil {
				t.Fatal("pulled with wrong passwords only")
			}
			for _, w := range []string{
				ref + ": registry " + host + " refused each of the 2 credentials for it in $" + EnvDockerConfigs + ", tried in turn: " +
					filepath.Join(old, "config.json") + " (401 Unauthorized); " + filepath.Join(guess, "config.json") + " (401 Unauthorized)",
				"--pull-secret", "the last refusal: ", "UNAUTHORIZED",
			} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error does not say %q:\n%s", w, err)
				}
			}
			var te *transport.Error
			if !errors.As(err, &te) || te.StatusCode != http.StatusUnauthorized {
				t.Errorf("the registry's refusal is not wrapped: %#v", err)
			}
			if n, m := seen.count("roam", "old-s3cret"), seen.count("roam", "guess"); n == 0 || m == 0 {
				t.Errorf("the registry saw %d requests with the old password and %d with the guess; want both tried", n, m)
			}
			if kind.name == "token service" {
				// (A basic auth registry's ping is always anonymous.)
				if n := seen.count("", ""); n != 0 {
					t.Errorf("%d anonymous token requests after both pull secrets were refused; the kubelet makes none", n)
				}
			}
			t.Log(err)

			// A missing tag, the first credentials accepted: not found,
			// and not asked for again with the second.
			configs(current, old)
			_, err = PullWasm(context.Background(), Scheme+host+"/shop/inventory-wasm:missing", t.TempDir())
			if !errors.As(err, &te) || te.StatusCode != http.StatusNotFound || strings.Contains(err.Error(), "refused") {
				t.Errorf("pull of a missing tag: %v, want the registry's 404 as it is", err)
			}
			if n, m := seen.count("roam", "s3cret"), seen.count("roam", "old-s3cret"); n == 0 || m != 0 {
				t.Errorf("a missing tag: the registry saw %d requests with the current password and %d with the old; want the current only", n, m)
			}
			t.Log(err)
		})
	}
}

// TestCredentialsOrder: the credentials a pull tries, in the order the
// kubelet would: an entry for the repository before one for the registry,
// the files in their order, the same credentials once (naming every file
// that holds them), and anonymous only when no file has any.
func TestCredentialsOrder(t *testing.T) {
	isolateCredentials(t)
	const reg = "registry-a.example"
	a := dockerConfig(t, reg, "alice", "pa")
	b := dockerConfig(t, reg+"/shop/inventory-wasm", "bob", "pb")
	copyOfA := dockerConfig(t, reg, "alice", "pa")
	c := dockerConfig(t, reg, "carol", "pc")
	other := dockerConfig(t, "registry-b.example", "dave", "pd")
	t.Setenv(EnvDockerConfigs, strings.Join([]string{a, other, b, copyOfA, c}, string(filepath.ListSeparator)))
	repo, err := name.NewRepository(reg + "/shop/inventory-wasm")
	if err != nil {
		t.Fatal(err)
	}
	creds, err := credentials(repo)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, cr := range creds {
		cfg, err := cr.auth.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, cfg.Username+" in "+cr.where())
	}
	in := func(dirs ...string) string {
		var fs []string
		for _, d := range dirs {
			fs = append(fs, filepath.Join(d, "config.json"))
		}
		return strings.Join(fs, ", ") + " ($" + EnvDockerConfigs + ")"
	}
	want := []string{"bob in " + in(b), "alice in " + in(a, copyOfA), "carol in " + in(c)}
	if !slices.Equal(got, want) {
		t.Errorf("credentials for %s:\n%s\nwant\n%s", repo, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	repo, _ = name.NewRepository("registry-c.example/shop")
	creds, err = credentials(repo)
	if err != nil || len(creds) != 1 || creds[0].auth != authn.Anonymous || len(creds[0].files) != 5 {
		t.Errorf("credentials for a registry no file has: %+v, %v; want anonymous alone, naming the 5 files", creds, err)
	}
}

// TestRefusedBy: what moves a pull on to the next credentials is the
// registry refusing them, by its status or by its error code; nothing
// else.
func TestRefusedBy(t *testing.T) {
	diag := func(status int, code transport.ErrorCode) error {
		return fmt.Errorf("GET manifest: %w", &transport.Error{StatusCode: status, Errors: []transport.Diagnostic{{Code: code}}})
	}
	// A token service's answer, as ggcr turns it into an error.
	token := func(method string, status int, body string) error {
		req, _ := http.NewRequest(method, "https://auth.example/token", nil)
		return transport.CheckError(&http.Response{StatusCode: status, Request: req, Body: io.NopCloser(strings.NewReader(body))}, http.StatusOK)
	}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{token(http.MethodPost, http.StatusBadRequest, `{"error":"invalid_grant","error_description":"token expired"}`), true},
		{token(http.MethodPost, http.StatusBadRequest, `{"error": "invalid_client"}`), true},
		{token(http.MethodPost, http.StatusBadRequest, `{"error":"invalid_scope"}`), false},
		{token(http.MethodPost, http.StatusBadRequest, `not json, invalid_grant`), false},
		{token(http.MethodGet, http.StatusBadRequest, `{"error":"invalid_grant"}`), false},
		{diag(http.StatusUnauthorized, transport.UnauthorizedErrorCode), true},
		{&transport.Error{StatusCode: http.StatusForbidden}, true},
		{diag(http.StatusBadRequest, transport.DeniedErrorCode), true},
		{diag(http.StatusNotFound, transport.ManifestUnknownErrorCode), false},
		{diag(http.StatusTooManyRequests, transport.TooManyRequestsErrorCode), false},
		{&transport.Error{StatusCode: http.StatusBadGateway}, false},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, false},
		{errors.New("manifest digest mismatch"), false},
	} {
		if _, got := refusedBy(c.err); got != c.want {
			t.Errorf("refusedBy(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestKeychainDockerConfigs: with $ROAM_DOCKER_CONFIGS, credentials come
// from each listed directory's config.json, the first with any for a
// registry winning; a registry in none of them gets none, and so does every
// registry when the variable lists nothing. DOCKER_CONFIG is not read then.
func TestKeychainDockerConfigs(t *testing.T) {
	isolateCredentials(t)
	a := dockerConfig(t, "registry-a.example", "alice", "pa")
	b := dockerConfig(t, "registry-b.example", "bob", "pb")
	both := dockerConfig(t, "registry-a.example", "mallory", "pm") // a's registry again, listed last
	missing := filepath.Join(t.TempDir(), "no-such-secret")
	t.Setenv("DOCKER_CONFIG", dockerConfig(t, "registry-c.example", "carol", "pc"))
	t.Setenv(EnvDockerConfigs, strings.Join([]string{a, "", missing, b, both}, string(filepath.ListSeparator)))

	for reg, want := range map[string]string{
		"registry-a.example": "alice:pa",
		"registry-b.example": "bob:pb",
		"registry-c.example": "", // only in DOCKER_CONFIG
		"index.docker.io":    "",
	} {
		repo, err := name.NewRepository(reg + "/shop/inventory-wasm")
		if err != nil {
			t.Fatal(err)
		}
		auth, err := keychain().Resolve(repo)
		if err != nil {
			t.Fatalf("%s: %v", reg, err)
		}
		got := ""
		if auth != authn.Anonymous {
			cfg, err := auth.Authorization()
			if err != nil {
				t.Fatal(err)
			}
			got = cfg.Username + ":" + cfg.Password
		}
		if got != want {
			t.Errorf("%s: credentials %q, want %q", reg, got, want)
		}
	}

	// A malformed file is an error that names it.
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "config.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvDockerConfigs, bad)
	repo, _ := name.NewRepository("registry-a.example/shop")
	if _, err := keychain().Resolve(repo); err == nil || !strings.Contains(err.Error(), filepath.Join(bad, "config.json")) {
		t.Errorf("malformed config.json: %v, want an error naming it", err)
	}
	// Unset, the default keychain reads DOCKER_CONFIG as before.
	t.Setenv(EnvDockerConfigs, "")
	if keychain() != authn.DefaultKeychain {
		t.Error("without $" + EnvDockerConfigs + ", not the default keychain")
	}
}
