package bench

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/host"
)

// BenchmarkHandler is the host's request path alone, without a network:
// the handler of each server called with a recorded request, so what it
// costs over plain net/http routing is measured to the nanosecond and the
// allocation:
//
//	go test ./bench -run '^$' -bench Handler -benchmem
func BenchmarkHandler(b *testing.B) {
	body := []byte(`{"id":"9d77d09512ff340f"}`)
	mb := memory.New(memory.Options{Logger: discard})
	b.Cleanup(func() { mb.Close() })
	srv := host.NewServer(mb, host.Options{Logger: discard})
	if err := srv.Add(fixedApp{getReply}); err != nil {
		b.Fatal(err)
	}
	for name, h := range map[string]http.Handler{"bare": bareHandler(getReply), "roam": srv.Handler()} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				r := httptest.NewRequest(http.MethodPost, "/v1/apps/orders/methods/Get", bytes.NewReader(body))
				r.ContentLength = int64(len(body))
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
