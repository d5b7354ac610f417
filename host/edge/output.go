package edge

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
)

// Bounds on what a guest's stdout and stderr cost the host.
const (
	maxOutputLine  = 1 << 10 // longer lines are cut
	maxOutputLines = 100     // lines logged per call (or per instantiation); the rest are counted
	maxOutputTail  = 2 << 10 // bytes of this call's stderr kept for an error message
)

// output is one instance's stdout or stderr. Complete lines go to the
// host's logger, which is itself bounded (host.AsyncHandler drops under
// pressure); the start of what the current call wrote is kept, so that a
// trap's error can say what the guest printed ("panic: ...", "fatal error:
// out of memory").
type output struct {
	mu      sync.Mutex
	log     func() *slog.Logger
	level   slog.Level
	stream  string
	line    []byte
	head    []byte
	lines   int
	dropped int
}

func newOutput(stream string, level slog.Level, log func() *slog.Logger) *output {
	return &output{stream: stream, level: level, log: log}
}

// Write implements io.Writer for wazero's WASI fd_write.
func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if n := maxOutputTail - len(o.head); n > 0 {
		o.head = append(o.head, p[:min(n, len(p))]...)
	}
	rest := p
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			if room := maxOutputLine - len(o.line); room > 0 {
				o.line = append(o.line, rest[:min(room, len(rest))]...)
			}
			break
		}
		if room := maxOutputLine - len(o.line); room > 0 {
			o.line = append(o.line, rest[:min(room, i)]...)
		}
		o.emit()
		rest = rest[i+1:]
	}
	return len(p), nil
}

func (o *output) emit() {
	if o.lines >= maxOutputLines {
		o.dropped++
		o.line = o.line[:0]
		return
	}
	o.lines++
	o.log().LogAttrs(context.Background(), o.level, "guest "+o.stream, slog.String("line", string(o.line)))
	o.line = o.line[:0]
}

// reset starts a new call: it flushes a partial line and the count of
// dropped lines, and forgets the head.
func (o *output) reset() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.line) > 0 {
		o.emit()
	}
	if o.dropped > 0 {
		o.log().LogAttrs(context.Background(), o.level, "guest "+o.stream+" lines dropped", slog.Int("dropped", o.dropped))
	}
	o.head, o.lines, o.dropped = o.head[:0], 0, 0
}

// summary returns the first lines of what the current call wrote, for an
// error message.
func (o *output) summary(maxLines int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := strings.TrimSpace(string(o.head))
	if s == "" {
		return ""
	}
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		if len(lines) == maxLines {
			lines = append(lines, "…")
			break
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "; ")
}
