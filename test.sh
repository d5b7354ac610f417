#!/usr/bin/env bash
# The whole test suite: what CI runs (.ci/run calls this) and what the README
# tells a developer to run. It installs and starts whatever the tests need.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n== %s\n' "$*"; }

step "vet"
go vet ./...
GOOS=wasip1 GOARCH=wasm go vet ./sdk/... ./abi/...

step "cross-build: the SDK and the examples for wasip1 and js, the hosts for arm64"
GOOS=wasip1 GOARCH=wasm go build ./sdk/... ./abi/... ./examples/... ./conformance/testapp/...
GOOS=js GOARCH=wasm go build ./sdk/... ./abi/... ./examples/... ./conformance/testapp/...
GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build ./...

# ---- Dapr -----------------------------------------------------------------
# The Dapr backend's tests run against a real daprd and a real Redis, never a
# mock: Debian's redis-server, and daprd built from Dapr's Go module by
# tools/daprd, cached by version (only the first run on a machine pays the
# build, about ten minutes). A failed install or build fails the run.
step "Dapr test infrastructure: redis-server and daprd"
command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null)
ROAM_DAPRD="$(./tools/daprd/build.sh)"
export ROAM_DAPRD

# ---- Kubernetes -----------------------------------------------------------
# The operator's tests run controller-runtime's envtest against a real etcd
# and a real kube-apiserver, never a mock: both built from their Go modules by
# tools/envtest, cached by version (only the first run on a machine pays the
# build, several minutes). A failed build fails the run.
step "Kubernetes test infrastructure: etcd and kube-apiserver for envtest"
KUBEBUILDER_ASSETS="$(./tools/envtest/build.sh)"
export KUBEBUILDER_ASSETS

# ---- ship -----------------------------------------------------------------
# roam dist's OCI layouts are read back with Debian's skopeo (internal/dist).
step "ship test infrastructure: skopeo"
command -v skopeo >/dev/null || (apt-get update -qq && apt-get install -y -qq skopeo >/dev/null)

step "unit, conformance and end-to-end tests"
go test -count=1 -timeout 20m ./...

# The edge host builds on either WebAssembly runtime (internal/wasmrt):
# wazero by default, wazy with the build tag roam_wazy. Its tests run on both.
step "the edge host on wazy (-tags roam_wazy)"
go test -count=1 -tags roam_wazy -timeout 20m ./host/edge/... ./internal/wasmrt/... ./bench

step "race detector on the concurrent core"
go test -count=1 -race -timeout 20m ./sdk/... ./host ./host/native ./backend/...

step "fuzz: HTTP request decoding and wasm data merging (short runs)"
# Budgets in executions, not seconds: Go 1.26's fuzz coordinator can fail a
# duration-bounded run with "context deadline exceeded" at the deadline
# when its workers are slow to stop (golang/go#75804, fixed in Go 1.27).
go test ./host -run='^$' -fuzz=FuzzServeCall -fuzztime=60000x
go test ./internal/wasmopt -run='^$' -fuzz=FuzzMergeData -fuzztime=50000x

# ---- browser --------------------------------------------------------------
# The browser host (web/) in Debian's headless Chromium, driven through
# playwright-core: the conformance vectors byte for byte against the native
# host, the shop's offline/sync/conflict/reload scenarios, bad modules,
# roam run's page, and the committed shop bundle's freshness. Installs what
# is missing; a second run reuses it.
step "browser: the JS host in headless Chromium"
if ! command -v chromium >/dev/null; then
	apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
if ! command -v node >/dev/null; then
	apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -f web/node_modules/.package-lock.json ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
	(cd web && npm ci --no-audit --no-fund --loglevel=error)
fi
ROAM_BROWSER=1 go test -count=1 -timeout 15m ./web/...

step "all tests passed"
