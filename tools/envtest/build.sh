#!/usr/bin/env bash
# Builds the binaries controller-runtime's envtest runs, etcd and
# kube-apiserver, from their Go modules (tools/envtest/etcd and
# tools/envtest/kube-apiserver: setup-envtest cannot download here), once per
# version: they are cached in ${ROAM_CACHE:-~/.cache/roam}/envtest/<kubernetes
# version>/ and reused by later runs. Prints that directory, which holds
# exactly etcd and kube-apiserver (use it as KUBEBUILDER_ASSETS), on stdout;
# progress goes to stderr. A failed build fails loudly.
#
# Each binary is rebuilt when its module's go.mod, go.sum or main.go (or the
# build flags below) change; the source hashes are kept next to the
# directory, not in it. Concurrent runs wait for each other.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

modversion() { # modversion MODULE GO.MOD: the version GO.MOD requires MODULE at
	awk -v m="$1" '$1 !~ /^\/\// {for (i = 1; i < NF; i++) if ($i == m) {print $(i+1); exit}}' "$2"
}
k8s="$(modversion k8s.io/kubernetes "$here/kube-apiserver/go.mod")"
etcd="$(modversion go.etcd.io/etcd/server/v3 "$here/etcd/go.mod")"
[[ "$k8s" =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]] || { echo "tools/envtest/build.sh: cannot find a k8s.io/kubernetes release in $here/kube-apiserver/go.mod (got '$k8s')" >&2; exit 1; }
major="${BASH_REMATCH[1]}" minor="${BASH_REMATCH[2]}"
[[ -n "$etcd" ]] || { echo "tools/envtest/build.sh: cannot find the etcd version in $here/etcd/go.mod" >&2; exit 1; }

root="${ROAM_CACHE:-$HOME/.cache/roam}/envtest"
dir="$root/$k8s"
mkdir -p "$dir"

# The tool modules stand alone: no workspace, whatever the caller's settings.
export GOWORK=off CGO_ENABLED=0

# What clients see as the server's version (kubectl version, discovery), as
# Kubernetes' release build stamps it.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$k8s -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.gitCommit="
done

sum() { # sum NAME FLAGS...: the hash of a tool module's sources and build flags
	local name="$1"
	shift
	{ cat "$here/$name/go.mod" "$here/$name/go.sum" "$here/$name/main.go"; printf '%s\n' "$@"; } | sha256sum | cut -d' ' -f1
}

fresh() { # fresh NAME SUM: the cached binary NAME was built from SUM
	[[ -x "$dir/$1" && -f "$root/$k8s.$1.sha256" && "$(cat "$root/$k8s.$1.sha256")" == "$2" ]]
}

build() { # build NAME ABOUT FLAGS...
	local name="$1" about="$2" s
	shift 2
	s="$(sum "$name" "$@")"
	fresh "$name" "$s" && return 0
	echo "tools/envtest: building $name ($about; the first time on this machine: $([[ $name == etcd ]] && echo "about a minute" || echo "about 6 to 10 minutes"))" >&2
	local start=$SECONDS tmp="$dir/.$name.tmp.$$"
	if ! (cd "$here/$name" && go build -trimpath "$@" -o "$tmp" .); then
		rm -f "$tmp"
		echo "tools/envtest/build.sh: building $name failed" >&2
		exit 1
	fi
	if ! "$tmp" --version >&2; then
		rm -f "$tmp"
		echo "tools/envtest/build.sh: the $name just built does not run" >&2
		exit 1
	fi
	mv -f "$tmp" "$dir/$name"
	echo "$s" > "$root/$k8s.$name.sha256"
	echo "tools/envtest: built $name in $((SECONDS - start))s ($(du -m "$dir/$name" | cut -f1) MB)" >&2
}

# One build at a time per version: go test runs several test binaries at once,
# and each may call this script.
exec 9>"$root/$k8s.lock"
flock 9

build etcd "etcd $etcd" -ldflags "-s -w"
build kube-apiserver "kube-apiserver $k8s" -ldflags "$ldflags"

# Nothing else in the directory: it is handed to envtest as is.
for f in "$dir"/* "$dir"/.[!.]*; do
	[[ -e "$f" ]] || continue
	case "${f##*/}" in etcd | kube-apiserver) ;; *) rm -rf "$f" ;; esac
done
echo "$dir"
