package host

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/roam-dev/roam/sdk"
)

// WebAssets are what a host serves to browsers that run its apps
// themselves (the browser host, web/): a page and the wasm modules of the
// apps.
type WebAssets struct {
	// Page holds the page's files, served under /web/ (index.html at /web/).
	// May be nil.
	Page fs.FS
	// Modules maps an app id to its wasm module, served at
	// /web/modules/{app}.wasm with Content-Type application/wasm.
	Modules map[string][]byte
	// Lookup, when set, is asked before Modules: a host whose modules
	// change at run time (the edge host's hot reload) serves the current
	// bytes. A new slice is a new version.
	Lookup func(app string) ([]byte, bool)
}

func (a *WebAssets) module(app string) ([]byte, bool) {
	if a.Lookup != nil {
		if b, ok := a.Lookup(app); ok {
			return b, true
		}
	}
	b, ok := a.Modules[app]
	return b, ok && b != nil
}

// webRoutes registers the browser-facing routes the options ask for: the
// web assets and the state sync API. Called from routes.
func (s *Server) webRoutes(mux *http.ServeMux) {
	if s.opts.StateAPI {
		mux.HandleFunc("POST /v1/apps/{app}/state/{store}/bulk", s.stateAuth(s.serveStateBulk))
		mux.HandleFunc("POST /v1/apps/{app}/state/{store}/transact", s.stateAuth(s.serveStateTransact))
		mux.HandleFunc("POST /v1/apps/{app}/publish/{pubsub}/{topic}", s.stateAuth(s.servePublish))
	}
	if s.opts.Web != nil {
		st := &static{assets: s.opts.Web, files: map[string]*staticFile{}}
		mux.Handle("GET /web/", st)
		mux.Handle("GET /{$}", http.RedirectHandler("/web/", http.StatusFound))
	}
}

// ---- CORS ----

// CheckCORSOrigins validates a list of allowed origins: "*", an origin
// such as https://shop.example:8443, or one whose port is a wildcard, such
// as http://127.0.0.1:*.
func CheckCORSOrigins(origins []string) error {
	for _, o := range origins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(strings.Replace(o, ":*", ":0", 1))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return fmt.Errorf("CORS origin %q: want scheme://host[:port], a port of *, or *", o)
		}
		// What no browser's Origin holds, so that the entry matched nothing
		// while it read as a rule: a wildcard host (https://*.shop.example
		// was taken literally), user info, a fragment.
		if strings.Contains(u.Host, "*") || u.User != nil || u.Fragment != "" || strings.Contains(o, "#") {
			return fmt.Errorf("CORS origin %q: want scheme://host[:port] with a host spelt out (only the port may be *, as in http://127.0.0.1:*), or * for every origin", o)
		}
	}
	return nil
}

// originAllowed reports whether a request's Origin is in the list.
func originAllowed(allowed []string, origin string) bool {
	for _, a := range allowed {
		a = withoutDefaultPort(strings.TrimSuffix(a, "/"))
		switch {
		case a == "*", strings.EqualFold(a, origin):
			return true
		case strings.HasSuffix(a, ":*"):
			base := a[:len(a)-2]
			if strings.EqualFold(origin, base) {
				return true
			}
			if len(origin) > len(base)+1 && strings.EqualFold(origin[:len(base)+1], base+":") {
				if _, err := strconv.ParseUint(origin[len(base)+1:], 10, 16); err == nil {
					return true
				}
			}
		}
	}
	return false
}

// withoutDefaultPort drops the scheme's own port from an allowed origin
// (https://shop.example:443): a browser's Origin never spells it, so the
// entry matched nothing.
func withoutDefaultPort(a string) string {
	l := strings.ToLower(a)
	switch {
	case strings.HasPrefix(l, "https://") && strings.HasSuffix(l, ":443"):
		return a[:len(a)-4]
	case strings.HasPrefix(l, "http://") && strings.HasSuffix(l, ":80"):
		return a[:len(a)-3]
	}
	return a
}

// withCORS answers CORS for the allowed origins: preflights, and the
// headers that let a page of those origins read replies. With no origins
// it adds no CORS header, so browsers refuse cross-origin calls (closed by
// default).
//
// It also refuses, 403, a browser's unsafe request (POST, PUT, DELETE...)
// sent by a page of an origin not in the list, with or without a list
// (net/http's CrossOriginProtection: Sec-Fetch-Site, else Origin against
// Host). Without that, CORS only kept the page from reading the reply: a
// form's or a text/plain POST needs no preflight, so any web site a user
// visited could call methods and write state (the state sync API) on a
// host the user's browser reaches, roam run's on 127.0.0.1 among them.
// Clients that are not browsers send neither header and pass.
func (s *Server) withCORS(next http.Handler) http.Handler {
	allowed := s.opts.CORSOrigins
	csrf := http.NewCrossOriginProtection()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if len(allowed) > 0 {
			// On every reply, with an Origin or without: a cache must not
			// serve the reply to one origin (or to none) to another.
			h.Add("Vary", "Origin")
		}
		if err := csrf.Check(r); err != nil && !originAllowed(allowed, r.Header.Get("Origin")) {
			writeError(w, http.StatusForbidden, sdk.Errorf(sdk.InvalidArgument,
				"cross-origin %s refused: a page of origin %s may not call this host (allow it with --cors-origins)", r.Method, sdk.QuoteName(r.Header.Get("Origin"))))
			return
		}
		if len(allowed) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		if !originAllowed(allowed, origin) {
			if preflight {
				writeError(w, http.StatusForbidden, sdk.Errorf(sdk.InvalidArgument, "origin %s may not call this host (allowed: %s)", origin, strings.Join(allowed, ", ")))
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", "X-Request-Id")
		if preflight {
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, OPTIONS")
			// traceparent and tracestate: a browser host's invocation carries
			// its page's trace context (web/README.md, "Trace context").
			// Authorization: the state sync API's token (StateAPIToken).
			h.Set("Access-Control-Allow-Headers", "Content-Type, X-Request-Id, X-Roam-Caller, traceparent, tracestate, Authorization")
			h.Set("Access-Control-Max-Age", "600")
			if r.Header.Get("Access-Control-Request-Private-Network") == "true" {
				h.Set("Access-Control-Allow-Private-Network", "true")
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ---- static files ----

// static serves WebAssets. Each file is read once and kept with its gzip
// encoding and ETag, so a module is compressed once per process, not once
// per request.
type static struct {
	assets *WebAssets
	mu     sync.Mutex
	files  map[string]*staticFile
}

type staticFile struct {
	raw, gz []byte
	ctype   string
	etag    string
	mod     time.Time
	size    int64
}

// compressible lists the types worth gzipping.
func compressible(ctype string) bool {
	return strings.HasPrefix(ctype, "text/") || strings.HasPrefix(ctype, "application/wasm") ||
		strings.HasPrefix(ctype, "application/json") || strings.HasPrefix(ctype, "image/svg")
}

func (st *static) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/web/")
	if name == "" || strings.HasSuffix(name, "/") {
		name += "index.html"
	}
	f, err := st.file(name)
	if err != nil {
		writeError(w, http.StatusNotFound, sdk.Errorf(sdk.NotFound, "no file %s; modules are at /web/modules/{app}.wasm (apps: %s)", r.URL.Path, strings.Join(st.moduleIDs(), ", ")))
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.ctype)
	h.Set("ETag", f.etag)
	// Revalidate every time: a rebuilt module must reach the page at once,
	// and an unchanged one costs a 304 without a body.
	h.Set("Cache-Control", "no-cache")
	h.Add("Vary", "Accept-Encoding")
	h.Set("X-Content-Type-Options", "nosniff")
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := f.raw
	if f.gz != nil && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		body = f.gz
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// acceptsGzip reads Accept-Encoding: gzip, unless given q=0.
func acceptsGzip(ae string) bool {
	for _, part := range strings.Split(ae, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") || strings.TrimSpace(coding) == "*" {
			q := strings.ReplaceAll(params, " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

func (st *static) moduleIDs() []string {
	ids := make([]string, 0, len(st.assets.Modules))
	for id := range st.assets.Modules {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// moduleFor returns the module a path such as modules/orders.wasm names.
func (st *static) moduleFor(name string) ([]byte, bool) {
	id, ok := strings.CutPrefix(name, "modules/")
	if !ok || !strings.HasSuffix(id, ".wasm") {
		return nil, false
	}
	return st.assets.module(strings.TrimSuffix(id, ".wasm"))
}

// sameSlice reports whether a and b are the same bytes in memory: a
// module's bytes never change, so its cache entry is found by identity.
func sameSlice(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// file returns the cached file, re-reading a page file whose size or
// modification time changed (roam run serves a directory being rebuilt).
func (st *static) file(name string) (*staticFile, error) {
	var raw []byte
	var mod time.Time
	var size int64
	if wasm, ok := st.moduleFor(name); ok {
		raw = wasm
		size = int64(len(raw))
		st.mu.Lock()
		f := st.files[name]
		st.mu.Unlock()
		if f != nil && sameSlice(f.raw, raw) {
			return f, nil
		}
	} else {
		if st.assets.Page == nil || !fs.ValidPath(name) {
			return nil, fs.ErrNotExist
		}
		fi, err := fs.Stat(st.assets.Page, name)
		if err != nil || fi.IsDir() {
			return nil, fs.ErrNotExist
		}
		mod, size = fi.ModTime(), fi.Size()
		st.mu.Lock()
		f := st.files[name]
		st.mu.Unlock()
		if f != nil && f.mod.Equal(mod) && f.size == size {
			return f, nil
		}
		if raw, err = fs.ReadFile(st.assets.Page, name); err != nil {
			return nil, err
		}
		size = int64(len(raw))
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	f := &staticFile{raw: raw, mod: mod, size: size, ctype: mime.TypeByExtension(path.Ext(name))}
	if f.ctype == "" {
		f.ctype = "application/octet-stream"
	}
	if path.Ext(name) == ".js" || path.Ext(name) == ".mjs" {
		f.ctype = "text/javascript; charset=utf-8"
	}
	sum := sha256.Sum256(raw)
	f.etag = `"` + hex.EncodeToString(sum[:12]) + `"`
	if compressible(f.ctype) && len(raw) > 256 {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		zw.Write(raw)
		zw.Close()
		if b.Len() < len(raw) {
			f.gz = b.Bytes()
		}
	}
	st.files[name] = f
	return f, nil
}
