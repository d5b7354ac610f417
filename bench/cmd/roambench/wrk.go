package main

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

//go:embed orders_get.lua
var wrkGetScript []byte

// wrkResult is what wrk reported.
type wrkResult struct {
	RPS      float64
	Requests int
	P50, P99 time.Duration
	Non2xx   int
	SockErrs string
}

// runWrk runs wrk against url with the orders.Get script for orderID.
func runWrk(ctx context.Context, wrk, scriptPath, url, orderID string, threads, conns int, d time.Duration) (wrkResult, string, error) {
	args := []string{
		"-t" + strconv.Itoa(threads), "-c" + strconv.Itoa(conns),
		"-d" + strconv.Itoa(int(d.Seconds())) + "s", "--latency", "-s", scriptPath, url,
	}
	cmd := exec.CommandContext(ctx, wrk, args...)
	cmd.Env = append(os.Environ(), "ORDER_ID="+orderID)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	line := "ORDER_ID=" + orderID + " wrk " + strings.Join(args, " ")
	if err := cmd.Run(); err != nil {
		return wrkResult{}, line, fmt.Errorf("wrk: %v\n%s", err, out.String())
	}
	r, err := parseWrk(out.String())
	return r, line, err
}

// parseWrk reads wrk 4's --latency report.
func parseWrk(s string) (wrkResult, error) {
	var r wrkResult
	var haveRPS bool
	for line := range strings.SplitSeq(s, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("wrk Requests/sec %q: %w", f[1], err)
			}
			r.RPS, haveRPS = v, true
		case len(f) == 2 && (f[0] == "50%" || f[0] == "99%"):
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, err
			}
			if f[0] == "50%" {
				r.P50 = d
			} else {
				r.P99 = d
			}
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			r.Requests, _ = strconv.Atoi(f[0])
		case len(f) == 5 && f[0] == "Non-2xx":
			r.Non2xx, _ = strconv.Atoi(f[4])
		case len(f) > 2 && f[0] == "Socket" && f[1] == "errors:":
			r.SockErrs = strings.Join(f[2:], " ")
		}
	}
	if !haveRPS {
		return r, fmt.Errorf("no Requests/sec in wrk's output:\n%s", s)
	}
	return r, nil
}

// parseWrkDuration reads wrk's "812.00us", "1.23ms", "2.00s" or "1.00m".
func parseWrkDuration(s string) (time.Duration, error) {
	if v, ok := strings.CutSuffix(s, "m"); ok { // minutes
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("wrk latency %q: %w", s, err)
		}
		return time.Duration(f * float64(time.Minute)), nil
	}
	d, err := time.ParseDuration(s) // "us" is accepted as microseconds
	if err != nil {
		return 0, fmt.Errorf("wrk latency %q: %w", s, err)
	}
	return d, nil
}
