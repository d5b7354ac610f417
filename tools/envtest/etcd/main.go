// Command etcd is etcd's server, built from etcd's Go module for Roam's
// operator tests: controller-runtime's envtest runs it next to a real
// kube-apiserver (see tools/envtest/build.sh). There is no download site to
// fetch a release from here, so it is etcd's own main, nothing more.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
