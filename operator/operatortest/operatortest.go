// Package operatortest holds what the operator's tests against a real API
// server share: operator/controller's suite and cmd/roam-operator's test of
// the installed binary. Both run envtest (internal/envtestbin finds its
// etcd and kube-apiserver), install the operator as `roam operator install`
// renders it, and poll for what the controller does. Only tests import it.
package operatortest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/roam-dev/roam/operator/config"
)

// Wait bounds every poll. It is a failure bound, not a timing assertion:
// polls end as soon as their condition holds.
const Wait = 60 * time.Second

// Eventually polls f until it returns nil, failing t with f's last error
// after Wait.
func Eventually(t testing.TB, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not so after %s: %v", what, Wait, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Install creates through c the objects of the install config.Install
// renders for o: those of the files named in only (such as
// "0-namespace.yaml"), or of every file when only is empty. It returns
// them as created.
func Install(ctx context.Context, c client.Client, o config.Options, only ...string) ([]*unstructured.Unstructured, error) {
	files, err := config.Install(o)
	if err != nil {
		return nil, err
	}
	var created []*unstructured.Unstructured
	for _, f := range files {
		if len(only) > 0 && !slices.Contains(only, f.Name) {
			continue
		}
		docs, err := config.Documents(f.Data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		for _, d := range docs {
			u := &unstructured.Unstructured{Object: d}
			if err := c.Create(ctx, u); err != nil {
				return nil, fmt.Errorf("%s: %s %s: %w", f.Name, u.GetKind(), u.GetName(), err)
			}
			created = append(created, u)
		}
	}
	return created, nil
}
