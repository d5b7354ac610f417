package testapp

import (
	"testing"

	"github.com/roam-dev/roam/sdk/jsonx/jsontest"
)

// The generated codecs (zz_json.go) encode and decode as encoding/json does.

var jsonSamples = []any{Value{}, putReq{}, empty{}, keyReq{}, keysReq{}, items{}, txReq{}, counter{}, pubReq{},
	Received{}, receivedState{}, topicReq{}, invokeReq{}, valueReply{}, secretReq{}, failReq{}, sleepReq{}}

func TestJSONCodecs(t *testing.T) { jsontest.Check(t, 0, jsonSamples...) }

func FuzzJSONCodecs(f *testing.F) { jsontest.Fuzz(f, jsonSamples...) }
