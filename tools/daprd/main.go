// Command daprd is Dapr's sidecar, built from Dapr's Go module for Roam's
// tests and CI (there is no download site to fetch a release from here).
//
// It is daprd's own main plus one registration: the SQLite name resolver,
// which Dapr compiles only into "allcomponents" builds, lets several sidecars
// on one machine find each other without mDNS. Build with
// -tags stablecomponents; see build.sh.
package main

import (
	"github.com/dapr/components-contrib/nameresolution/sqlite"
	"github.com/dapr/dapr/cmd/daprd/app"
	nrLoader "github.com/dapr/dapr/pkg/components/nameresolution"
)

func main() {
	nrLoader.DefaultRegistry.RegisterComponent(sqlite.NewResolver, "sqlite")
	app.Run()
}
