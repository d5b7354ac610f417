// Package backendtest is the conformance suite of backend.Backend: one set
// of tests that every implementation (memory, embedded, dapr, ...) runs from
// its own _test.go file, so that an app behaves the same whichever backend a
// host binds it to.
//
//	func TestState(t *testing.T) {
//		backendtest.RunState(t, func(t *testing.T) backend.Backend { return memory.New(memory.Options{}) })
//	}
//
// The suites assert observable behaviour only: values, ETags, error codes,
// delivery order and attempt counts. They never use sleeps as assertions;
// they poll with generous deadlines, so they stay reliable on slow, loaded
// machines. Every test uses fresh random app ids and topics, so a backend
// whose storage is shared between tests (a Dapr sidecar) does not see
// another test's data.
//
// The suites live outside _test.go files so that other packages can call
// them; they import package testing for that reason only.
package backendtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/roam-dev/roam/sdk"
)

// uniq returns a short random suffix for app ids and topics.
func uniq() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ctxFor returns a context that ends with the test.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// wantCode fails the test unless err carries code.
func wantCode(t *testing.T, err error, code sdk.Code, what string) {
	t.Helper()
	if got := sdk.CodeOf(err); got != code {
		t.Fatalf("%s: got code %v (err %v), want %v", what, got, err, code)
	}
}

// noErr fails the test on err.
func noErr(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: unexpected error (code %v): %v", what, sdk.CodeOf(err), err)
	}
}

// eventually polls cond every 10ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
