package dist

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// IsTerminal reports whether w is a terminal, where progress is drawn as
// live lines rather than printed as events.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false
	}
	// A terminal of no width (a pty nobody sized) cannot show the lines.
	cols, _, err := term.GetSize(int(f.Fd()))
	return err == nil && cols > 0
}

// reporter shows the targets' progress: on a terminal a live line per
// target (mpb) with its elapsed time and then its result; elsewhere one
// plain line per event (started, done, failed), for logs and CI.
type reporter struct {
	w    io.Writer
	live *mpb.Progress
	mu   sync.Mutex
}

func newReporter(w io.Writer, live bool) *reporter {
	if w == nil {
		w = io.Discard
	}
	r := &reporter{w: w}
	if live {
		r.live = mpb.New(mpb.WithOutput(w), mpb.WithRefreshRate(100*time.Millisecond), mpb.WithWidth(1))
	}
	return r
}

// wait flushes the live display.
func (r *reporter) wait() {
	if r.live != nil {
		r.live.Wait()
	}
}

type tracker struct {
	r          *reporter
	name       string
	bar        *mpb.Bar
	mu         sync.Mutex
	start, end time.Time
	result     string
	failed     bool
}

func (r *reporter) add(name string) *tracker {
	t := &tracker{r: r, name: name}
	if r.live != nil {
		t.bar = r.live.New(1, mpb.SpinnerStyle(), mpb.BarFillerOnComplete("✓"),
			mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.Any(t.status)))
	}
	return t
}

func (t *tracker) status(decor.Statistics) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.start.IsZero():
		return "waiting"
	case t.end.IsZero():
		return fmt.Sprintf("%5.1fs", time.Since(t.start).Seconds())
	}
	return fmt.Sprintf("%5.1fs  %s", t.end.Sub(t.start).Seconds(), t.result)
}

func (t *tracker) begin() {
	t.mu.Lock()
	t.start = time.Now()
	t.mu.Unlock()
	if t.bar == nil {
		t.r.line("%s: started", t.name)
	}
}

// finish records the outcome: result on success, the error otherwise.
func (t *tracker) finish(result string, err error) {
	t.mu.Lock()
	if t.start.IsZero() {
		t.start = time.Now()
	}
	t.end = time.Now()
	t.result, t.failed = result, err != nil
	if err != nil {
		t.result = "FAILED: " + firstLine(err.Error())
	}
	el := t.end.Sub(t.start).Seconds()
	t.mu.Unlock()
	if t.bar != nil {
		if err != nil {
			t.bar.Abort(false)
		} else {
			t.bar.SetCurrent(1)
		}
		return
	}
	t.r.line("%s: %s (%.1fs)", t.name, t.result, el)
}

// skip marks a target not run because one it needs failed.
func (t *tracker) skip() { t.finish("skipped", nil) }

func (r *reporter) line(format string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.w, "roam dist: "+format+"\n", a...)
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}
