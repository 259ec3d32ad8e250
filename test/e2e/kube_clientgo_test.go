package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
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

func kubeClient(t *testing.T, kubeconfig string) *kubernetes.Clientset {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 500, 1000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// TestKubeClientGoInformer: an informer's cache converges to a fresh list
// under concurrent writes, across an API server restart.
func TestKubeClientGoInformer(t *testing.T) {
	dir := t.TempDir()
	ks, stop := startKubeAt(t, dir+"/root", "127.0.0.1:0")
	addr := ks.srv.Addr().String()
	cs := kubeClient(t, ks.kubeconfig)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace("default"))
	inf := factory.Core().V1().ConfigMaps().Informer()
	var mu sync.Mutex
	adds, dels := 0, 0
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(interface{}) { mu.Lock(); adds++; mu.Unlock() },
		DeleteFunc: func(interface{}) { mu.Lock(); dels++; mu.Unlock() },
	})
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("informer did not sync")
	}

	write := func(round int) {
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < 15; i++ {
					name := fmt.Sprintf("cm-%d-%d-%d", round, w, i)
					cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"v": "1"}}
					got, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{})
					if err != nil {
						t.Error(err)
						return
					}
					got.Data["v"] = "2"
					if _, err := cs.CoreV1().ConfigMaps("default").Update(ctx, got, metav1.UpdateOptions{}); err != nil {
						t.Error(err)
						return
					}
					if i%3 == 0 {
						if err := cs.CoreV1().ConfigMaps("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
							t.Error(err)
						}
					}
				}
			}(w)
		}
		wg.Wait()
	}
	converged := func() {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			list, err := cs.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
			if err == nil {
				want := map[string]string{}
				for _, c := range list.Items {
					want[c.Name] = c.ResourceVersion
				}
				got := map[string]string{}
				for _, o := range inf.GetStore().List() {
					c := o.(*corev1.ConfigMap)
					got[c.Name] = c.ResourceVersion
				}
				if fmt.Sprint(want) == fmt.Sprint(got) {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("informer cache differs from list:\nlist:  %v\ncache: %v", want, got)
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	write(0)
	converged()

	// restart the API server on the same data root and port: the informer
	// resumes its watch
	stop()
	startKubeAt(t, dir+"/root", addr)
	write(1)
	converged()
	mu.Lock()
	defer mu.Unlock()
	if adds < 120 || dels < 40 {
		t.Fatalf("handler saw %d adds, %d deletes", adds, dels)
	}
}

// TestKubeHTTPErrors checks status shapes kube-apiserver clients rely on.
func TestKubeHTTPErrors(t *testing.T) {
	ks := startKube(t)
	cs := kubeClient(t, ks.kubeconfig)
	ctx := context.Background()

	// anonymous -> 401 Status
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: insecureTLS()}}
	resp, err := hc.Get(ks.srv.URL() + "/api/v1/pods")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(string(body), `"reason":"Unauthorized"`) || !strings.Contains(string(body), `"kind":"Status"`) {
		t.Fatalf("anonymous: %d %s", resp.StatusCode, body)
	}

	// 409 on a stale resourceVersion
	cm, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "gen-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cm.Name, "gen-") || len(cm.Name) != 9 {
		t.Fatalf("generateName: %q", cm.Name)
	}
	stale := cm.DeepCopy()
	cm.Data = map[string]string{"a": "b"}
	if _, err := cs.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	stale.Data = map[string]string{"a": "c"}
	if _, err := cs.CoreV1().ConfigMaps("default").Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale update: %v", err)
	}
	// 404 and 409 AlreadyExists
	if _, err := cs.CoreV1().Pods("default").Get(ctx, "nope", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get missing: %v", err)
	}
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: cm.Name}}, metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create existing: %v", err)
	}
	// 422 Invalid with causes
	_, err = cs.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "Bad_Name"}}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("invalid pod: %v", err)
	}
	if st := err.(apierrors.APIStatus).Status(); st.Details == nil || len(st.Details.Causes) == 0 {
		t.Fatalf("invalid without causes: %+v", st)
	}
	// create in a missing namespace
	if _, err := cs.CoreV1().ConfigMaps("nowhere").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("create in missing namespace: %v", err)
	}
	// pods/log without a node agent: 503, not a hang
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
	defer lcancel()
	_, err = cs.CoreV1().Pods("default").GetLogs("p", &corev1.PodLogOptions{}).DoRaw(lctx)
	if !apierrors.IsServiceUnavailable(err) {
		t.Fatalf("pods/log without node agent: %v", err)
	}
	// watch from a compacted revision -> 410 Gone (ERROR event)
	if err := ks.srv.Store().Compact(ctx, mustRev(t, ks)); err != nil {
		t.Fatal(err)
	}
	w, err := cs.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{ResourceVersion: "2"})
	if err == nil {
		ev := <-w.ResultChan()
		w.Stop()
		st, ok := ev.Object.(*metav1.Status)
		if !ok || st.Code != 410 {
			t.Fatalf("watch from compacted rv: %#v", ev)
		}
	} else if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
		t.Fatalf("watch from compacted rv: %v", err)
	}
}

func mustRev(t *testing.T, ks *kubeServer) int64 {
	r, err := ks.srv.Store().CurrentRevision(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r
}
