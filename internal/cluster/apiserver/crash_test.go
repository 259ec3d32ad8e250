package apiserver

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// TestCrashHelperProcess is the API server child of the kill -9 tests.
func TestCrashHelperProcess(t *testing.T) {
	env := os.Getenv("WHARF_CRASH_HELPER")
	if env == "" {
		t.Skip("helper process")
	}
	f := strings.Split(env, ",")
	root, addr, etcd := f[0], f[1], ""
	if len(f) > 2 {
		etcd = f[2]
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	s, err := New(Options{DataRoot: root, Listener: l, DatastoreEndpoint: etcd})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	s.Run(context.Background())
	os.Exit(0)
}

// TestKill9UnderWriteLoad kills the API server (on bbolt) with SIGKILL at
// moments of write load; see kill9UnderWriteLoad.
func TestKill9UnderWriteLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a server process several times")
	}
	kill9UnderWriteLoad(t, "")
}

// TestKill9UnderWriteLoadEtcd: the same with the store on a real etcd that
// outlives the killed API server.
func TestKill9UnderWriteLoadEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a server process several times; runs etcd")
	}
	kill9UnderWriteLoad(t, startEtcd(t))
}

// informerEvent is one notification an informer's handler got.
type informerEvent struct {
	typ, rv string
}

// kill9UnderWriteLoad: writers create, update and delete ConfigMaps while the
// API server is killed with SIGKILL and restarted three times. Afterwards: no
// acknowledged write is lost (every acknowledged create or update is in a
// fresh list at that resourceVersion or a later one, every acknowledged delete
// is gone), and an informer that lived across the restarts — its watch
// resuming from its last resourceVersion each time — has the same cache as a
// fresh list, received every acknowledged write as an event (none missed),
// never the same resourceVersion twice and never a relist's no-op update
// (none duplicated), and each object's events in increasing resourceVersion.
func kill9UnderWriteLoad(t *testing.T, etcd string) {
	root := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	var child *exec.Cmd
	start := func() {
		t.Helper()
		child = exec.Command(os.Args[0], "-test.run=^TestCrashHelperProcess$")
		child.Env = append(os.Environ(), "WHARF_CRASH_HELPER="+root+","+addr+","+etcd)
		child.Stderr = os.Stderr
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: time.Second}
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := hc.Get("https://" + addr + "/readyz")
			if err == nil {
				resp.Body.Close()
				// readyz answers before seeding ends; wait for the token file too
				if _, err := os.Stat(filepath.Join(root, "kubeconfig.yaml")); err == nil {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("server child did not come up")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	kill := func() {
		child.Process.Signal(syscall.SIGKILL)
		child.Wait()
	}
	start()
	defer func() { kill() }()

	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(root, "kubeconfig.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 1000, 1000
	cfg.Timeout = 5 * time.Second
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var mu sync.Mutex
	events := map[string][]informerEvent{}
	var problems []string
	record := func(typ string, o interface{}) {
		if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
			// only a relist produces these: a watch event was missed
			mu.Lock()
			problems = append(problems, "delete seen only by a relist: "+d.Key)
			mu.Unlock()
			return
		}
		c := o.(*corev1.ConfigMap)
		mu.Lock()
		events[c.Name] = append(events[c.Name], informerEvent{typ, c.ResourceVersion})
		mu.Unlock()
	}
	// The informer watches over HTTP/1.1, on a connection of its own. Over HTTP/2, a stream cut by
	// the SIGKILL surfaces as "http2: client connection force closed", which client-go's watch
	// decoder reports as an error, and an informer relists after any watch error (its reflector's
	// MaxInternalErrorRetryDuration is 0): the resume this test is about would not be tried at all.
	// Over HTTP/1.1 the cut stream reads as an EOF or a reset, which client-go takes for the end of
	// the watch and resumes from the last resourceVersion — as it does against kube-apiserver.
	icfg := rest.CopyConfig(cfg)
	icfg.TLSClientConfig.NextProtos = []string{"http/1.1"}
	factory := informers.NewSharedInformerFactoryWithOptions(kubernetes.NewForConfigOrDie(icfg), 0, informers.WithNamespace("default"))
	inf := factory.Core().V1().ConfigMaps().Informer()
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o interface{}) { record("ADDED", o) },
		UpdateFunc: func(old, o interface{}) {
			if old.(*corev1.ConfigMap).ResourceVersion == o.(*corev1.ConfigMap).ResourceVersion {
				mu.Lock()
				problems = append(problems, "no-op update (a relist) for "+o.(*corev1.ConfigMap).Name)
				mu.Unlock()
				return
			}
			record("MODIFIED", o)
		},
		DeleteFunc: func(o interface{}) { record("DELETED", o) },
	})
	factory.Start(ctx.Done())
	cache.WaitForCacheSync(ctx.Done(), inf.HasSynced)

	// acknowledged writes: name -> resourceVersions answered for creates and
	// updates; deleted: names whose delete was answered
	var ackMu sync.Mutex
	acked := map[string][]string{}
	deleted := map[string]bool{}
	ack := func(name, rv string) {
		ackMu.Lock()
		acked[name] = append(acked[name], rv)
		ackMu.Unlock()
	}
	stopWriting := make(chan struct{})
	stopped := func() bool {
		select {
		case <-stopWriting:
			return true
		default:
			return false
		}
	}
	// retry runs op until it succeeds or writing stops
	retry := func(op func() error) bool {
		for !stopped() {
			if op() == nil {
				return true
			}
			time.Sleep(20 * time.Millisecond)
		}
		return false
	}
	cms := cs.CoreV1().ConfigMaps("default")
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; !stopped(); i++ {
				name := fmt.Sprintf("cm-%d-%05d", w, i)
				ok := retry(func() error {
					c, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"v": "0"}}, metav1.CreateOptions{})
					if err == nil {
						ack(name, c.ResourceVersion)
					}
					if apierrors.IsAlreadyExists(err) { // created, answer lost
						return nil
					}
					return err
				})
				if !ok || i%2 == 1 {
					continue
				}
				// every other object is updated; every fourth one deleted
				ok = retry(func() error {
					c, err := cms.Get(ctx, name, metav1.GetOptions{})
					if err != nil {
						return err
					}
					c.Data["v"] = "1"
					c, err = cms.Update(ctx, c, metav1.UpdateOptions{})
					if err == nil {
						ack(name, c.ResourceVersion)
					}
					return err
				})
				if !ok || i%4 != 0 {
					continue
				}
				retry(func() error {
					err := cms.Delete(ctx, name, metav1.DeleteOptions{})
					if err == nil || apierrors.IsNotFound(err) {
						ackMu.Lock()
						deleted[name] = true
						ackMu.Unlock()
						return nil
					}
					return err
				})
			}
		}(w)
	}
	// client-go relists (and so legitimately skips events) when a watch ends
	// within a second without delivering anything; before each kill, let
	// the current watch deliver at least one event
	delivered := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, evs := range events {
			n += len(evs)
		}
		return n
	}
	for round := 0; round < 3; round++ {
		seenBefore := delivered()
		time.Sleep(time.Duration(300+round*170) * time.Millisecond)
		for deadline := time.Now().Add(30 * time.Second); delivered() == seenBefore && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		kill()
		start()
	}
	time.Sleep(300 * time.Millisecond)
	close(stopWriting)
	wg.Wait()

	list, err := cms.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]string{}
	for _, c := range list.Items {
		have[c.Name] = c.ResourceVersion
	}
	rvNum := func(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }
	ackMu.Lock()
	writes := 0
	for n, rvs := range acked {
		writes += len(rvs)
		if deleted[n] {
			if _, ok := have[n]; ok {
				t.Errorf("acknowledged delete of %s lost", n)
			}
			continue
		}
		got, ok := have[n]
		if !ok {
			t.Errorf("acknowledged write %s lost", n)
		} else if rvNum(got) < rvNum(rvs[len(rvs)-1]) {
			t.Errorf("%s: acknowledged resourceVersion %s, list has older %s", n, rvs[len(rvs)-1], got)
		}
	}
	t.Logf("%d objects, %d acknowledged creates/updates, %d deletes; %d stored", len(acked), writes, len(deleted), len(have))
	ackMu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	for {
		got := map[string]string{}
		for _, o := range inf.GetStore().List() {
			c := o.(*corev1.ConfigMap)
			got[c.Name] = c.ResourceVersion
		}
		if fmt.Sprint(got) == fmt.Sprint(have) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("informer cache (%d) differs from a fresh list (%d)", len(got), len(have))
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
	seen := map[string]bool{}
	for n, evs := range events {
		var last int64
		for i, e := range evs {
			if seen[e.rv] && e.typ != "DELETED" {
				t.Errorf("%s: resourceVersion %s delivered twice (%v)", n, e.rv, evs)
			}
			seen[e.rv] = true
			if e.typ != "DELETED" && rvNum(e.rv) <= last {
				t.Errorf("%s: events out of order: %v", n, evs)
			}
			if e.typ != "DELETED" {
				last = rvNum(e.rv)
			}
			if (i == 0) != (e.typ == "ADDED") {
				t.Errorf("%s: ADDED must come first and once: %v", n, evs)
			}
		}
		if deleted[n] && evs[len(evs)-1].typ != "DELETED" {
			t.Errorf("%s: deleted, but no DELETED event last: %v", n, evs)
		}
	}
	ackMu.Lock()
	defer ackMu.Unlock()
	for n, rvs := range acked {
		for _, rv := range rvs {
			if !seen[rv] {
				t.Errorf("%s: acknowledged write at resourceVersion %s never reached the informer (%v)", n, rv, events[n])
			}
		}
		if deleted[n] && (len(events[n]) == 0 || events[n][len(events[n])-1].typ != "DELETED") {
			t.Errorf("%s: acknowledged delete never reached the informer", n)
		}
	}
}
