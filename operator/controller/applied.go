package controller

import (
	"crypto/sha256"
	"encoding/json"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// appliedCache remembers, per object, what the operator last applied (a
// digest of the rendered object) and the resourceVersion the API server
// answered with. An object whose cached copy still has that
// resourceVersion has not been written since by anyone, so applying the
// same rendering again would be a no-op round trip; the reconcile skips it.
//
// This halves the requests of a reconcile triggered by the operator's own
// writes (creating four objects wakes the RoamApp once more) and of the
// steady state. Any write by anyone else (a kubectl edit, a Deployment
// controller's status update) changes the resourceVersion, so drift is
// still repaired at once. The cache is only an optimization: after a
// restart it is empty and every object is applied once.
type appliedCache struct {
	mu sync.Mutex
	m  map[types.NamespacedName]map[string]appliedState // by RoamApp, then Kind/name
}

type appliedState struct {
	sum             [sha256.Size]byte
	resourceVersion string
}

// digestOf is the digest of a rendered object, owner reference included.
func digestOf(o client.Object) ([sha256.Size]byte, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256(b), nil
}

func (c *appliedCache) unchanged(app types.NamespacedName, o client.Object, sum [sha256.Size]byte, live client.Object) bool {
	if live == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.m[app][describe(o)]
	return ok && s.sum == sum && s.resourceVersion == live.GetResourceVersion()
}

// remember records an apply; o holds the API server's answer.
func (c *appliedCache) remember(app types.NamespacedName, o client.Object, sum [sha256.Size]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[types.NamespacedName]map[string]appliedState{}
	}
	if c.m[app] == nil {
		c.m[app] = map[string]appliedState{}
	}
	c.m[app][describe(o)] = appliedState{sum: sum, resourceVersion: o.GetResourceVersion()}
}

func (c *appliedCache) forget(app types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, app)
}
