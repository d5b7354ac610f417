package oci

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
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
// returns the registry's host:port.
func privateRegistry(t *testing.T, user, password string) string {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
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
	return strings.TrimPrefix(srv.URL, "http://")
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
	host := privateRegistry(t, "roam", "s3cret")
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
	// the credentials came from, or every file looked in.
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
		{"a wrong password in the second", []string{other, wrong, good}, []string{
			"refused (401 Unauthorized) the credentials for it in " + filepath.Join(wrong, "config.json") +
				" (the first in $ROAM_DOCKER_CONFIGS to have any)",
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
