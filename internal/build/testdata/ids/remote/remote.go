package remote

import (
	n "github.com/roam-dev/roam/internal/build/testdata/ids/names"
	roam "github.com/roam-dev/roam/sdk"
)

var App = roam.NewApp(n.Orders, func(roam.Env, *roam.Router) error { return nil })
