package dynamic

import (
	"os"

	"github.com/roam-dev/roam/sdk"
)

var App = sdk.NewApp(os.Getenv("APP_ID"), func(sdk.Env, *sdk.Router) error { return nil })
