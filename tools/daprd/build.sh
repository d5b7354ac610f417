#!/usr/bin/env bash
# Builds daprd from Dapr's Go module, once per version: the binary is cached
# under $ROAM_CACHE (default ~/.cache/roam) and reused by later runs. Prints
# the binary's path on stdout. A failed build fails loudly.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="$(awk '{for (i = 1; i < NF; i++) if ($i == "github.com/dapr/dapr") {print $(i+1); exit}}' "$here/go.mod")"
[[ -n "$version" ]] || { echo "cannot find the dapr version in $here/go.mod" >&2; exit 1; }
cache="${ROAM_CACHE:-$HOME/.cache/roam}/daprd/$version"
bin="$cache/daprd"
stamp="$cache/source.sha256"
sum="$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" | sha256sum | cut -d' ' -f1)"
if [[ -x "$bin" && -f "$stamp" && "$(cat "$stamp")" == "$sum" ]]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$cache"
echo "building daprd $version (first time on this machine: about 10 minutes)" >&2
( cd "$here" && CGO_ENABLED=0 go build -trimpath -tags stablecomponents -o "$bin.tmp" . )
mv "$bin.tmp" "$bin"
echo "$sum" > "$stamp"
echo "$bin"
