package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"
)

// loadSpec is one closed-loop load run: Concurrency workers, each sending a
// request, reading the whole reply and sending the next, over keep-alive
// connections, for Warmup (not counted) and then Duration (counted).
type loadSpec struct {
	URL         string
	Concurrency int
	Warmup      time.Duration
	Duration    time.Duration
	// Body returns the request body of worker w's n-th request.
	Body func(w, n int) []byte
	// CPU, when set, returns the server process's CPU time so far; it is
	// read at both ends of the counted window.
	CPU func() (time.Duration, error)
}

// loadResult is what a load run measured in its counted window. Requests
// count those that started and finished inside the window.
type loadResult struct {
	Requests int
	Errors   int
	FirstErr string
	Window   time.Duration
	P50, P99 time.Duration
	// ServerCPU is the server's CPU time over the window; zero when unknown.
	ServerCPU time.Duration
	// ClientCPU is this process's CPU time over the window: the load
	// generator's cost.
	ClientCPU time.Duration
	// MachineBusy is the CPU time all of the machine's CPUs spent busy
	// (or stolen by the hypervisor) over the window, from /proc/stat; zero
	// when unknown.
	MachineBusy time.Duration
}

// OthersCPU is the CPU, in cores, that neither the server nor the load
// generator used while the machine was busy: other processes (other
// sessions' builds and tests on a shared machine) and steal. Idle servers
// of the same run count here too, for very little.
func (r loadResult) OthersCPU() float64 {
	if r.MachineBusy == 0 || r.Window == 0 {
		return -1
	}
	return max(0, float64(r.MachineBusy-r.ServerCPU-r.ClientCPU)/float64(r.Window))
}

// RPS is the throughput of successful requests.
func (r loadResult) RPS() float64 { return float64(r.Requests) / r.Window.Seconds() }

// CPUPerRequest is the server's CPU time per successful request.
func (r loadResult) CPUPerRequest() time.Duration { return perRequest(r.ServerCPU, r.Requests) }

// ClientCPUPerRequest is the load generator's CPU time per request.
func (r loadResult) ClientCPUPerRequest() time.Duration { return perRequest(r.ClientCPU, r.Requests) }

func perRequest(d time.Duration, n int) time.Duration {
	if n == 0 || d == 0 {
		return 0
	}
	return d / time.Duration(n)
}

// runLoad generates load as spec says. It refuses any host but 127.0.0.1.
func runLoad(ctx context.Context, spec loadSpec) (loadResult, error) {
	u, err := url.Parse(spec.URL)
	if err != nil {
		return loadResult{}, err
	}
	if h := u.Hostname(); h != "127.0.0.1" {
		return loadResult{}, fmt.Errorf("load target %s: only 127.0.0.1 is allowed", spec.URL)
	}
	if spec.Concurrency <= 0 || spec.Duration <= 0 {
		return loadResult{}, errors.New("load: concurrency and duration must be positive")
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        spec.Concurrency,
		MaxIdleConnsPerHost: spec.Concurrency,
		MaxConnsPerHost:     spec.Concurrency,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	begin := time.Now()
	mStart := begin.Add(spec.Warmup)
	mEnd := mStart.Add(spec.Duration)
	ctx, cancel := context.WithDeadline(ctx, mEnd.Add(30*time.Second))
	defer cancel()

	var cpuStart, cpuEnd, selfStart, selfEnd, busyStart, busyEnd time.Duration
	var cpuErr, selfErr, busyErr error
	var cpuWG sync.WaitGroup
	cpuWG.Go(func() {
		self := func() (time.Duration, error) { return cpuTime(os.Getpid()) }
		time.Sleep(time.Until(mStart))
		selfStart, selfErr = self()
		busyStart, busyErr = machineBusy()
		if spec.CPU != nil {
			cpuStart, cpuErr = spec.CPU()
		}
		time.Sleep(time.Until(mEnd))
		if selfErr == nil {
			selfEnd, selfErr = self()
		}
		if busyErr == nil {
			busyEnd, busyErr = machineBusy()
		}
		if spec.CPU != nil && cpuErr == nil {
			cpuEnd, cpuErr = spec.CPU()
		}
	})

	type workerResult struct {
		lat      []time.Duration
		errors   int
		firstErr string
	}
	results := make([]workerResult, spec.Concurrency)
	var wg sync.WaitGroup
	for w := range spec.Concurrency {
		wg.Go(func() {
			res := &results[w]
			res.lat = make([]time.Duration, 0, 1<<14)
			for n := 0; ; n++ {
				t0 := time.Now()
				if !t0.Before(mEnd) || ctx.Err() != nil {
					return
				}
				err := do(ctx, client, spec.URL, spec.Body(w, n))
				t1 := time.Now()
				if t0.Before(mStart) || t1.After(mEnd) {
					continue
				}
				if err != nil {
					res.errors++
					if res.firstErr == "" {
						res.firstErr = err.Error()
					}
					continue
				}
				res.lat = append(res.lat, t1.Sub(t0))
			}
		})
	}
	wg.Wait()
	cpuWG.Wait()

	var out loadResult
	var all []time.Duration
	for _, r := range results {
		all = append(all, r.lat...)
		out.Errors += r.errors
		if out.FirstErr == "" {
			out.FirstErr = r.firstErr
		}
	}
	out.Requests = len(all)
	out.Window = spec.Duration
	out.P50, out.P99 = percentile(all, 50), percentile(all, 99)
	if spec.CPU != nil && cpuErr == nil {
		out.ServerCPU = cpuEnd - cpuStart
	}
	if selfErr == nil {
		out.ClientCPU = selfEnd - selfStart
	}
	if busyErr == nil {
		out.MachineBusy = busyEnd - busyStart
	}
	return out, nil
}

func do(ctx context.Context, c *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// percentile returns the p-th percentile (nearest rank) of d, sorting it.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	rank := int(float64(len(d))*p/100+0.999999) - 1
	return d[max(0, min(rank, len(d)-1))]
}

// median returns the median of d (the mean of the two middle values for an
// even count), without reordering d.
func median[T int64 | time.Duration](d []T) T {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
