// Package config holds the operator's install manifests and renders them
// for `roam operator install`:
//
//	crd/      the RoamApp CustomResourceDefinition (controller-gen, from operator/api)
//	rbac/     role.yaml (controller-gen, from the +kubebuilder:rbac markers in
//	          operator/controller), the ServiceAccount and the bindings
//	manager/  the namespace and the operator's Deployment and metrics Service
//
// The files are plain YAML for roam-system: `kubectl apply -f crd -f rbac
// -f manager` installs the operator as committed. Install renames the
// namespace and sets the images.
//
// This package imports no client-go and no controller-runtime: the roam
// command embeds it, and roam is also the edge host binary, whose image has
// a size budget.
package config

//go:generate go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.19.0 object crd rbac:roleName=roam-operator paths=../... output:crd:dir=crd output:rbac:dir=rbac

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/roam-dev/roam/internal/manifests/pullsecret"
)

//go:embed crd/*.yaml rbac/*.yaml manager/*.yaml
var files embed.FS

// Files are the committed manifests, by path below operator/config.
func Files() fs.FS { return files }

// DefaultNamespace is where the committed manifests install the operator.
const DefaultNamespace = "roam-system"

// Options configure Install.
type Options struct {
	// Namespace of the operator (default roam-system).
	Namespace string
	// Image of the operator (roam dist's roam-operator image).
	Image string
	// EdgeHostImage is the edge host image (roam dist's roam-edge) the
	// operator runs for RoamApps in edge mode that name none.
	EdgeHostImage string
	// PullSecrets name kubernetes.io/dockerconfigjson Secrets in the
	// operator's namespace for pulling its image from a private registry.
	PullSecrets []string
}

// A File is one file of an install, in the order kubectl should apply them.
type File struct {
	Name string // 0-namespace.yaml, 1-crd.yaml, 2-rbac.yaml, 3-operator.yaml
	Data []byte
}

// groups are the install's files and the committed files each gathers.
var groups = []struct{ name, glob string }{
	{"0-namespace.yaml", "manager/namespace.yaml"},
	{"1-crd.yaml", "crd/*.yaml"},
	{"2-rbac.yaml", "rbac/*.yaml"},
	{"3-operator.yaml", "manager/operator.yaml"},
}

// Install renders the manifests with o's namespace and images.
func Install(o Options) ([]File, error) {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if msgs := validation.IsDNS1123Label(o.Namespace); len(msgs) > 0 {
		return nil, fmt.Errorf("namespace %q is not a DNS label: %s", o.Namespace, strings.Join(msgs, "; "))
	}
	if o.Image == "" || o.EdgeHostImage == "" {
		return nil, fmt.Errorf("the operator and edge host images are required")
	}
	if err := pullsecret.CheckNames(o.PullSecrets, func(int) string { return "pull secret" }); err != nil {
		return nil, err
	}
	var out []File
	for _, g := range groups {
		paths, err := fs.Glob(files, g.glob)
		if err != nil {
			return nil, err
		}
		sort.Strings(paths)
		var b bytes.Buffer
		for _, p := range paths {
			raw, err := files.ReadFile(p)
			if err != nil {
				return nil, err
			}
			docs, err := Documents(raw)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			for _, d := range docs {
				if err := rewrite(d, o); err != nil {
					return nil, fmt.Errorf("%s: %w", p, err)
				}
				y, err := yaml.Marshal(d)
				if err != nil {
					return nil, err
				}
				b.WriteString("---\n")
				b.Write(y)
			}
		}
		out = append(out, File{Name: g.name, Data: b.Bytes()})
	}
	return out, nil
}

// Documents splits a multi-document YAML file into objects, skipping empty
// documents.
func Documents(raw []byte) ([]map[string]any, error) {
	var docs []map[string]any
	for _, part := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(raw), -1) {
		if strings.TrimSpace(stripComments(part)) == "" {
			continue
		}
		var m map[string]any
		if err := yaml.Unmarshal([]byte(part), &m); err != nil {
			return nil, err
		}
		if len(m) > 0 {
			docs = append(docs, m)
		}
	}
	return docs, nil
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// rewrite sets one object's namespace, its ServiceAccount subjects'
// namespace and the operator container's images.
func rewrite(d map[string]any, o Options) error {
	md, _ := d["metadata"].(map[string]any)
	if md == nil {
		return fmt.Errorf("an object without metadata")
	}
	if d["kind"] == "Namespace" {
		md["name"] = o.Namespace
		return nil
	}
	if _, ok := md["namespace"]; ok {
		md["namespace"] = o.Namespace
	}
	if subs, ok := d["subjects"].([]any); ok {
		for _, s := range subs {
			if s, ok := s.(map[string]any); ok && s["kind"] == "ServiceAccount" {
				s["namespace"] = o.Namespace
			}
		}
	}
	if d["kind"] != "Deployment" {
		return nil
	}
	spec, _ := d["spec"].(map[string]any)
	tmpl, _ := spec["template"].(map[string]any)
	pspec, _ := tmpl["spec"].(map[string]any)
	cs, _ := pspec["containers"].([]any)
	if len(cs) != 1 {
		return fmt.Errorf("the operator Deployment has %d containers, want 1", len(cs))
	}
	if len(o.PullSecrets) > 0 {
		var refs []any
		for _, s := range o.PullSecrets {
			refs = append(refs, map[string]any{"name": s})
		}
		pspec["imagePullSecrets"] = refs
	}
	c := cs[0].(map[string]any)
	c["image"] = o.Image
	args, _ := c["args"].([]any)
	found := false
	for i, a := range args {
		if s, _ := a.(string); strings.HasPrefix(s, "--edge-host-image=") {
			args[i] = "--edge-host-image=" + o.EdgeHostImage
			found = true
		}
	}
	if !found {
		return fmt.Errorf("the operator Deployment has no --edge-host-image argument")
	}
	return nil
}

// EdgeHostImageFor is the edge host image published beside an operator
// image REPO/roam-operator:TAG, which roam dist --push REPO pushes as
// REPO/roam-edge:TAG; "" for any other reference (one pinned by digest names
// the operator's bytes, not the edge host's).
func EdgeHostImageFor(operatorImage string) string {
	if strings.Contains(operatorImage, "@") {
		return ""
	}
	slash := strings.LastIndex(operatorImage, "/")
	repo, tag, ok := operatorImage, "", false
	if i := strings.LastIndex(operatorImage, ":"); i > slash {
		repo, tag, ok = operatorImage[:i], operatorImage[i+1:], true
	}
	if !ok || repo[slash+1:] != "roam-operator" {
		return ""
	}
	return repo[:slash+1] + "roam-edge:" + tag
}
