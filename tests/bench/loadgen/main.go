// Command loadgen sends HTTP requests open loop: request n is due at start + n/rate and is
// sent then, whatever happened to earlier ones; its latency is counted from when it was
// due, so a slow server shows as latency (no coordinated omission).
//
//	loadgen -base http://127.0.0.1:9200 -rate 1000 -token T < requests.jsonl > result.json
//
// Each input line is {"method": "GET"|"POST", "path": "/v1/...", "body": "...", "expect": "allow"}.
// An answer counts as right when its status is 200 and its "decision" is the expected one;
// anything else is an error. The result is JSON: latencies of right answers in
// microseconds, each with its due time in milliseconds from the start (so a reader can
// tell steady queueing from a stall), the errors, and a few of their reasons.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

type request struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Body   string `json:"body"`
	Expect string `json:"expect"`
}

type result struct {
	LatenciesUs []int64  `json:"latencies_us"`
	DueMs       []int64  `json:"due_ms"`
	Errors      int      `json:"errors"`
	Reasons     []string `json:"reasons"`
	Seconds     float64  `json:"seconds"`
}

func main() {
	base := flag.String("base", "", "the API's base URL")
	rate := flag.Float64("rate", 1000, "requests per second")
	token := flag.String("token", "", "bearer token")
	flag.Parse()
	var requests []request
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		var r request
		if err := json.Unmarshal(scanner.Bytes(), &r); err != nil {
			fmt.Fprintln(os.Stderr, "bad request line:", err)
			os.Exit(2)
		}
		requests = append(requests, r)
	}
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512},
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := result{}
	start := time.Now().Add(200 * time.Millisecond)
	for n, r := range requests {
		due := start.Add(time.Duration(float64(n) / *rate * float64(time.Second)))
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		wg.Add(1)
		go func(r request, due time.Time) {
			defer wg.Done()
			reason := send(client, *base, *token, r)
			took := time.Since(due).Microseconds()
			mu.Lock()
			defer mu.Unlock()
			if reason == "" {
				out.LatenciesUs = append(out.LatenciesUs, took)
				out.DueMs = append(out.DueMs, due.Sub(start).Milliseconds())
			} else {
				out.Errors++
				if len(out.Reasons) < 5 {
					out.Reasons = append(out.Reasons, reason)
				}
			}
		}(r, due)
	}
	wg.Wait()
	out.Seconds = time.Since(start).Seconds()
	json.NewEncoder(os.Stdout).Encode(out)
}

func send(client *http.Client, base, token string, r request) string {
	var body io.Reader
	if r.Body != "" {
		body = bytes.NewBufferString(r.Body)
	}
	req, err := http.NewRequest(r.Method, base+r.Path, body)
	if err != nil {
		return err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	payload, err := io.ReadAll(resp.Body)
	if err != nil {
		return err.Error()
	}
	var answer struct {
		Decision string `json:"decision"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(payload, &answer) != nil || answer.Decision != r.Expect {
		return fmt.Sprintf("%d %.120s", resp.StatusCode, payload)
	}
	return ""
}
