//go:build goexperiment.jsonv2

package jsontest

// JSONv2 reports whether encoding/json is the v2-based implementation
// (GOEXPERIMENT=jsonv2), which writes and reports some things differently
// from the default one the generated codecs reproduce.
const JSONv2 = true
