package inventory

import (
	"testing"

	"github.com/roam-dev/roam/sdk/jsonx/jsontest"
)

// The generated codecs (zz_json.go) encode and decode as encoding/json does.

func TestJSONCodecs(t *testing.T) { jsontest.Check(t, 0, level{}, reservation{}) }

func FuzzJSONCodecs(f *testing.F) { jsontest.Fuzz(f, level{}, reservation{}) }
