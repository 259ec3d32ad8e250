package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkRunRmTrueAPI is `docker run --rm busybox true` through the Engine API alone, with the requests the
// docker CLI sends (create, attach, wait?condition=removed, start, then the wait answer), without a CLI process.
// bench/run.sh compares it with bare crun on the same rootfs.
func BenchmarkRunRmTrueAPI(b *testing.B) {
	if skipReason != "" {
		b.Skip(skipReason)
	}
	d := shared
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.sock)
	}}}
	post := func(path string, body any) (*http.Response, error) {
		var r io.Reader
		if body != nil {
			j, _ := json.Marshal(body)
			r = bytes.NewReader(j)
		}
		req, _ := http.NewRequest(http.MethodPost, "http://wharf/v1.50"+path, r)
		req.Header.Set("Content-Type", "application/json")
		return hc.Do(req)
	}
	create := map[string]any{"Image": "busybox", "Cmd": []string{"true"}, "AttachStdout": true, "AttachStderr": true,
		"HostConfig": map[string]any{"AutoRemove": true}}
	// One run first, untimed (the other rows of bench/run.sh are medians, which leave out such a first
	// run); each run's time is kept for the median reported beside the mean.
	times := make([]time.Duration, 0, b.N)
	for i := -1; i < b.N; i++ {
		if i == 0 {
			b.ResetTimer()
		}
		t0 := time.Now()
		resp, err := post("/containers/create", create)
		if err != nil {
			b.Fatal(err)
		}
		var cr struct{ Id string }
		json.NewDecoder(resp.Body).Decode(&cr)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			b.Fatalf("create: %s", resp.Status)
		}
		// attach, hijacked as the CLI does
		conn, err := net.Dial("unix", d.sock)
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /v1.50/containers/%s/attach?stderr=1&stdout=1&stream=1 HTTP/1.1\r\nHost: wharf\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n", cr.Id)
		br := bufio.NewReader(conn)
		status, _ := br.ReadString('\n')
		if !strings.Contains(status, "101") {
			b.Fatalf("attach: %q", status)
		}
		for {
			l, err := br.ReadString('\n')
			if err != nil || l == "\r\n" {
				break
			}
		}
		attachDone := make(chan struct{})
		go func() { io.Copy(io.Discard, br); close(attachDone) }()
		// The wait's headers come back at once; its body when the container is gone.
		wr, err := post("/containers/"+cr.Id+"/wait?condition=removed", nil)
		if err != nil || wr.StatusCode != http.StatusOK {
			b.Fatalf("wait: %v %v", err, wr)
		}
		resp, err = post("/containers/"+cr.Id+"/start", nil)
		if err != nil || resp.StatusCode != http.StatusNoContent {
			b.Fatalf("start: %v %v", err, resp)
		}
		resp.Body.Close()
		var w struct {
			StatusCode int
			Error      *struct{ Message string }
		}
		json.NewDecoder(wr.Body).Decode(&w)
		wr.Body.Close()
		<-attachDone
		conn.Close()
		if w.StatusCode != 0 || w.Error != nil {
			b.Fatalf("exit code %d", w.StatusCode)
		}
		if i >= 0 {
			times = append(times, time.Since(t0))
		}
	}
	b.StopTimer()
	slices.Sort(times)
	median := times[len(times)/2]
	if len(times)%2 == 0 {
		median = (times[len(times)/2-1] + times[len(times)/2]) / 2
	}
	b.ReportMetric(float64(median)/1e6, "ms-median")
}
