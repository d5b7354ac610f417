package webtest

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

// testPage loads the modules named in ?modules= into a Host created with
// the JSON options in ?opts=, and sets body[data-ready] (the app ids) or
// body[data-error] (the load error) when done. window.roamHost is the Host.
const testPage = `<!doctype html>
<meta charset="utf-8">
<title>roam browser host test</title>
<pre id="error"></pre>
<script type="module">
import { Host } from './roam.js';
const q = new URLSearchParams(location.search);
window.roamHost = new Host(JSON.parse(q.get('opts') || '{}'));
window.roamReady = (async () => {
  const ids = [];
  for (const m of (q.get('modules') || '').split(',').filter(Boolean)) {
    ids.push((await window.roamHost.load(m.includes('/') ? m : './modules/' + m + '.wasm')).id);
  }
  return ids;
})();
window.roamReady.then(
  (ids) => { document.body.dataset.ready = ids.join(','); },
  (e) => { document.getElementById('error').textContent = e.message; document.body.dataset.error = e.message; });
</script>
`

// serveAssets serves the built bundles and modules under /web/, the test
// page at /web/test.html, and extra handlers.
func serveAssets(t testing.TB, extra map[string]http.Handler) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/web/test.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(testPage))
	})
	mux.Handle("/web/", http.StripPrefix("/web/", http.FileServer(http.Dir(assets))))
	for p, h := range extra {
		mux.Handle(p, h)
	}
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

// pageURL is the test page loading modules with the host options opts.
func pageURL(base string, modules []string, opts string) string {
	return base + "/web/test.html?modules=" + url.QueryEscape(strings.Join(modules, ",")) + "&opts=" + url.QueryEscape(opts)
}

// openPage navigates to the test page and waits until its modules loaded;
// it returns the load error, if any.
func (b *browser) openPage(u string) string {
	b.t.Helper()
	b.must(map[string]any{"op": "goto", "url": u})
	v := b.waitFor(`() => document.body.dataset.ready !== undefined || document.body.dataset.error !== undefined`, nil)
	_ = v
	var st struct{ Ready, Error *string }
	b.eval(`() => ({ready: document.body.dataset.ready ?? null, error: document.body.dataset.error ?? null})`, nil, &st)
	if st.Error != nil {
		return *st.Error
	}
	return ""
}

var _ = filepath.Join
