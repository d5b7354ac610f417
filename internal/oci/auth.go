package oci

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// EnvDockerConfigs lists docker config directories, separated as PATH is
// (by ':'), whose config.json files all hold registry credentials. It is
// how an edge host on Kubernetes gets every pull secret of its RoamApp:
// each is mounted in a directory of its own (a Secret's key is always
// .dockerconfigjson, and Kubernetes merges no two Secrets into one file),
// and DOCKER_CONFIG names one directory only.
//
// When it is set, only those files are read (not DOCKER_CONFIG, ~/.docker
// or Podman's auth file), and a pull tries the credentials of every file
// with an entry for the registry in turn, as the kubelet tries a pod's
// imagePullSecrets (see pullAuth); a push sends the first. Unset,
// credentials come from go-containerregistry's default keychain, as docker
// reads them.
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

// credential is one set of credentials a registry call may send, and
// where it was found: the error explaining a refusal names the file.
type credential struct {
	auth authn.Authenticator // authn.Anonymous when none was found
	// files are the config.json files that hold it (more than one when
	// two pull secrets hold the same credentials) or, for
	// authn.Anonymous, every file looked in. Without $ROAM_DOCKER_CONFIGS,
	// the one file the default keychain reads, said how it was chosen.
	files  []string
	listed bool // the files are those of $ROAM_DOCKER_CONFIGS
}

// where names the files of c for an error.
func (c credential) where() string {
	if !c.listed {
		return c.files[0]
	}
	return strings.Join(c.files, ", ") + " ($" + EnvDockerConfigs + ")"
}

// credentials lists the credentials for target's registry in the order a
// pull tries them. With $ROAM_DOCKER_CONFIGS, they are ordered as the
// kubelet's keyring orders a pod's pull secrets: every file's entry for the
// repository, then every file's entry for the registry (the more specific
// first), the files in the order listed, the same credentials only once;
// authn.Anonymous alone when no file has any (the kubelet pulls without
// credentials only then). Each file is looked up as the default keychain
// looks up $DOCKER_CONFIG/config.json, by docker's own loader; a missing
// file holds none, a malformed one is an error that names it. Without
// $ROAM_DOCKER_CONFIGS, the one set the default keychain resolves.
func credentials(target authn.Resource) ([]credential, error) {
	dirs := configDirs()
	if len(dirs) == 0 {
		auth, err := authn.DefaultKeychain.Resolve(target)
		if err != nil {
			return nil, err
		}
		return []credential{{auth: auth, files: []string{credentialsFile()}}}, nil
	}
	files := make([]string, len(dirs))
	cfs := make([]*configfile.ConfigFile, len(dirs))
	for i, d := range dirs {
		cf, err := config.Load(d)
		if err != nil {
			return nil, err
		}
		files[i], cfs[i] = filepath.Join(d, "config.json"), cf
	}
	var creds []credential
	seen := map[authn.AuthConfig]int{}
	for _, key := range []string{target.String(), target.RegistryStr()} {
		if key == name.DefaultRegistry {
			key = authn.DefaultAuthKey
		}
		for i, cf := range cfs {
			cfg, err := cf.GetAuthConfig(key)
			if err != nil {
				return nil, err
			}
			// GetAuthConfig fills in ServerAddress even when it found
			// nothing; authn.AuthConfig leaves it out.
			ac := authn.AuthConfig{Username: cfg.Username, Password: cfg.Password, Auth: cfg.Auth,
				IdentityToken: cfg.IdentityToken, RegistryToken: cfg.RegistryToken}
			if ac == (authn.AuthConfig{}) {
				continue
			}
			// The same credentials twice (a Secret copied during a
			// rotation, or one entry matching both keys) would be refused
			// twice: they are tried once, naming both files.
			if j, ok := seen[ac]; ok {
				if !slices.Contains(creds[j].files, files[i]) {
					creds[j].files = append(creds[j].files, files[i])
				}
				continue
			}
			seen[ac] = len(creds)
			creds = append(creds, credential{auth: authn.FromConfig(ac), files: []string{files[i]}, listed: true})
		}
	}
	if len(creds) == 0 {
		return []credential{{auth: authn.Anonymous, files: files, listed: true}}, nil
	}
	return creds, nil
}

// keychain is where a push (and RemoteOptions) finds its credentials: the
// first of those a pull would try with $ROAM_DOCKER_CONFIGS, or else the
// default keychain. A push tries no others: it is roam dist --push with
// docker login's credentials, not the edge host's pull secrets.
func keychain() authn.Keychain {
	if len(configDirs()) == 0 {
		return authn.DefaultKeychain
	}
	return firstCredentials{}
}

// firstCredentials is the keychain of $ROAM_DOCKER_CONFIGS: the first of
// the credentials for a registry.
type firstCredentials struct{}

func (firstCredentials) Resolve(target authn.Resource) (authn.Authenticator, error) {
	creds, err := credentials(target)
	if err != nil {
		return nil, err
	}
	return creds[0].auth, nil
}

// refusedBy reports whether err is a registry refusing the credentials
// sent, or their absence, and returns its transport.Error: a 401 or 403
// (from the registry or from its token service), a body whose error code
// says so (UNAUTHORIZED, DENIED) under another status, or a token service's
// OAuth2 refusal of an identity token (400 invalid_grant). Only such an
// error is worth another try with other credentials: a missing tag, a
// network error or a tampered module would be the same with any.
func refusedBy(err error) (*transport.Error, bool) {
	var te *transport.Error
	if !errors.As(err, &te) {
		return nil, false
	}
	if te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden {
		return te, true
	}
	for _, d := range te.Errors {
		if d.Code == transport.UnauthorizedErrorCode || d.Code == transport.DeniedErrorCode {
			return te, true
		}
	}
	// A token service that exchanges an identity token (OAuth2, RFC 6749
	// section 5.2) refuses one that is expired, revoked or not its own with
	// a 400 and an error of its own vocabulary.
	if te.StatusCode == http.StatusBadRequest && te.Request != nil && te.Request.Method == http.MethodPost && oauthRefusal.MatchString(te.Error()) {
		return te, true
	}
	return nil, false
}

// oauthRefusal matches the OAuth2 errors that refuse the credentials
// themselves (not, say, invalid_scope or invalid_request).
var oauthRefusal = regexp.MustCompile(`"error"\s*:\s*"(invalid_grant|invalid_client|unauthorized_client)"`)

// status is te's HTTP status as an error says it: "401 Unauthorized".
func status(te *transport.Error) string {
	return fmt.Sprintf("%d %s", te.StatusCode, http.StatusText(te.StatusCode))
}

// pullAuth makes a pull's registry requests as the kubelet pulls an image
// with a pod's imagePullSecrets: with each of the credentials for the
// registry in turn (see credentials), until one is accepted. During a
// rotation the Secret with the old credentials may still be listed first,
// and the pull must work all the same. It moves on only when the registry
// refuses the credentials (refusedBy), where the kubelet moves on after
// any error: a missing tag or an unreachable registry would fail the same
// with every set, and only hide the first error behind the last.
//
// The credentials one request was accepted with serve the next (the
// manifest's, then the module's); were they refused there, the rest would
// be tried, never the ones already refused.
type pullAuth struct {
	ctx context.Context
	ref name.Reference
	// creds are read at the first request, which a pull of a cached
	// module never makes: it needs neither registry nor credentials.
	creds   []credential
	next    int     // the index in creds of the credentials in use
	refused []error // the refusal of each of creds[:next]
}

// do calls f with the options of a registry request, with each of the
// credentials in turn while the registry refuses them. When it refused
// them all, the error says which registry, how many it refused and which,
// and wraps its last refusal.
func (p *pullAuth) do(f func(opts ...remote.Option) error) error {
	if p.creds == nil {
		creds, err := credentials(p.ref.Context())
		if err != nil {
			return fmt.Errorf("credentials for %s: %w", p.ref.Context().RegistryStr(), err)
		}
		p.creds = creds
	}
	for ; p.next < len(p.creds); p.next++ {
		err := f(remote.WithContext(p.ctx), remote.WithAuth(p.creds[p.next].auth))
		if _, ok := refusedBy(err); !ok {
			return err
		}
		p.refused = append(p.refused, err)
	}
	return p.refusedAll()
}

// refusals names the credentials refused so far, each by its files and
// the status the registry answered.
func (p *pullAuth) refusals() []string {
	var out []string
	for i, err := range p.refused {
		te, _ := refusedBy(err)
		out = append(out, p.creds[i].where()+" ("+status(te)+")")
	}
	return out
}

// refusedAll explains the registry's refusal of every one of the
// credentials for it: one set as authError does, several by listing them,
// each with the status it got.
func (p *pullAuth) refusedAll() error {
	last := p.refused[len(p.refused)-1]
	te, _ := refusedBy(last)
	if len(p.creds) == 1 {
		return authError(p.ref, p.creds[0], te, last)
	}
	reg, repo := p.ref.Context().RegistryStr(), p.ref.Context().RepositoryStr()
	tried := make([]string, len(p.creds))
	for i, c := range p.creds {
		te, _ := refusedBy(p.refused[i])
		tried[i] = strings.Join(c.files, ", ") + " (" + status(te) + ")"
	}
	return fmt.Errorf("registry %s refused each of the %d credentials for it in $%s, tried in turn: %s. "+
		"Check the user name and password or token of each auths entry for %s (on Kubernetes, in the Secrets of roam manifests --pull-secret, "+
		"RoamApp spec.imagePullSecrets), that one may read %s, and that it exists (some registries answer 401 for a repository they do not have); "+
		"the last refusal: %w",
		reg, len(p.creds), EnvDockerConfigs, strings.Join(tried, "; "), reg, repo, last)
}

// refusal is a registry's 401 or 403 of a request for ref, with the
// credentials it refused.
type refusal struct {
	reg, status string
	// file is where the credentials sent came from, or, when none were
	// sent (anonymous), where they were looked for; many says it lists
	// more than one file.
	file      string
	many      bool
	te        *transport.Error
	anonymous bool
}

func newRefusal(ref name.Reference, te *transport.Error, c credential) refusal {
	return refusal{reg: ref.Context().RegistryStr(), status: status(te), te: te,
		file: c.where(), many: len(c.files) > 1, anonymous: c.auth == authn.Anonymous}
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
	te, ok := refusedBy(err)
	if !ok {
		return err
	}
	creds, kerr := credentials(ref.Context())
	if kerr != nil {
		return fmt.Errorf("registry %s refused the push (%s), and the credentials for it cannot be read: %v: %w", ref.Context().RegistryStr(), status(te), kerr, err)
	}
	// keychain sent the first.
	r := newRefusal(ref, te, creds[0])
	switch {
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

// authError explains a registry's refusal te (err) of a pull of ref with
// c, the only credentials for it: which registry refused, whether
// credentials for it were found, where they are looked for, and how to
// give them (roam manifests --pull-secret on Kubernetes, docker login
// elsewhere). The registry's own message follows.
func authError(ref name.Reference, c credential, te *transport.Error, err error) error {
	r := newRefusal(ref, te, c)
	switch {
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
