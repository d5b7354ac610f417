package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"time"
)

func (r *report) print(w io.Writer, c config) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("## roambench, %s", r.date.Format("2006-01-02 15:04 UTC"))
	p("")
	p("- command: `%s`", r.cmdline)
	p("- machine: %s", r.machine)
	p("- load average (1/5/15 min) at start: %s; at end: %s", r.loadavg[0], r.loadavg[1])
	p("- fdatasync of 4 KiB in the temp dir, p50/p99 of 100: at start %s / %s; at end %s / %s",
		ms(r.fsync[0][0]), ms(r.fsync[0][1]), ms(r.fsync[1][0]), ms(r.fsync[1][1]))
	if r.buildCmd != "" {
		p("- binary: `%s` (%s), with roam from `%s`", r.buildCmd, r.build.Round(100*time.Millisecond), r.roamBuildText())
	} else {
		p("- binary: %s", r.bin)
	}
	p("")
	p("Start-up runs: fresh data directory each, on CPUs %s.", r.startCPUs)
	p("")
	p("| Figure | Measured | Target | Met |")
	p("| --- | --- | --- | --- |")

	kind := "static"
	if !r.binInfo.Static {
		kind = "NOT static"
	}
	if r.binInfo.Stripped {
		kind += ", stripped"
	} else {
		kind += ", NOT stripped"
	}
	p("| Binary size (%s) | %s | ≤ 15 MB | %s |", kind, bytesText(r.binInfo.Size), met(r.binInfo.Size <= targetBinary))

	ready := median(r.ready)
	p("| Start to ready: exec → first 200 from /readyz, median of %d (min–max) | %s (%s–%s) | ≤ 30 ms | %s |",
		len(r.ready), ms(ready), ms(slices.Min(r.ready)), ms(slices.Max(r.ready)), met(ready <= targetReady))
	p("| … exec → \"ready\" line on stdout, median | %s | | |", ms(median(r.line)))
	p("| … the process's own \"ready in\", median | %s | | |", ms(median(r.readyIn)))

	var rss, anon, file []int64
	for _, m := range r.rss {
		rss, anon, file = append(rss, m.RSS), append(anon, m.Anon), append(file, m.File)
	}
	p("| Idle RSS (VmRSS %s after ready), median of %d | %s (anon %s, file %s) | ≤ 12 MB | %s |",
		c.rssDelay, len(r.rss), bytesText(median(rss)), mibText(median(anon)), mibText(median(file)), met(median(rss) <= targetRSS))

	if get, bare, ok := r.pair("orders.Get"); ok {
		ratio := get.RPS() / bare.RPS()
		p("| orders.Get req/s, Roam / bare net/http (Go load generator) | %.0f%% (%.0f / %.0f) | ≥ 70%% | %s |",
			100*ratio, get.RPS(), bare.RPS(), met(ratio >= targetGetRatio))
		if gc, bc := get.CPUPerRequest(), bare.CPUPerRequest(); gc > 0 && bc > 0 {
			ratio := float64(bc) / float64(gc)
			p("| … server-bound view: server CPU per orders.Get, bare / Roam | %.0f%% (%s / %s) | ≥ 70%% | %s |",
				100*ratio, us(bc), us(gc), met(ratio >= targetGetRatio))
		}
	}
	if shop, ok := r.wrkRPS(serverShop); ok {
		if bare, ok := r.wrkRPS(serverBare); ok {
			ratio := shop / bare
			p("| orders.Get req/s, Roam / bare net/http (wrk) | %.0f%% (%.0f / %.0f) | ≥ 70%% | %s |",
				100*ratio, shop, bare, met(ratio >= targetGetRatio))
		}
	}
	p("")

	p("### Loopback HTTP: closed loop, %d keep-alive connections, %s warm-up + %s counted per case", c.conc, c.warmup, c.duration)
	p("")
	p("CPU affinity: %s. \"others' CPU\": the machine's busy CPU time over the counted window (/proc/stat, steal included) less the server's and the load generator's, in cores: other processes competing for the %d CPUs.", r.cpus, runtime.NumCPU())
	p("")
	p("| Case | Server | req/s | p50 | p99 | server CPU/req | load generator CPU/req | others' CPU | errors |")
	p("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, l := range r.loads {
		errs := fmt.Sprint(l.res.Errors)
		if l.res.FirstErr != "" {
			errs += " (" + l.res.FirstErr + ")"
		}
		others := "n/a"
		if o := l.res.OthersCPU(); o >= 0 {
			others = fmt.Sprintf("%.2f cores", o)
		}
		p("| %s | %s | %.0f | %s | %s | %s | %s | %s | %s |", l.op, l.server, l.res.RPS(), ms(l.res.P50), ms(l.res.P99),
			us(l.res.CPUPerRequest()), us(l.res.ClientCPUPerRequest()), others, errs)
	}
	for _, wc := range r.wrks {
		errs := fmt.Sprint(wc.res.Non2xx)
		if wc.res.SockErrs != "" {
			errs += " (socket: " + wc.res.SockErrs + ")"
		}
		p("| orders.Get (wrk -t2) | %s | %.0f | %s | %s | %s | | | %s |", wc.server, wc.res.RPS, ms(wc.res.P50), ms(wc.res.P99),
			us(perRequest(wc.serverCPU, wc.res.Requests)), errs)
	}
	p("")
	if r.wrkCmd != "" {
		p("wrk: `%s` (URL per server)", r.wrkCmd)
	} else {
		p("wrk: %s", r.wrkNote)
	}
	p("")
	p("Shop after load: VmRSS %s, VmHWM %s; data directory %s; %d ERROR lines in its log.",
		mibText(r.afterLoad.RSS), mibText(r.afterLoad.HWM), mibText(r.dataBytes), r.logErrors)
	for _, f := range r.profiles {
		p("CPU profile: %s (`go tool pprof -top %s`)", f, f)
	}
	if r.edge != nil {
		r.printEdge(p, c)
	} else {
		p("")
		p("Edge host: skipped (-no-edge).")
	}
}

func (r *report) roamBuildText() string { return r.roamCmd }

// pair returns the shop's and the bare server's results for op.
func (r *report) pair(op string) (shop, bare loadResult, ok bool) {
	var n int
	for _, l := range r.loads {
		if l.op != op {
			continue
		}
		switch l.server {
		case serverShop:
			shop, n = l.res, n+1
		case serverBare:
			bare, n = l.res, n+1
		}
	}
	return shop, bare, n == 2 && bare.RPS() > 0
}

func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func bytesText(n int64) string {
	return fmt.Sprintf("%.2f MB (%s, %d B)", float64(n)/1e6, mibText(n), n)
}

func mibText(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func us(d time.Duration) string {
	if d == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
}
