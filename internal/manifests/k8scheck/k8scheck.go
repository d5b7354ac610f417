// Package k8scheck checks rendered manifests as an API server would, without
// one: an object of a built-in kind is decoded strictly into its k8s.io/api
// type (an unknown or duplicated field is an error), and a custom resource
// is validated against the OpenAPI schema of its CustomResourceDefinition,
// with the fields the server would prune reported as errors. Every object's
// metadata is validated too. CEL rules (x-kubernetes-validations) are not
// evaluated; Dapr's CRDs have none.
//
// Tests import it (internal/manifests, cmd/roam); the roam binary does not,
// which keeps apiextensions-apiserver out of it.
package k8scheck

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	apiextensions "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation/field"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// strict decodes YAML or JSON into the registered k8s.io/api types and
// fails on unknown and duplicated fields.
var strict = serializer.NewCodecFactory(clientgoscheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// DecodeStrict decodes one document into the k8s.io/api type its apiVersion
// and kind name. An unknown field is an error; so is a kind that is not
// built in (runtime.IsNotRegisteredError).
func DecodeStrict(doc []byte) (runtime.Object, error) {
	obj, gvk, err := strict.Decode(doc, nil, nil)
	if err != nil {
		if gvk != nil {
			return nil, fmt.Errorf("%s: %w", gvk.Kind, err)
		}
		return nil, err
	}
	return obj, nil
}

// Documents splits a multi-document YAML stream, dropping empty documents
// and comment-only ones.
func Documents(stream []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(append([]byte("\n"), stream...), []byte("\n---")) {
		// A separator line may carry nothing else.
		if i := bytes.IndexByte(d, '\n'); i >= 0 && len(bytes.TrimSpace(d[:i])) == 0 {
			d = d[i+1:]
		}
		empty := true
		for _, line := range strings.Split(string(d), "\n") {
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
				empty = false
				break
			}
		}
		if !empty {
			docs = append(docs, d)
		}
	}
	return docs
}

// CRDs holds the schemas of custom resources, by group, version and kind.
type CRDs struct {
	m map[schema.GroupVersionKind]*crdSchema
}

type crdSchema struct {
	crd        string
	props      *apiextensions.JSONSchemaProps
	structural *structuralschema.Structural
	validator  validation.SchemaValidator
}

// LoadCRDs reads CustomResourceDefinitions (apiextensions.k8s.io/v1) from
// YAML files, each of which may hold several.
func LoadCRDs(files ...string) (*CRDs, error) {
	c := &CRDs{m: map[schema.GroupVersionKind]*crdSchema{}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, doc := range Documents(b) {
			var crd apiextensionsv1.CustomResourceDefinition
			if err := yaml.UnmarshalStrict(doc, &crd); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if crd.Kind != "CustomResourceDefinition" {
				continue
			}
			if err := c.add(&crd); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
		}
	}
	return c, nil
}

// LoadCRDDir reads every *.yaml file of dir (LoadCRDs).
func LoadCRDDir(dir string) (*CRDs, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no CRDs (*.yaml) in %s", dir)
	}
	return LoadCRDs(files...)
}

func (c *CRDs) add(crd *apiextensionsv1.CustomResourceDefinition) error {
	for _, v := range crd.Spec.Versions {
		if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			return fmt.Errorf("CRD %s version %s has no openAPIV3Schema", crd.Name, v.Name)
		}
		var in apiextensions.CustomResourceValidation
		if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(v.Schema, &in, nil); err != nil {
			return fmt.Errorf("CRD %s version %s: %w", crd.Name, v.Name, err)
		}
		s, err := structuralschema.NewStructural(in.OpenAPIV3Schema)
		if err != nil {
			return fmt.Errorf("CRD %s version %s: schema is not structural: %w", crd.Name, v.Name, err)
		}
		val, _, err := validation.NewSchemaValidator(in.OpenAPIV3Schema)
		if err != nil {
			return fmt.Errorf("CRD %s version %s: %w", crd.Name, v.Name, err)
		}
		gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: v.Name, Kind: crd.Spec.Names.Kind}
		c.m[gvk] = &crdSchema{crd: crd.Name, props: in.OpenAPIV3Schema, structural: s, validator: val}
	}
	return nil
}

// Kinds lists the kinds c knows, sorted.
func (c *CRDs) Kinds() []schema.GroupVersionKind {
	var out []schema.GroupVersionKind
	for k := range c.m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// Validate checks a custom resource against its CRD's schema: the fields
// an API server would prune (unknown ones) are errors, and so is every
// violation of the schema and of ObjectMeta's rules.
func (c *CRDs) Validate(obj *unstructured.Unstructured) error {
	gvk := obj.GroupVersionKind()
	s, ok := c.m[gvk]
	if !ok {
		return fmt.Errorf("%s %s: no CRD for it", gvk, obj.GetName())
	}
	var errs field.ErrorList
	u := obj.DeepCopy().Object
	_, unknownMeta := objectmeta.CoerceWithOptions(nil, u, s.structural, true, objectmeta.CoerceOptions{ReturnUnknownFieldPaths: true})
	unknown := pruning.PruneWithOptions(u, s.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	for _, p := range append(unknownMeta, unknown...) {
		errs = append(errs, field.Forbidden(field.NewPath(p), "unknown field: not in the schema of "+s.crd))
	}
	errs = append(errs, validation.ValidateCustomResource(nil, obj.Object, s.validator)...)
	errs = append(errs, objectmeta.Validate(nil, obj.Object, s.structural, true)...)
	errs = append(errs, validateMeta(obj)...)
	if len(errs) > 0 {
		return fmt.Errorf("%s %s/%s: %w", gvk.Kind, obj.GetNamespace(), obj.GetName(), errs.ToAggregate())
	}
	return nil
}

func validateMeta(obj metav1.Object) field.ErrorList {
	return apimachineryvalidation.ValidateObjectMetaAccessor(obj, obj.GetNamespace() != "", apimachineryvalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
}

// Check checks one document: a built-in kind by DecodeStrict (and its
// metadata), any other by crds. It returns what it decoded.
func Check(doc []byte, crds *CRDs) (runtime.Object, error) {
	obj, err := DecodeStrict(doc)
	if err == nil {
		m, ok := obj.(metav1.Object)
		if !ok {
			return nil, fmt.Errorf("%T has no metadata", obj)
		}
		if errs := validateMeta(m); len(errs) > 0 {
			return nil, fmt.Errorf("%T %s: %w", obj, m.GetName(), errs.ToAggregate())
		}
		return obj, nil
	}
	if !runtime.IsNotRegisteredError(errors.Unwrap(err)) && !runtime.IsNotRegisteredError(err) {
		return nil, err
	}
	if crds == nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(doc, &u.Object); err != nil {
		return nil, err
	}
	return u, crds.Validate(u)
}

// DaprCRDDir is the directory of the CRDs in Dapr's Go module, the version
// go.mod requires: `go list -m` finds the module (run from dir, "" for the
// current directory) in the module cache.
func DaprCRDDir(dir string) (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/dapr/dapr")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m github.com/dapr/dapr: %v\n%s", err, stderr.String())
	}
	d := strings.TrimSpace(string(out))
	if d == "" {
		return "", errors.New("go list -m github.com/dapr/dapr: the module is not downloaded (go mod download github.com/dapr/dapr)")
	}
	return filepath.Join(d, "charts", "dapr", "crds"), nil
}
