package contract

import (
	"testing"

	"github.com/roam-dev/roam/sdk/jsonx/jsontest"
)

// The generated codecs (zz_json.go) encode and decode as encoding/json does.

var jsonSamples = []any{Order{}, CreateOrder{}, OrderRef{}, OrderReply{}, CustomerRef{}, OrderList{}, OrderEvent{},
	SKURef{}, Restock{}, Reserve{}, Release{}, StockLevel{}}

func TestJSONCodecs(t *testing.T) { jsontest.Check(t, 0, jsonSamples...) }

func FuzzJSONCodecs(f *testing.F) { jsontest.Fuzz(f, jsonSamples...) }
