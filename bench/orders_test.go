package bench

import (
	"context"
	"sync/atomic"
	"testing"
)

// parallelism multiplies GOMAXPROCS into the number of RunParallel
// goroutines: on a 2-core machine, 32 concurrent callers, as roambench's
// load generator uses. Concurrency matters to the embedded backend, whose
// concurrent writes share one fsync.
const parallelism = 16

// BenchmarkGet measures orders.Get of an existing order: one state read,
// JSON decode of the stored order and encode of the reply.
func BenchmarkGet(b *testing.B) {
	for _, be := range backends {
		for _, tr := range transports {
			b.Run(be+"/"+tr+"/serial", func(b *testing.B) {
				f := newFixture(b, be, tr, numOrders)
				ctx := context.Background()
				bodies := f.getBodies()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := f.call(ctx, "Get", bodies[i%len(bodies)]); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(be+"/"+tr+"/parallel", func(b *testing.B) {
				f := newFixture(b, be, tr, numOrders)
				ctx := context.Background()
				bodies := f.getBodies()
				b.ReportAllocs()
				b.SetParallelism(parallelism)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						if _, err := f.call(ctx, "Get", bodies[i%len(bodies)]); err != nil {
							b.Error(err)
							return
						}
						i++
					}
				})
			})
		}
	}
}

// BenchmarkCreate measures orders.Create: an in-process invocation of
// inventory.Reserve (a read and a two-key transaction), the order and
// customer-index transaction, the order.created publish, and a final Get.
// Every request has a customer of its own; serial Creates take from one SKU,
// parallel ones from one SKU per goroutine.
func BenchmarkCreate(b *testing.B) {
	for _, be := range backends {
		for _, tr := range transports {
			b.Run(be+"/"+tr+"/serial", func(b *testing.B) {
				f := newFixture(b, be, tr, b.N+numOrders)
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := f.call(ctx, "Create", f.createBody(f.skus[0])); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(be+"/"+tr+"/parallel", func(b *testing.B) {
				f := newFixture(b, be, tr, b.N+numOrders)
				ctx := context.Background()
				var worker atomic.Int64
				b.ReportAllocs()
				b.SetParallelism(parallelism)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					sku := f.skus[int(worker.Add(1)-1)%len(f.skus)]
					for pb.Next() {
						if _, err := f.call(ctx, "Create", f.createBody(sku)); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkCreateHotSKU is parallel Create with every goroutine ordering the
// same SKU: each reservation is an ETag-conditional write of one stock level,
// so concurrent Creates conflict and retry. In-process only: the transport
// does not change the contention.
func BenchmarkCreateHotSKU(b *testing.B) {
	for _, be := range backends {
		b.Run(be, func(b *testing.B) {
			f := newFixture(b, be, "inproc", b.N+numOrders)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(parallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := f.call(ctx, "Create", f.createBody(f.skus[0])); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func (f *fixture) getBodies() [][]byte {
	out := make([][]byte, len(f.ids))
	for i, id := range f.ids {
		out[i] = getBody(id)
	}
	return out
}
