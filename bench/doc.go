// Package bench holds Roam's performance harness: Go benchmarks of the shop
// example's hot paths (bench_test.go) and the roambench command
// (bench/cmd/roambench), which measures a release build of the shop as a
// user would run it. BENCHMARKS.md at the repository root records the
// figures, the commands that produced them and what bounds each one.
//
// The benchmarks call orders.Create and orders.Get
//
//   - in-process, through host.Server.Call (no HTTP), and
//   - over HTTP on loopback, against host.Server.Serve on a real listener,
//
// on the embedded backend (bbolt in a temporary directory, fsync on every
// commit) and, for orientation, on the memory backend. Each has a serial and
// a RunParallel variant. BenchmarkTransport and BenchmarkCodec isolate two
// parts of a Get: the host's HTTP transport against bare net/http, and the
// SDK's JSON codec on the shop's types. BenchmarkEdgeCompile compiles the
// shop's wasm modules as a cold `roam edge` start does, serially and in
// parallel; roambench's edge part measures the rest of the edge host
// against the native shop in one run.
//
//	go test ./bench -run '^$' -bench . -benchtime 1s -count 1
package bench
