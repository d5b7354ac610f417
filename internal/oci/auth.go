package oci

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// EnvDockerConfigs lists docker config directories, separated as PATH is
// (by ':'), whose config.json files all hold registry credentials. It is
// how an edge host on Kubernetes gets every pull secret of its RoamApp:
// each is mounted in a directory of its own (a Secret's key is always
// .dockerconfigjson, and Kubernetes merges no two Secrets into one file),
// and DOCKER_CONFIG names one directory only.
//
// When it is set, the files are consulted in order and the first that has
// credentials for a registry gives them: DOCKER_CONFIG, ~/.docker and
// Podman's auth file are not read. Unset, credentials come from
// go-containerregistry's default keychain, as docker reads them.
const EnvDockerConfigs = "ROAM_DOCKER_CONFIGS"

// configDirs are the directories of $ROAM_DOCKER_CONFIGS, empty entries
// left out (an empty one would mean docker's default directory).
func configDirs() []string {
	var dirs []string
	for _, d := range filepath.SplitList(os.Getenv(EnvDockerConfigs)) {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// keychain is where every registry call finds its credentials: the
// config.json of each directory of $ROAM_DOCKER_CONFIGS, first match wins,
// or else the default keychain.
func keychain() authn.Keychain {
	dirs := configDirs()
	if len(dirs) == 0 {
		return authn.DefaultKeychain
	}
	kcs := make([]authn.Keychain, len(dirs))
	for i, d := range dirs {
		kcs[i] = dirKeychain(d)
	}
	return authn.NewMultiKeychain(kcs...)
}

// dirKeychain holds the credentials of DIR/config.json alone, looked up as
// the default keychain looks them up in $DOCKER_CONFIG/config.json: by
// repository, then by registry. A missing file holds none; a malformed one
// is an error that names it.
type dirKeychain string

func (d dirKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	cf, err := config.Load(string(d))
	if err != nil {
		return nil, err
	}
	for _, key := range []string{target.String(), target.RegistryStr()} {
		if key == name.DefaultRegistry {
			key = authn.DefaultAuthKey
		}
		cfg, err := cf.GetAuthConfig(key)
		if err != nil {
			return nil, err
		}
		// GetAuthConfig fills in ServerAddress even when it found nothing.
		cfg.ServerAddress = ""
		if cfg != (types.AuthConfig{}) {
			return authn.FromConfig(authn.AuthConfig{Username: cfg.Username, Password: cfg.Password, Auth: cfg.Auth,
				IdentityToken: cfg.IdentityToken, RegistryToken: cfg.RegistryToken}), nil
		}
	}
	return authn.Anonymous, nil
}

// refusal is a registry's 401 or 403 of a request for ref, with what the
// keychain holds for that registry.
type refusal struct {
	reg, status string
	// file is where the credentials sent came from, or, when none were
	// sent (anonymous), where they were looked for; many says it lists
	// more than one file.
	file      string
	many      bool
	te        *transport.Error
	anonymous bool
	kerr      error
}

// refused reports whether err is a registry's 401 or 403 and, if so, what
// explains it.
func refused(ref name.Reference, err error) (refusal, bool) {
	var te *transport.Error
	if !errors.As(err, &te) || (te.StatusCode != http.StatusUnauthorized && te.StatusCode != http.StatusForbidden) {
		return refusal{}, false
	}
	r := refusal{reg: ref.Context().RegistryStr(), status: fmt.Sprintf("%d %s", te.StatusCode, http.StatusText(te.StatusCode)), te: te}
	dirs := configDirs()
	if len(dirs) == 0 {
		auth, kerr := authn.DefaultKeychain.Resolve(ref.Context())
		r.file, r.anonymous, r.kerr = credentialsFile(), auth == authn.Anonymous, kerr
		return r, true
	}
	// As keychain resolves: the first file with credentials for the
	// registry gave the ones sent.
	files := make([]string, len(dirs))
	for i, d := range dirs {
		files[i] = filepath.Join(d, "config.json")
		auth, kerr := dirKeychain(d).Resolve(ref.Context())
		if kerr != nil || auth != authn.Anonymous {
			r.file, r.kerr = files[i]+" (the first in $"+EnvDockerConfigs+" to have any)", kerr
			return r, true
		}
	}
	r.file, r.many, r.anonymous = strings.Join(files, ", ")+" ($"+EnvDockerConfigs+")", len(files) > 1, true
	return r, true
}

// none says that no credentials for the registry were found, and where.
func (r refusal) none() string {
	if r.many {
		return "none of " + r.file + " has any for " + r.reg
	}
	return r.file + " has none for " + r.reg
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
		return fmt.Errorf("registry %s refused the push without credentials (%s): %s; docker login %s (or set DOCKER_CONFIG to a directory whose config.json has them): %w",
			r.reg, r.status, r.none(), r.reg, err)
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
		return fmt.Errorf("registry %s refused the pull without credentials (%s): %s. "+
			"On Kubernetes, name a kubernetes.io/dockerconfigjson Secret with an auths entry for %s in roam manifests --pull-secret "+
			"(RoamApp spec.imagePullSecrets), which the edge host reads as $DOCKER_CONFIG/config.json (several pull secrets: the config.json "+
			"of each directory in $%s, in order); elsewhere, docker login %s or set DOCKER_CONFIG: %w",
			r.reg, r.status, r.none(), r.reg, EnvDockerConfigs, r.reg, err)
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
