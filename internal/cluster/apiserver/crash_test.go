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
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// TestCrashHelperProcess is the API server child of TestKill9UnderWriteLoad.
func TestCrashHelperProcess(t *testing.T) {
	env := os.Getenv("WHARF_CRASH_HELPER")
	if env == "" {
		t.Skip("helper process")
	}
	root, addr, _ := strings.Cut(env, ",")
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	s, err := New(Options{DataRoot: root, Listener: l})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	s.Run(context.Background())
	os.Exit(0)
}

// TestKill9UnderWriteLoad kills the API server with SIGKILL at moments of
// write load: no acknowledged write is lost, and an informer that lives
// across the restarts ends with the same state as a fresh list, having seen
// every object added exactly once.
func TestKill9UnderWriteLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a server process several times")
	}
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
		child.Env = append(os.Environ(), "WHARF_CRASH_HELPER="+root+","+addr)
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
	adds := map[string]int{}
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace("default"))
	inf := factory.Core().V1().ConfigMaps().Informer()
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(o interface{}) {
		mu.Lock()
		adds[o.(*corev1.ConfigMap).Name]++
		mu.Unlock()
	}})
	factory.Start(ctx.Done())
	cache.WaitForCacheSync(ctx.Done(), inf.HasSynced)

	acked := map[string]bool{}
	var ackMu sync.Mutex
	stopWriting := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stopWriting:
					return
				default:
				}
				name := fmt.Sprintf("cm-%d-%05d", w, i)
				for {
					_, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"i": fmt.Sprint(i)}}, metav1.CreateOptions{})
					if err == nil || apierrors.IsAlreadyExists(err) {
						ackMu.Lock()
						acked[name] = true
						ackMu.Unlock()
						break
					}
					select {
					case <-stopWriting:
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			}
		}(w)
	}
	for round := 0; round < 3; round++ {
		time.Sleep(time.Duration(300+round*170) * time.Millisecond)
		kill()
		start()
	}
	time.Sleep(300 * time.Millisecond)
	close(stopWriting)
	wg.Wait()

	list, err := cs.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]string{}
	for _, c := range list.Items {
		have[c.Name] = c.ResourceVersion
	}
	ackMu.Lock()
	for n := range acked {
		if _, ok := have[n]; !ok {
			t.Errorf("acknowledged write %s lost", n)
		}
	}
	t.Logf("%d acknowledged writes, %d stored", len(acked), len(have))
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
	for n, c := range adds {
		if c != 1 {
			t.Errorf("%s added %d times", n, c)
		}
	}
}
