package host

import (
	"context"
	"os"
	"strings"

	"github.com/roam-dev/roam/sdk"
)

// ConfigEnvPrefix starts the environment variables that set configuration
// keys: key "inventory-app-id" is ROAM_CONFIG_INVENTORY_APP_ID.
const ConfigEnvPrefix = "ROAM_CONFIG_"

// ConfigEnvName is the environment variable that sets config key: the key
// upper-cased, with every character other than a letter or digit turned
// into '_', after ConfigEnvPrefix.
func ConfigEnvName(key string) string {
	var b strings.Builder
	b.Grow(len(ConfigEnvPrefix) + len(key))
	b.WriteString(ConfigEnvPrefix)
	for _, r := range key {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// EnvConfig layers the process environment over a backend's configuration:
// a key whose ConfigEnvName is set in the environment (even to "") takes
// that value, and any other key is asked of next. This is how a Deployment
// configures one app without a configuration store, the same on every
// backend and in both hosts.
func EnvConfig(next sdk.Config, lookupEnv func(string) (string, bool)) sdk.Config {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	return envConfig{next: next, lookup: lookupEnv}
}

type envConfig struct {
	next   sdk.Config
	lookup func(string) (string, bool)
}

func (c envConfig) Get(ctx context.Context, key string) (string, error) {
	if key != "" {
		if v, ok := c.lookup(ConfigEnvName(key)); ok {
			return v, nil
		}
	}
	if c.next == nil {
		return "", sdk.Errorf(sdk.NotFound, "config key %q is not set (set %s)", key, ConfigEnvName(key))
	}
	return c.next.Get(ctx, key)
}
