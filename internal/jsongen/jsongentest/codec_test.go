package jsongentest

import (
	"testing"

	"github.com/roam-dev/roam/sdk/jsonx/jsontest"
)

var samples = []any{Basic{}, Composite{}, Embedded{}, Tx{}, Empty{}, Node{}}

func TestCodecsMatchEncodingJSON(t *testing.T) { jsontest.Check(t, 0, samples...) }

func FuzzCodecsMatchEncodingJSON(f *testing.F) { jsontest.Fuzz(f, samples...) }
