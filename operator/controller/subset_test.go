package controller

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// subsetDiff lists where live differs from want on the fields want sets:
// its labels, annotations and everything but metadata and status. Lists
// must have the same length and match element by element; absent or null
// fields of want are not compared (the server may default them).
func subsetDiff(t *testing.T, want, live client.Object) []string {
	t.Helper()
	w, err := runtime.DefaultUnstructuredConverter.ToUnstructured(want)
	if err != nil {
		t.Fatal(err)
	}
	l, err := runtime.DefaultUnstructuredConverter.ToUnstructured(live)
	if err != nil {
		t.Fatal(err)
	}
	var diffs []string
	wm, _ := w["metadata"].(map[string]any)
	lm, _ := l["metadata"].(map[string]any)
	for _, k := range []string{"name", "namespace", "labels", "annotations"} {
		diffs = append(diffs, subset("metadata."+k, wm[k], lm[k])...)
	}
	for k, v := range w {
		if k == "metadata" || k == "status" || k == "apiVersion" || k == "kind" {
			continue
		}
		diffs = append(diffs, subset(k, v, l[k])...)
	}
	sort.Strings(diffs)
	return diffs
}

func subset(path string, want, got any) []string {
	switch w := want.(type) {
	case nil:
		return nil
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want %v, got %v", path, want, got)}
		}
		var d []string
		for k, v := range w {
			d = append(d, subset(path+"."+k, v, g[k])...)
		}
		return d
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: want %v, got %v", path, want, got)}
		}
		var d []string
		for i := range w {
			d = append(d, subset(fmt.Sprintf("%s[%d]", path, i), w[i], g[i])...)
		}
		return d
	default:
		if !reflect.DeepEqual(want, got) {
			return []string{fmt.Sprintf("%s: want %v, got %v", path, want, got)}
		}
		return nil
	}
}

// ownedBeyond lists the fields the field manager owns on live that want
// does not set (owner references aside, which the operator adds): the
// other half of "the operator applies exactly what manifests.App renders".
// It walks the manager's managedFields (FieldsV1: f:name for a field,
// k:{...} for a list element by key, v:... for a set value) against want.
func ownedBeyond(t *testing.T, want, live client.Object, manager string) []string {
	t.Helper()
	w, err := runtime.DefaultUnstructuredConverter.ToUnstructured(want)
	if err != nil {
		t.Fatal(err)
	}
	var diffs []string
	found := false
	for _, m := range live.GetManagedFields() {
		if m.Manager != manager || m.Operation != "Apply" || m.FieldsV1 == nil {
			continue
		}
		found = true
		var fields map[string]any
		if err := json.Unmarshal(m.FieldsV1.Raw, &fields); err != nil {
			t.Fatal(err)
		}
		delete(fields["f:metadata"].(map[string]any), "f:ownerReferences")
		diffs = append(diffs, walkOwned("", fields, w)...)
	}
	if !found {
		diffs = append(diffs, "no Apply entry of "+manager+" in managedFields")
	}
	sort.Strings(diffs)
	return diffs
}

func walkOwned(path string, fields map[string]any, want any) []string {
	var diffs []string
	for k, sub := range fields {
		if k == "." {
			continue
		}
		subFields, _ := sub.(map[string]any)
		switch {
		case strings.HasPrefix(k, "f:"):
			name := k[2:]
			m, _ := want.(map[string]any)
			v, ok := m[name]
			if !ok || v == nil {
				diffs = append(diffs, fmt.Sprintf("%s.%s is owned but not rendered", path, name))
				continue
			}
			diffs = append(diffs, walkOwned(path+"."+name, subFields, v)...)
		case strings.HasPrefix(k, "k:"):
			var keyFields map[string]any
			if err := json.Unmarshal([]byte(k[2:]), &keyFields); err != nil {
				diffs = append(diffs, fmt.Sprintf("%s: bad key %s", path, k))
				continue
			}
			list, _ := want.([]any)
			var elem any
			for _, e := range list {
				em, _ := e.(map[string]any)
				match := true
				for kf, kv := range keyFields {
					if fmt.Sprint(em[kf]) != fmt.Sprint(kv) {
						match = false
					}
				}
				if match {
					elem = e
					break
				}
			}
			if elem == nil {
				diffs = append(diffs, fmt.Sprintf("%s[%s] is owned but not rendered", path, k[2:]))
				continue
			}
			diffs = append(diffs, walkOwned(fmt.Sprintf("%s[%s]", path, k[2:]), subFields, elem)...)
		case strings.HasPrefix(k, "v:"):
			var v any
			if err := json.Unmarshal([]byte(k[2:]), &v); err != nil {
				diffs = append(diffs, fmt.Sprintf("%s: bad value %s", path, k))
				continue
			}
			list, _ := want.([]any)
			if !slices.ContainsFunc(list, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
				diffs = append(diffs, fmt.Sprintf("%s: value %s is owned but not rendered", path, k[2:]))
			}
		default:
			diffs = append(diffs, fmt.Sprintf("%s: unexpected managedFields key %s", path, k))
		}
	}
	return diffs
}
