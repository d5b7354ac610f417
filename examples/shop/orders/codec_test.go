package orders

import (
	"testing"

	"github.com/roam-dev/roam/sdk/jsonx/jsontest"
)

// The generated codecs (zz_json.go) encode and decode as encoding/json does.

func TestJSONCodecs(t *testing.T) { jsontest.Check(t, 0, customerIndex{}) }

func FuzzJSONCodecs(f *testing.F) { jsontest.Fuzz(f, customerIndex{}) }
