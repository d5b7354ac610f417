package jsonbench

import (
	"testing"
)

// BenchmarkCodec is the native side of host/edge's BenchmarkGuestCodec.
func BenchmarkCodec(b *testing.B) {
	for _, op := range []string{"get", "create"} {
		for _, c := range []string{"generated", "reflect"} {
			b.Run(op+"/"+c, func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					if err := Ops[op](codecs[c]); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func TestRun(t *testing.T) {
	for op := range Ops {
		for c := range codecs {
			if _, err := Run(op, c, 3); err != nil {
				t.Errorf("%s/%s: %v", op, c, err)
			}
		}
	}
	if _, err := Run("nope", "generated", 1); err == nil {
		t.Error("an unknown op ran")
	}
}
