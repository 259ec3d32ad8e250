package apiserver

import (
	"bufio"
	"context"
	"os"
	goruntime "runtime"
	"sync"
	"sync/atomic"

	"crypto/tls"
	"fmt"
	"io"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wharfhq/wharf/internal/cluster/store"
)

// BenchmarkStartToFirstRequest measures New+Run until the first answered
// authenticated request, on a fresh data root (CA, cert, token and store
// created) — the daemon's cold start.
func BenchmarkStartToFirstRequest(b *testing.B) {
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}}
	var total time.Duration
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		start := time.Now()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		s, err := New(Options{DataRoot: dir, Listener: l})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		<-s.Ready()
		req, _ := http.NewRequest("GET", s.URL()+"/api/v1/namespaces/default", nil)
		req.Header.Set("Authorization", "Bearer "+s.Token())
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
		total += time.Since(start)
		b.StopTimer()
		cancel()
		<-done
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/start")
}

func percentile(d []time.Duration, p float64) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	idx := int(float64(len(d)-1) * p)
	return d[idx]
}

func benchWrites(b *testing.B, rate int, update bool) {
	dir := b.TempDir()
	st, err := store.OpenBolt(filepath.Join(dir, "state.db"), store.BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	benchWritesOn(b, st, rate, update)
}

func benchWritesOn(b *testing.B, st store.Interface, rate int, update bool) {
	dir := b.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Options{DataRoot: dir, Listener: l, Store: st})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-s.Ready()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxIdleConnsPerHost: 64}}
	var failed atomic.Bool
	send := func(method, path, body string) {
		req, _ := http.NewRequest(method, s.URL()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+s.Token())
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			b.Error(err)
			failed.Store(true)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			b.Errorf("%s %s: %d", method, path, resp.StatusCode)
			failed.Store(true)
		}
	}
	n := b.N
	if rate > 0 && n < 2*rate {
		n = 2 * rate // at least two seconds at the target rate
	}
	const updKeys = 256 // updates go round-robin over many objects, as controllers' writes do
	// The first write after start builds the OpenAPI documents and the managed-fields type converter
	// (lazily, to keep an idle server small): report it, then measure the steady state.
	t0 := time.Now()
	send("POST", "/api/v1/namespaces/default/configmaps", `{"metadata":{"name":"warm-up"},"data":{"k":"v"}}`)
	b.ReportMetric(float64(time.Since(t0).Microseconds())/1000, "first-write-ms")
	if update {
		for k := 0; k < updKeys; k++ {
			send("POST", "/api/v1/namespaces/default/configmaps", fmt.Sprintf(`{"metadata":{"name":"u%d"},"data":{"i":"0"}}`, k))
		}
	}
	write := func(i int) time.Duration {
		t0 := time.Now()
		if update {
			send("PUT", fmt.Sprintf("/api/v1/namespaces/default/configmaps/u%d", i%updKeys), fmt.Sprintf(`{"metadata":{"name":"u%d"},"data":{"i":"%d"}}`, i%updKeys, i+1))
		} else {
			send("POST", "/api/v1/namespaces/default/configmaps", fmt.Sprintf(`{"metadata":{"name":"cm-%d"},"data":{"k":"v"}}`, i))
		}
		return time.Since(t0)
	}
	lat := make([]time.Duration, n)
	b.ResetTimer()
	start := time.Now()
	if rate <= 0 {
		for i := 0; i < n && !failed.Load(); i++ {
			lat[i] = write(i)
		}
	} else {
		// open loop: write i is sent at start + i/rate whatever the earlier
		// writes are doing, so a slow write cannot lower the offered rate
		// (and its latency counts in full)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 256)
		for i := 0; i < n && !failed.Load(); i++ {
			if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
				time.Sleep(d)
			}
			sem <- struct{}{}
			wg.Add(1)
			go func(i int) {
				defer func() { <-sem; wg.Done() }()
				lat[i] = write(i)
			}(i)
		}
		wg.Wait()
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if failed.Load() {
		return
	}
	p50, p99 := percentile(lat, 0.50), percentile(lat, 0.99)
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(n)/elapsed.Seconds(), "writes/s")
	b.Logf("%d writes (offered %d/s, achieved %.0f/s, update=%v): p50 %v p99 %v", n, rate, float64(n)/elapsed.Seconds(), update, p50, p99)
}

// BenchmarkCreateLatency: back-to-back creates on bbolt (fsync'd commits).
func BenchmarkCreateLatency(b *testing.B) { benchWrites(b, 0, false) }

// BenchmarkCreateLatency100PerSec: creates paced at 100 writes/s.
func BenchmarkCreateLatency100PerSec(b *testing.B) { benchWrites(b, 100, false) }

// BenchmarkUpdateLatency100PerSec: updates paced at 100 writes/s.
func BenchmarkUpdateLatency100PerSec(b *testing.B) { benchWrites(b, 100, true) }

// BenchmarkCreateLatency1000PerSec: creates offered at 1000 writes/s (open
// loop: concurrent requests when a write takes longer than 1 ms).
func BenchmarkCreateLatency1000PerSec(b *testing.B) { benchWrites(b, 1000, false) }

// BenchmarkUpdateLatency1000PerSec: updates paced at 1000 writes/s.
func BenchmarkUpdateLatency1000PerSec(b *testing.B) { benchWrites(b, 1000, true) }

func etcdStore(b *testing.B) store.Interface {
	ep := startEtcd(b)
	st, err := store.OpenEtcd(context.Background(), store.EtcdOptions{Endpoints: []string{ep}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// BenchmarkEtcdCreateLatency100PerSec: the same on a real (embedded,
// fsyncing) etcd.
func BenchmarkEtcdCreateLatency100PerSec(b *testing.B) { benchWritesOn(b, etcdStore(b), 100, false) }

// BenchmarkEtcdUpdateLatency100PerSec: updates on etcd.
func BenchmarkEtcdUpdateLatency100PerSec(b *testing.B) { benchWritesOn(b, etcdStore(b), 100, true) }

// BenchmarkEtcdCreateLatency1000PerSec: creates on etcd at 1000 writes/s.
func BenchmarkEtcdCreateLatency1000PerSec(b *testing.B) { benchWritesOn(b, etcdStore(b), 1000, false) }

// BenchmarkEtcdUpdateLatency1000PerSec: updates on etcd at 1000 writes/s.
func BenchmarkEtcdUpdateLatency1000PerSec(b *testing.B) { benchWritesOn(b, etcdStore(b), 1000, true) }

// BenchmarkWatchFanout: 100 watchers of configmaps, 10,000 creates; time
// until every watcher has every event (bbolt without fsync, to measure the
// fan-out rather than the disk).
func BenchmarkWatchFanout(b *testing.B) {
	const watchers, events = 100, 10000
	for i := 0; i < b.N; i++ {
		st, err := store.OpenBolt(filepath.Join(b.TempDir(), "state.db"), store.BoltOptions{NoSync: true, HistoryMaxEvents: 2 * events})
		if err != nil {
			b.Fatal(err)
		}
		ts := startTest(b, st)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		got := make([]int, watchers)
		rv := mustCurrent(b, st)
		for w := 0; w < watchers; w++ {
			// raw HTTP streams: measures the server's fan-out, not client decoding
			req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL()+"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion="+rv, nil)
			req.Header.Set("Authorization", "Bearer "+ts.Token())
			resp, err := ts.http.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				defer resp.Body.Close()
				sc := bufio.NewScanner(resp.Body)
				sc.Buffer(make([]byte, 1<<20), 1<<20)
				for sc.Scan() {
					got[w]++
					if got[w] == events {
						return
					}
				}
			}(w)
		}
		start := time.Now()
		var pw sync.WaitGroup
		for p := 0; p < 4; p++ {
			pw.Add(1)
			go func(p int) {
				defer pw.Done()
				for j := p; j < events; j += 4 {
					if _, err := st.Create(ctx, fmt.Sprintf("/registry/core/configmaps/default/cm-%d", j),
						[]byte(fmt.Sprintf(`{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm-%d","namespace":"default","uid":"u%d","creationTimestamp":"2026-01-01T00:00:00Z"}}`, j, j))); err != nil {
						b.Error(err)
						return
					}
				}
			}(p)
		}
		pw.Wait()
		writeDone := time.Since(start)
		wg.Wait()
		total := time.Since(start)
		cancel()
		b.ReportMetric(float64(total.Milliseconds()), "ms-all-delivered")
		b.ReportMetric(float64(watchers*events)/total.Seconds(), "events/s")
		b.Logf("%d watchers x %d events: writes done in %v, all delivered in %v", watchers, events, writeDone, total)
		ts.cancel()
		st.Close()
	}
}

func mustCurrent(b *testing.B, st store.Interface) string {
	r, err := st.CurrentRevision(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return fmt.Sprint(r)
}

// BenchmarkMemory10kObjects: heap in use with 10,000 stored configmaps
// after a full list through the API.
func BenchmarkMemory10kObjects(b *testing.B) {
	for i := 0; i < b.N; i++ {
		st, err := store.OpenBolt(filepath.Join(b.TempDir(), "state.db"), store.BoltOptions{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		ts := startTest(b, st)
		ctx := context.Background()
		goruntime.GC()
		var before goruntime.MemStats
		goruntime.ReadMemStats(&before)
		for j := 0; j < 10000; j++ {
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%05d", j), Labels: map[string]string{"app": "bench"}}, Data: map[string]string{"key": "value"}}
			if _, err := ts.cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		t0 := time.Now()
		l, err := ts.cs.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
		if err != nil || len(l.Items) != 10000 {
			b.Fatalf("list: %v %d", err, len(l.Items))
		}
		listTime := time.Since(t0)
		l = nil
		goruntime.GC()
		var after goruntime.MemStats
		goruntime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapInuse)/(1<<20), "heap-MB")
		b.ReportMetric((float64(after.HeapInuse)-float64(before.HeapInuse))/(1<<20), "heap-delta-MB")
		b.ReportMetric(float64(rssKB())/1024, "rss-MB")
		b.ReportMetric(float64(listTime.Milliseconds()), "list10k-ms")
		b.Logf("heap in use %.1f MB (before objects %.1f MB); list of 10k took %v", float64(after.HeapInuse)/(1<<20), float64(before.HeapInuse)/(1<<20), listTime)
		ts.cancel()
		st.Close()
	}
}

// rssKB is this process's resident set (server and client together; the
// store file's mapped pages included).
func rssKB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb
		}
	}
	return 0
}
