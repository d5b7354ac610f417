// Package webtest holds the browser host's tests: they build the apps as
// wasm modules and the host's JavaScript bundles, serve them, and drive
// Debian's headless Chromium (through playwright-core, see
// web/test/runner.mjs) to run the conformance vectors, the shop's offline,
// sync and conflict scenarios, and bad-input cases in a real page.
//
// They need node, web/node_modules (npm ci) and /usr/bin/chromium, so they
// run only when ROAM_BROWSER=1; test.sh's browser step installs all three
// and sets it. Without it every test skips.
package webtest
