package abi_test

import (
	"reflect"
	"testing"

	"github.com/roam-dev/roam/abi"
)

func TestCallRoundTrip(t *testing.T) {
	c := abi.Call{Kind: abi.KindMethod, Name: "Create", RequestID: "r1", DeadlineMs: 1234567, Body: []byte(`{"a":1}`)}
	got, err := abi.ReadCall(abi.AppendCall(nil, c))
	if err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestManifestRoundTrip(t *testing.T) {
	m := abi.Manifest{AppID: "orders", Methods: []string{"Create", "Get"},
		Subscriptions: []abi.ManifestSub{{PubSub: "pubsub", Topic: "t", DeadLetterTopic: "dl"}}}
	got, err := abi.ReadManifest(abi.AppendManifest(nil, m))
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestCodes(t *testing.T) {
	for c := abi.OK; c <= abi.Internal; c++ {
		back, ok := abi.ParseCode(c.String())
		if !ok || back != c {
			t.Errorf("%d: %q parses to %d %v", c, c.String(), back, ok)
		}
	}
	if _, ok := abi.ParseCode("Nope"); ok {
		t.Error("unknown name parsed")
	}
	if abi.Code(99).String() != "Internal" {
		t.Error("unknown code should render as Internal")
	}
}

// FuzzReader checks that no input makes the decoder panic or read past its
// input, whatever lengths and counts it claims.
func FuzzReader(f *testing.F) {
	f.Add(abi.AppendCall(nil, abi.Call{Kind: 1, Name: "x", Body: []byte("{}")}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{5, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := abi.ReadCall(b); err == nil {
			if again, err := abi.ReadCall(abi.AppendCall(nil, c)); err != nil || !reflect.DeepEqual(again, c) {
				t.Fatalf("re-encoding changed the call: %+v vs %+v (%v)", again, c, err)
			}
		}
		abi.ReadManifest(b)
	})
}
