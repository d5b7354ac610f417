package webtest

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/roam-dev/roam/internal/wasmopt"
)

// TestSetupUsesAppCapabilities: a module that names its app before its
// setup (roam_app_id, ABI v1.2) is set up with the app's own capabilities,
// as on the native and edge hosts. setupapp's setup reads and writes state
// (a count of its setups), invokes an app's Echo and publishes an event it
// consumes itself. It runs at the first load, on the new instances that
// replace one that trapped, and at a second page load on the same
// database, which reads what the others wrote. A setup that calls its own
// app gets an error, not an endless chain of new instances.
func TestSetupUsesAppCapabilities(t *testing.T) {
	b := startBrowser(t)
	ts := serveAssets(t, nil)
	u := pageURL(ts.URL, []string{"conformance", "setupapp"}, `{"db":"setup-`+runID()+`","config":{"echo-app":"conformance"}}`)
	check := func(boot, seen string) {
		t.Helper()
		if r := b.call("setupapp", "Boot", `{}`); r.status != 200 || r.body != boot {
			t.Fatalf("Boot: %v, want 200 %s\n%s", r, boot, b.logs())
		}
		waitReply(t, b, "setupapp", "Seen", seen)
	}
	exit := func() {
		t.Helper()
		if r := b.call("setupapp", "Exit", `{}`); r.status != 500 || !strings.Contains(r.body, "exited with status 3") {
			t.Fatalf("Exit: %v", r)
		}
	}
	if e := b.openPage(u); e != "" {
		t.Fatalf("load: %s\n%s", e, b.logs())
	}
	check(`{"boots":1,"echo":{"from":"setup"}}`, "[1]")
	exit()
	check(`{"boots":2,"echo":{"from":"setup"}}`, "[1,2]")

	if r := b.call("setupapp", "EchoFrom", `"setupapp"`); r.status != 200 {
		t.Fatalf("EchoFrom: %v", r)
	}
	exit()
	check(`{"boots":3,"echoError":"app setupapp was called during its own setup: a setup cannot call its own app"}`, "[1,2,3]")

	if e := b.openPage(u); e != "" {
		t.Fatalf("second page load: %s\n%s", e, b.logs())
	}
	// At a load the app is not callable until its setup is done.
	check(`{"boots":4,"echoError":"invoke setupapp.Echo: app setupapp is not loaded in this page and no remote host is configured"}`, "[1,2,3,4]")
}

// TestSetupWithoutAppID: a module without roam_app_id (built before ABI
// v1.2) is set up before the host knows its app, as before: a setup that
// uses state fails to load with the message that says why, and one that
// does not loads and serves, state included. A second module of a loaded
// app is refused before its setup runs.
func TestSetupWithoutAppID(t *testing.T) {
	b := startBrowser(t)
	files := map[string][]byte{
		"setupapp.wasm":    withoutExport(t, readAsset(t, "modules/setupapp.wasm"), "roam_app_id"),
		"conformance.wasm": withoutExport(t, readAsset(t, "modules/conformance.wasm"), "roam_app_id"),
		"setupapp-2.wasm":  readAsset(t, "modules/setupapp.wasm"),
	}
	ts := serveAssets(t, map[string]http.Handler{"/web/old/": serveModules("/web/old/", files)})

	got := b.openPage(pageURL(ts.URL, []string{"./old/setupapp.wasm"}, `{"db":"old-`+runID()+`"}`))
	for _, w := range []string{
		"setupapp.wasm: app setup failed: ",
		"state, publish and invoke are not available while the host reads a module's manifest (during roam_init): use them from handlers, not from setup",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("old setupapp: error %q lacks %q", got, w)
		}
	}

	if e := b.openPage(pageURL(ts.URL, []string{"./old/conformance.wasm"}, `{"db":"old-`+runID()+`"}`)); e != "" {
		t.Fatalf("old conformance: %s", e)
	}
	if r := b.call("conformance", "Put", `{"key":"k","value":1}`); r.status != 200 {
		t.Fatalf("old conformance: Put: %v", r)
	}
	if r := b.call("conformance", "Get", `{"key":"k"}`); r.status != 200 || !strings.Contains(r.body, `"value":1`) {
		t.Fatalf("old conformance: Get: %v", r)
	}

	got = b.openPage(pageURL(ts.URL, []string{"setupapp", "./old/setupapp-2.wasm"}, `{"db":"dup-`+runID()+`"}`))
	if got != "app setupapp is already loaded here" {
		t.Errorf("second setupapp: error %q", got)
	}
	if r := b.call("setupapp", "Boot", `{}`); r.status != 200 || r.body != `{"boots":1}` {
		t.Errorf("after the refused second module: Boot: %v, want one setup", r)
	}
}

// waitReply calls app.method until it answers 200 with want.
func waitReply(t *testing.T, b *browser, app, method, want string) {
	t.Helper()
	var r callResult
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if r = b.call(app, method, `{}`); r.status == 200 && r.body == want {
			return
		}
	}
	t.Fatalf("%s.%s: %v, want 200 %s\n%s", app, method, r, want, b.logs())
}

// withoutExport returns a copy of wasm whose export name is renamed, as a
// module built before the export existed would lack it.
func withoutExport(t *testing.T, wasm []byte, name string) []byte {
	t.Helper()
	out, err := wasmopt.RenameExport(wasm, name, name[:len(name)-1]+"X")
	if err != nil {
		t.Fatal(err)
	}
	return out
}
