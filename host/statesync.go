package host

// The state sync API: what a browser host (web/) uses to push the state
// changes its apps made locally, offline or not, and to pull the server's.
// It is served only with Options.StateAPI (roam run turns it on), because it
// reads and writes an app's state without going through the app's methods.
//
//	POST /v1/apps/{app}/state/{store}/bulk      {"keys":[k...]}
//	  200 {"items":[{"key","found","value","etag"}...]}    one per key, in order
//	POST /v1/apps/{app}/state/{store}/transact  {"ops":[{"op":"set"|"delete","key","value","etag","if_absent","ttl_ms"}...]}
//	  200 {"items":[...]}    the keys' items after the write, in op order
//	  409 {"code":"Conflict","message":...,"conflicts":[item...]}
//	                         nothing written; the server's current item of
//	                         every key whose condition failed
//	POST /v1/apps/{app}/publish/{pubsub}/{topic} {"type","datacontenttype","data_base64","metadata"}
//	  204                    published as the app, with the backend's delivery
//
// Who may call it: whoever reaches the port, unless Options.StateAPIToken
// is set (ROAM_STATE_API_TOKEN), and then whoever holds that token, for
// every app the host serves (stateAuth). A browser page of another origin
// is refused besides, unless --cors-origins lets it in (withCORS).
//
// Values travel base64-encoded (Go's JSON for []byte). A push is
// conditional, key by key: a set with etag (or if_absent) and a delete with
// etag apply only if the server's item is still the one the client last
// saw, and either every op applies or none does. That is what makes a
// concurrent change on the server a reported conflict instead of a silent
// overwrite.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/roam-dev/roam/abi"
	"github.com/roam-dev/roam/sdk"
)

// maxSyncKeys bounds the keys of one bulk or transact request.
const maxSyncKeys = 1000

// A bulk request reads its distinct keys in chunks: the first of
// bulkChunk keys, each later one twice the last, up to maxBulkChunk, while
// the reply so far stays below a sixteenth of its bound (bulkGrowth). Each
// read is a round trip to the store (Dapr's sidecar), and a fixed 16 made
// 1000 keys 63 of them; growing makes it 7, and a first read of 16 keeps a
// request whose first values are large from costing more than it did.
const (
	bulkChunk    = 16
	maxBulkChunk = 256
	bulkGrowth   = 16
)

// syncReplyBytes bounds the values of one bulk reply: 8 times the body
// limit (32 MiB by default), so that a store filled by pushes of the
// largest size still comes back in replies of a few keys each.
func (s *Server) syncReplyBytes() int64 {
	return min(s.opts.MaxBodyBytes, math.MaxInt64/8) * 8
}

// SyncItem is one key's item in the state sync API.
type SyncItem struct {
	Key   string `json:"key"`
	Found bool   `json:"found"`
	Value []byte `json:"value,omitempty"`
	ETag  string `json:"etag,omitempty"`
}

// SyncOp is one write of a push.
type SyncOp struct {
	Op       string `json:"op"` // "set" or "delete"
	Key      string `json:"key"`
	Value    []byte `json:"value,omitempty"`
	ETag     string `json:"etag,omitempty"`
	IfAbsent bool   `json:"if_absent,omitempty"`
	TTLMs    int64  `json:"ttl_ms,omitempty"`
}

type syncConflict struct {
	ErrorBody
	Conflicts []SyncItem `json:"conflicts"`
}

// EnvStateAPIToken names the environment variable the hosts read
// Options.StateAPIToken from: a variable, not a flag, so that the token
// stays out of process listings, /debug/pprof/cmdline and a Pod's args (a
// Secret's env entry).
const EnvStateAPIToken = "ROAM_STATE_API_TOKEN"

// stateAuth refuses, 401, a state sync API request without the bearer
// token of Options.StateAPIToken, before it reads the body or looks the
// app up (whose 404 would tell apps apart to a caller without the token).
// The digests are compared, so that the time taken tells nothing of the
// token, its length included.
func (s *Server) stateAuth(h http.HandlerFunc) http.HandlerFunc {
	if s.stateToken == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if !bearer(r.Header.Get("Authorization"), s.stateToken) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="roam state API"`)
			writeError(w, http.StatusUnauthorized, sdk.NewError(sdk.FailedPrecondition,
				"unauthorized: the state sync API wants the header Authorization: Bearer <token>, with the token the host was given in "+EnvStateAPIToken))
			return
		}
		h(w, r)
	}
}

// bearer reports whether auth is "Bearer <token>" with the token whose
// SHA-256 is want. The scheme is case-insensitive (RFC 9110, section 11.1).
func bearer(auth string, want *[sha256.Size]byte) bool {
	const scheme = "Bearer "
	if len(auth) < len(scheme) || !strings.EqualFold(auth[:len(scheme)], scheme) {
		return false
	}
	got := sha256.Sum256([]byte(auth[len(scheme):]))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// syncRequest checks the app, reads and decodes the body into v, and
// returns the context to run under; on failure it has written the reply.
func (s *Server) syncRequest(w http.ResponseWriter, r *http.Request, v any) (context.Context, context.CancelFunc, bool) {
	app := r.PathValue("app")
	if _, ok := s.lookup(app); !ok {
		writeError(w, http.StatusNotFound, s.unknownApp(app))
		return nil, nil, false
	}
	body, err := readBody(r, s.opts.MaxBodyBytes)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, sdk.Errorf(sdk.InvalidArgument, "request body exceeds %d bytes", s.opts.MaxBodyBytes))
			return nil, nil, false
		}
		writeError(w, http.StatusBadRequest, sdk.Errorf(sdk.InvalidArgument, "reading request body: %v", err))
		return nil, nil, false
	}
	// Keys are identities: a key must reach the store as the client wrote
	// it. encoding/json would replace invalid UTF-8, and an escaped lone
	// surrogate (\ud800, which JSON.stringify writes for a lone one), with
	// U+FFFD without a word, so that the push wrote, and the reply named, a
	// key the client never had (and two such keys were the same one).
	if !utf8.Valid(body) {
		writeError(w, http.StatusBadRequest, sdk.NewError(sdk.InvalidArgument, "request body is not valid JSON"))
		return nil, nil, false
	}
	if err := json.Unmarshal(body, v); err != nil {
		writeError(w, http.StatusBadRequest, sdk.Errorf(sdk.InvalidArgument, "%s: request body: %v", r.URL.Path, err))
		return nil, nil, false
	}
	if i := loneSurrogate(body); i >= 0 {
		writeError(w, http.StatusBadRequest, sdk.Errorf(sdk.InvalidArgument, "%s: request body: %s at byte %d is a lone UTF-16 surrogate, which no UTF-8 string holds", r.URL.Path, body[i:i+6], i))
		return nil, nil, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
	return ctx, cancel, true
}

// loneSurrogate returns the offset of the first \uXXXX escape in body that
// is a UTF-16 surrogate without its other half, or -1. It reads body as JSON
// text, and only needs to be exact for valid JSON: a backslash there is
// always inside a string and starts an escape.
func loneSurrogate(body []byte) int {
	surrogate := func(i int) (r rune, ok bool) {
		if i+6 > len(body) || body[i] != '\\' || body[i+1] != 'u' {
			return 0, false
		}
		for _, c := range body[i+2 : i+6] {
			var v byte
			switch {
			case '0' <= c && c <= '9':
				v = c - '0'
			case 'a' <= c && c <= 'f':
				v = c - 'a' + 10
			case 'A' <= c && c <= 'F':
				v = c - 'A' + 10
			default:
				return 0, false
			}
			r = r<<4 | rune(v)
		}
		return r, 0xd800 <= r && r < 0xe000
	}
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' {
			continue
		}
		r, ok := surrogate(i)
		if !ok {
			i++ // the escaped character: \\ must not start another escape
			continue
		}
		if r >= 0xdc00 {
			return i // a low half first
		}
		if lo, ok := surrogate(i + 6); !ok || lo < 0xdc00 {
			return i
		}
		i += 11
	}
	return -1
}

func (s *Server) bulk(ctx context.Context, st sdk.State, keys []string) ([]SyncItem, error) {
	items, err := st.BulkGet(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := make([]SyncItem, len(items))
	for i, it := range items {
		out[i] = SyncItem{Key: keys[i], Found: it.Found(), Value: it.Value, ETag: it.ETag}
	}
	return out, nil
}

func (s *Server) serveStateBulk(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Keys []string `json:"keys"`
	}
	ctx, cancel, ok := s.syncRequest(w, r, &req)
	if !ok {
		return
	}
	defer cancel()
	if len(req.Keys) > maxSyncKeys {
		writeError(w, http.StatusBadRequest, sdk.Errorf(sdk.InvalidArgument, "at most %d keys per request, got %d", maxSyncKeys, len(req.Keys)))
		return
	}
	// The reply is bounded, and read a few keys at a time: a key may be
	// asked for many times over, so that one request of 1000 copies of a
	// key holding 256 KiB made the host allocate 1.6 GB (and 3 MiB, 19 GB).
	//
	// Each distinct key is read once, and its item stands for every copy:
	// the reply is the one of reading each copy on its own, as it was,
	// except that copies can no longer differ by a write between reads.
	// The bound counts every copy, as the reply holds them all.
	//
	// What this holds: a read starts only while size (the reply's values,
	// copies counted, so at least the values held) is within limit, and
	// holds one chunk's values more; a copy holds nothing more, and the
	// JSON reply is built only within limit. A chunk has more than
	// bulkChunk keys only when size is within limit/bulkGrowth. So with V
	// the largest value in the store, the values held never pass
	// max(limit + bulkChunk*V, limit/bulkGrowth + maxBulkChunk*V): the
	// reply overshoots the limit by one chunk's values at most, and those
	// are distinct stored values, never copies.
	st := s.backend.State(r.PathValue("app"), r.PathValue("store"))
	limit := s.syncReplyBytes()
	index := make(map[string]int, len(req.Keys))
	keys := make([]string, 0, len(req.Keys)) // distinct, in request order
	type distinct struct {
		first  int   // where the key is first asked for
		copies int64 // how many times
	}
	of := make([]distinct, 0, len(req.Keys)) // of[j]: of keys[j]
	which := make([]int, len(req.Keys))      // which[i]: req.Keys[i]'s index in keys
	for i, k := range req.Keys {
		j, ok := index[k]
		if !ok {
			j = len(keys)
			index[k] = j
			keys = append(keys, k)
			of = append(of, distinct{first: i})
		}
		of[j].copies++
		which[i] = j
	}
	items := make([]SyncItem, len(req.Keys))
	size := int64(0)
	for off, n := 0, bulkChunk; off < len(keys); {
		end := min(off+n, len(keys))
		part, err := s.bulk(ctx, st, keys[off:end])
		if err != nil {
			writeError(w, HTTPStatus(sdk.CodeOf(err)), err)
			return
		}
		for j, it := range part {
			size += int64(len(it.Value)) * of[off+j].copies
			items[of[off+j].first] = it
		}
		if size > limit {
			writeError(w, http.StatusBadRequest, sdk.Errorf(sdk.InvalidArgument,
				"the values of these %d keys add up to more than %d bytes, the most one reply holds: ask for fewer keys at a time", len(req.Keys), limit))
			return
		}
		off = end
		if size <= limit/bulkGrowth {
			n = min(2*n, maxBulkChunk)
		}
	}
	for i, j := range which {
		items[i] = items[of[j].first]
	}
	b, _ := json.Marshal(map[string]any{"items": items})
	writeJSON(w, http.StatusOK, b)
}

// conflicts returns the current item of every op whose condition cur
// fails.
func conflicts(ops []SyncOp, cur []SyncItem) []SyncItem {
	out := []SyncItem{}
	for i, op := range ops {
		c := cur[i]
		bad := op.ETag != "" && (!c.Found || c.ETag != op.ETag)
		if op.Op == "set" && op.IfAbsent && c.Found {
			bad = true
		}
		if bad {
			out = append(out, c)
		}
	}
	return out
}

func (s *Server) serveStateTransact(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Ops []SyncOp `json:"ops"`
	}
	ctx, cancel, ok := s.syncRequest(w, r, &req)
	if !ok {
		return
	}
	defer cancel()
	if len(req.Ops) > maxSyncKeys {
		writeError(w, http.StatusBadRequest, sdk.Errorf(sdk.InvalidArgument, "at most %d ops per request, got %d", maxSyncKeys, len(req.Ops)))
		return
	}
	keys := make([]string, len(req.Ops))
	ops := make([]sdk.Op, len(req.Ops))
	seen := make(map[string]int, len(req.Ops))
	for i, o := range req.Ops {
		// One op per key: the conflicts are reported per key, and a client
		// pushes each key's latest write only.
		if j, dup := seen[o.Key]; dup {
			writeError(w, http.StatusBadRequest, sdk.Errorf(sdk.InvalidArgument, "ops %d and %d both write key %s: send one op per key", j, i, sdk.QuoteKey(o.Key)))
			return
		}
		seen[o.Key] = i
		keys[i] = o.Key
		if o.TTLMs < 0 || o.TTLMs > abi.MaxTTLMillis {
			writeError(w, http.StatusBadRequest, sdk.Errorf(sdk.InvalidArgument, "op %d: ttl_ms %d is out of range: use 0 (none) to %d", i, o.TTLMs, abi.MaxTTLMillis))
			return
		}
		wo := sdk.WriteOptions{ETag: o.ETag, IfAbsent: o.IfAbsent, TTL: time.Duration(o.TTLMs) * time.Millisecond}
		switch o.Op {
		case "set":
			// Checked here, before the conflicts: a set with both
			// conditions was reported as a conflict (409) when the
			// store's own check (400) came only with Transact.
			if o.ETag != "" && o.IfAbsent {
				writeError(w, http.StatusBadRequest, sdk.Errorf(sdk.InvalidArgument, "op %d: key %s: etag and if_absent exclude each other", i, sdk.QuoteKey(o.Key)))
				return
			}
			ops[i] = sdk.SetOp(o.Key, o.Value, wo)
		case "delete":
			// sdk.DeleteOp drops IfAbsent, so a delete "if absent" deleted
			// the key that was there, unconditionally.
			if o.IfAbsent {
				writeError(w, http.StatusBadRequest, sdk.Errorf(sdk.InvalidArgument, "op %d: key %s: if_absent applies to set only", i, sdk.QuoteKey(o.Key)))
				return
			}
			ops[i] = sdk.DeleteOp(o.Key, wo)
		default:
			writeError(w, http.StatusBadRequest, sdk.Errorf(sdk.InvalidArgument, "op %d: %q: use set or delete", i, o.Op))
			return
		}
	}
	st := s.backend.State(r.PathValue("app"), r.PathValue("store"))
	reply := func(err error) {
		writeError(w, HTTPStatus(sdk.CodeOf(err)), err)
	}
	// Name every conflicting key, not only the first one Transact meets,
	// so that the client can record them all and push the rest.
	cur, err := s.bulk(ctx, st, keys)
	if err != nil {
		reply(err)
		return
	}
	if cs := conflicts(req.Ops, cur); len(cs) > 0 {
		writeConflicts(w, cs, len(ops))
		return
	}
	if err := st.Transact(ctx, ops); err != nil {
		if !sdk.IsCode(err, sdk.Conflict) {
			reply(err)
			return
		}
		// Someone wrote between the check and the transaction: report
		// what is there now (maybe nothing, if it was undone).
		if cur, err = s.bulk(ctx, st, keys); err != nil {
			reply(err)
			return
		}
		writeConflicts(w, conflicts(req.Ops, cur), len(ops))
		return
	}
	after, err := s.bulk(ctx, st, keys)
	if err != nil {
		reply(err)
		return
	}
	b, _ := json.Marshal(map[string]any{"items": after})
	writeJSON(w, http.StatusOK, b)
}

func writeConflicts(w http.ResponseWriter, cs []SyncItem, n int) {
	b, _ := json.Marshal(syncConflict{
		ErrorBody: ErrorBody{Code: sdk.Conflict.String(), Message: fmt.Sprintf("%d of %d keys changed on the server since the client last read them; nothing was written", len(cs), n)},
		Conflicts: cs,
	})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusConflict)
	w.Write(b)
}

func (s *Server) servePublish(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Type            string            `json:"type"`
		DataContentType string            `json:"datacontenttype"`
		Data            []byte            `json:"data_base64"`
		Metadata        map[string]string `json:"metadata"`
	}
	ctx, cancel, ok := s.syncRequest(w, r, &req)
	if !ok {
		return
	}
	defer cancel()
	m := sdk.Message{PubSub: r.PathValue("pubsub"), Topic: r.PathValue("topic"), Data: req.Data,
		ContentType: req.DataContentType, Type: req.Type, Metadata: req.Metadata}
	app := r.PathValue("app")
	pub := s.backend.Publisher(app)
	if s.tracing != nil {
		// As an app's publish: a producer span, child of the request's
		// traceparent (a browser forwarding what a call published), whose
		// trace context the event carries to its consumers.
		if tc := HTTPTrace(r.Header); tc.TraceParent != "" {
			ctx = sdk.WithTrace(ctx, tc)
		}
		pub = TracedPublisher(s.tracing, app, pub)
	}
	if err := pub.Publish(ctx, m); err != nil {
		writeError(w, HTTPStatus(sdk.CodeOf(err)), err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
