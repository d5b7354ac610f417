package oci

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// refusal is a registry's 401 or 403 of a request for ref, with what the
// keychain holds for that registry.
type refusal struct {
	reg, status, file string
	te                *transport.Error
	anonymous         bool
	kerr              error
}

// refused reports whether err is a registry's 401 or 403 and, if so, what
// explains it.
func refused(ref name.Reference, err error) (refusal, bool) {
	var te *transport.Error
	if !errors.As(err, &te) || (te.StatusCode != http.StatusUnauthorized && te.StatusCode != http.StatusForbidden) {
		return refusal{}, false
	}
	auth, kerr := authn.DefaultKeychain.Resolve(ref.Context())
	return refusal{reg: ref.Context().RegistryStr(), status: fmt.Sprintf("%d %s", te.StatusCode, http.StatusText(te.StatusCode)),
		file: credentialsFile(), te: te, anonymous: auth == authn.Anonymous, kerr: kerr}, true
}

// pushAuthError explains a registry's refusal (401 or 403) of a push to
// ref (roam dist --push): which registry, whether credentials for it were
// found and where, and docker login. Any other error is returned as it is.
func pushAuthError(ref name.Reference, err error) error {
	r, ok := refused(ref, err)
	switch {
	case !ok:
		return err
	case r.kerr != nil:
		return fmt.Errorf("registry %s refused the push (%s), and the credentials in %s cannot be read: %v: %w", r.reg, r.status, r.file, r.kerr, err)
	case r.anonymous:
		return fmt.Errorf("registry %s refused the push without credentials (%s): %s has none for %s; docker login %s (or set DOCKER_CONFIG to a directory whose config.json has them): %w",
			r.reg, r.status, r.file, r.reg, r.reg, err)
	case r.te.StatusCode == http.StatusForbidden:
		return fmt.Errorf("registry %s denied the push (%s) to the credentials for it in %s: they may not write %s: %w",
			r.reg, r.status, r.file, ref.Context().RepositoryStr(), err)
	default:
		return fmt.Errorf("registry %s refused (%s) the credentials for it in %s: check the user name and password or token (docker login %s again): %w",
			r.reg, r.status, r.file, r.reg, err)
	}
}

// authError explains a registry's refusal (401 or 403) of a pull of ref:
// which registry refused, whether credentials for it were found, where they
// are looked for, and how to give them (roam manifests --pull-secret on
// Kubernetes, docker login elsewhere). Any other error is returned as it
// is. The registry's own message follows.
func authError(ref name.Reference, err error) error {
	r, ok := refused(ref, err)
	switch {
	case !ok:
		return err
	case r.kerr != nil:
		return fmt.Errorf("registry %s refused the pull (%s), and the credentials in %s cannot be read: %v: %w", r.reg, r.status, r.file, r.kerr, err)
	case r.anonymous:
		return fmt.Errorf("registry %s refused the pull without credentials (%s): %s has none for %s. "+
			"On Kubernetes, name a kubernetes.io/dockerconfigjson Secret with an auths entry for %s in roam manifests --pull-secret "+
			"(RoamApp spec.imagePullSecrets), which the edge host reads as $DOCKER_CONFIG/config.json; elsewhere, docker login %s or set DOCKER_CONFIG: %w",
			r.reg, r.status, r.file, r.reg, r.reg, r.reg, err)
	case r.te.StatusCode == http.StatusForbidden:
		return fmt.Errorf("registry %s denied the pull (%s) to the credentials for it in %s: they may not read %s: %w",
			r.reg, r.status, r.file, ref.Context().RepositoryStr(), err)
	default:
		return fmt.Errorf("registry %s refused (%s) the credentials for it in %s: check the user name and password or token of its auths entry "+
			"(on Kubernetes, in the Secret of roam manifests --pull-secret), and that %s exists (some registries answer 401 for a repository they do not have): %w",
			r.reg, r.status, r.file, ref.Context().RepositoryStr(), err)
	}
}

// credentialsFile is where authn.DefaultKeychain reads credentials from:
// $DOCKER_CONFIG/config.json, else ~/.docker/config.json, else Podman's
// $REGISTRY_AUTH_FILE.
func credentialsFile() string {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json") + " ($DOCKER_CONFIG/config.json)"
	}
	f := "~/.docker/config.json"
	if home, err := os.UserHomeDir(); err == nil {
		f = filepath.Join(home, ".docker", "config.json")
	}
	if _, err := os.Stat(f); err != nil {
		if p := os.Getenv("REGISTRY_AUTH_FILE"); p != "" {
			return p + " ($REGISTRY_AUTH_FILE)"
		}
	}
	return f + " (DOCKER_CONFIG is not set)"
}
