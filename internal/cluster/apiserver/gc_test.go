package apiserver

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// startTestGC starts a server whose collector also sweeps every 100ms
// (deletions kick it at once anyway).
func startTestGC(t *testing.T) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{DataRoot: t.TempDir(), Listener: l, GCInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Ready()
	t.Cleanup(func() { cancel(); <-done })
	cfg, err := clientcmd.BuildConfigFromFlags("", s.KubeconfigPath())
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 1000, 1000
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	return &testServer{Server: s, cs: kubernetes.NewForConfigOrDie(cfg), http: hc, cancel: cancel}
}

func testPod(name, node string, owners ...metav1.OwnerReference) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "x"}, OwnerReferences: owners},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
	}
}

func testDeployment(name string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}}},
		},
	}
}

func testReplicaSet(name string, owners ...metav1.OwnerReference) *appsv1.ReplicaSet {
	d := testDeployment(name)
	return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: owners},
		Spec: appsv1.ReplicaSetSpec{Selector: d.Spec.Selector, Template: d.Spec.Template}}
}

func ownerRef(kind, apiVersion, name string, uid types.UID, block bool) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid, Controller: ptr(true), BlockOwnerDeletion: ptr(block)}
}

// eventually polls cond until it holds (the deadline is only a safety net
// against hangs, not a timing assertion).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPodGracefulDeletion(t *testing.T) {
	ts := startTestGC(t)
	ctx := context.Background()
	pods := ts.cs.CoreV1().Pods("default")

	// a scheduled pod: DELETE marks it, the object stays (Terminating)
	p, err := pods.Create(ctx, testPod("sched", "node-1"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	code, _, body := ts.do(t, "DELETE", "/api/v1/namespaces/default/pods/sched", "", "", nil)
	var got corev1.Pod
	if code != 200 || json.Unmarshal(body, &got) != nil || got.Kind != "Pod" {
		t.Fatalf("graceful DELETE answered %d %s, want the pod", code, body)
	}
	cur, err := pods.Get(ctx, "sched", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("pod gone at once: %v", err)
	}
	if cur.DeletionTimestamp == nil || cur.DeletionGracePeriodSeconds == nil || *cur.DeletionGracePeriodSeconds != 30 {
		t.Fatalf("deletionTimestamp %v, grace %v; want set, 30", cur.DeletionTimestamp, cur.DeletionGracePeriodSeconds)
	}
	if cur.DeletionTimestamp.Time.Before(before.Add(28 * time.Second)) {
		t.Fatalf("deletionTimestamp %v is not now+30s", cur.DeletionTimestamp)
	}
	if cur.Generation != p.Generation+1 {
		t.Fatalf("generation %d, want %d", cur.Generation, p.Generation+1)
	}
	// Table shows Terminating
	_, _, tbl := ts.do(t, "GET", "/api/v1/namespaces/default/pods/sched", "", "application/json;as=Table;v=v1;g=meta.k8s.io", nil)
	var table metav1.Table
	if err := json.Unmarshal(tbl, &table); err != nil || len(table.Rows) != 1 || table.Rows[0].Cells[2] != "Terminating" {
		t.Fatalf("table: %s", tbl)
	}
	// a longer grace period changes nothing; a shorter one shortens it
	if err := pods.Delete(ctx, "sched", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(60))}); err != nil {
		t.Fatal(err)
	}
	if cur2, _ := pods.Get(ctx, "sched", metav1.GetOptions{}); cur2.ResourceVersion != cur.ResourceVersion {
		t.Fatalf("longer grace period rewrote the pod")
	}
	if err := pods.Delete(ctx, "sched", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(10))}); err != nil {
		t.Fatal(err)
	}
	cur, _ = pods.Get(ctx, "sched", metav1.GetOptions{})
	if *cur.DeletionGracePeriodSeconds != 10 {
		t.Fatalf("grace %d after shortening to 10", *cur.DeletionGracePeriodSeconds)
	}
	// the node agent's status writes do not finish the deletion
	cur.Status.Phase = corev1.PodRunning
	if _, err := pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "sched", metav1.GetOptions{}); err != nil {
		t.Fatalf("status update deleted a terminating pod: %v", err)
	}
	// the node agent confirms with grace 0 (and a uid precondition)
	if err := pods.Delete(ctx, "sched", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0)), Preconditions: &metav1.Preconditions{UID: &cur.UID}}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "sched", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after grace 0: %v", err)
	}

	// never scheduled: deleted at once
	if _, err := pods.Create(ctx, testPod("unsched", ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Delete(ctx, "unsched", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "unsched", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("unscheduled pod: %v", err)
	}
	// forced (--grace-period=0 --force) on a scheduled pod: at once
	if _, err := pods.Create(ctx, testPod("forced", "node-1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Delete(ctx, "forced", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "forced", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("forced: %v", err)
	}
	// terminationGracePeriodSeconds is the default grace period
	tp := testPod("short", "node-1")
	tp.Spec.TerminationGracePeriodSeconds = ptr(int64(5))
	if _, err := pods.Create(ctx, tp, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods.Delete(ctx, "short", metav1.DeleteOptions{})
	if cur, err := pods.Get(ctx, "short", metav1.GetOptions{}); err != nil || *cur.DeletionGracePeriodSeconds != 5 {
		t.Fatalf("grace from the spec: %v %v", err, cur)
	}
	// a finalizer keeps even a grace-0 deletion until it is removed
	fp := testPod("fin", "node-1")
	fp.Finalizers = []string{"example.com/keep"}
	if _, err := pods.Create(ctx, fp, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Delete(ctx, "fin", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}); err != nil {
		t.Fatal(err)
	}
	cur, err = pods.Get(ctx, "fin", metav1.GetOptions{})
	if err != nil || cur.DeletionTimestamp == nil || *cur.DeletionGracePeriodSeconds != 0 {
		t.Fatalf("finalized pod: %v %+v", err, cur)
	}
	cur.Finalizers = nil
	if _, err := pods.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "fin", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after the last finalizer: %v", err)
	}
}

func TestGarbageCollector(t *testing.T) {
	ts := startTestGC(t)
	ctx := context.Background()
	deps := ts.cs.AppsV1().Deployments("default")
	rss := ts.cs.AppsV1().ReplicaSets("default")
	pods := ts.cs.CoreV1().Pods("default")
	gone := func(get func() error) func() bool {
		return func() bool { return apierrors.IsNotFound(get()) }
	}
	podGone := func(name string) func() bool {
		return gone(func() error { _, err := pods.Get(ctx, name, metav1.GetOptions{}); return err })
	}
	rsGone := func(name string) func() bool {
		return gone(func() error { _, err := rss.Get(ctx, name, metav1.GetOptions{}); return err })
	}
	depGone := func(name string) func() bool {
		return gone(func() error { _, err := deps.Get(ctx, name, metav1.GetOptions{}); return err })
	}
	tree := func(name, node string, block bool) (*appsv1.Deployment, *appsv1.ReplicaSet) {
		t.Helper()
		d, err := deps.Create(ctx, testDeployment(name), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rs, err := rss.Create(ctx, testReplicaSet(name+"-rs", ownerRef("Deployment", "apps/v1", d.Name, d.UID, block)), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pods.Create(ctx, testPod(name+"-pod", node, ownerRef("ReplicaSet", "apps/v1", rs.Name, rs.UID, block)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		return d, rs
	}

	t.Run("background", func(t *testing.T) {
		tree("bg", "", false)
		if err := deps.Delete(ctx, "bg", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if !depGone("bg")() {
			t.Fatal("background delete kept the owner")
		}
		eventually(t, "replicaset collected", rsGone("bg-rs"))
		eventually(t, "pod collected", podGone("bg-pod"))
	})

	t.Run("orphan", func(t *testing.T) {
		tree("or", "", false)
		if err := deps.Delete(ctx, "or", metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationOrphan)}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "orphaning owner deleted", depGone("or"))
		rs, err := rss.Get(ctx, "or-rs", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("orphaned replicaset: %v", err)
		}
		if len(rs.OwnerReferences) != 0 {
			t.Fatalf("orphan kept the ownerReference: %v", rs.OwnerReferences)
		}
		if p, err := pods.Get(ctx, "or-pod", metav1.GetOptions{}); err != nil || len(p.OwnerReferences) != 1 {
			t.Fatalf("grandchild: %v %v", err, p)
		}
		// the orphan finalizer set by hand works as the default policy
		d, err := deps.Create(ctx, testDeployment("or2"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d.Finalizers = []string{metav1.FinalizerOrphanDependents}
		if d, err = deps.Update(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := rss.Create(ctx, testReplicaSet("or2-rs", ownerRef("Deployment", "apps/v1", d.Name, d.UID, false)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		deps.Delete(ctx, "or2", metav1.DeleteOptions{})
		eventually(t, "owner with orphan finalizer deleted", depGone("or2"))
		if rs, err := rss.Get(ctx, "or2-rs", metav1.GetOptions{}); err != nil || len(rs.OwnerReferences) != 0 {
			t.Fatalf("orphan finalizer: %v %v", err, rs)
		}
	})

	t.Run("foreground", func(t *testing.T) {
		// the pod is scheduled: it stays Terminating until its node
		// agent confirms, and blocks the whole chain meanwhile
		_, rs := tree("fg", "node-1", true)
		if err := deps.Delete(ctx, "fg", metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationForeground)}); err != nil {
			t.Fatal(err)
		}
		d, err := deps.Get(ctx, "fg", metav1.GetOptions{})
		if err != nil || d.DeletionTimestamp == nil || len(d.Finalizers) != 1 || d.Finalizers[0] != metav1.FinalizerDeleteDependents {
			t.Fatalf("foreground owner: %v %+v", err, d)
		}
		var p *corev1.Pod
		eventually(t, "pod terminating", func() bool {
			p, err = pods.Get(ctx, "fg-pod", metav1.GetOptions{})
			return err == nil && p.DeletionTimestamp != nil
		})
		r, err := rss.Get(ctx, "fg-rs", metav1.GetOptions{})
		if err != nil || r.DeletionTimestamp == nil {
			t.Fatalf("replicaset not being deleted: %v %+v", err, r)
		}
		if _, err := deps.Get(ctx, "fg", metav1.GetOptions{}); err != nil {
			t.Fatalf("owner deleted before its blocking dependents: %v", err)
		}
		// the node agent confirms: the chain unwinds
		if err := pods.Delete(ctx, "fg-pod", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0)), Preconditions: &metav1.Preconditions{UID: &p.UID}}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "replicaset deleted", rsGone(rs.Name))
		eventually(t, "deployment deleted", depGone("fg"))

		// a non-blocking dependent does not hold the owner
		d, err = deps.Create(ctx, testDeployment("fg2"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pods.Create(ctx, testPod("fg2-pod", "node-1", ownerRef("Deployment", "apps/v1", d.Name, d.UID, false)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		deps.Delete(ctx, "fg2", metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationForeground)})
		eventually(t, "owner with a non-blocking dependent deleted", depGone("fg2"))
		eventually(t, "non-blocking dependent terminating", func() bool {
			p, err := pods.Get(ctx, "fg2-pod", metav1.GetOptions{})
			return err == nil && p.DeletionTimestamp != nil
		})
		pods.Delete(ctx, "fg2-pod", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))})
	})

	t.Run("sweep", func(t *testing.T) {
		// a dependent created after its owner is gone is collected by the
		// periodic sweep
		if _, err := pods.Create(ctx, testPod("dangling", "", ownerRef("ReplicaSet", "apps/v1", "nope", "0000-gone", false)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// one live owner and one gone: only the dangling reference goes
		live, err := rss.Create(ctx, testReplicaSet("live"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pods.Create(ctx, testPod("two-owners", "", ownerRef("ReplicaSet", "apps/v1", "live", live.UID, false),
			metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "nope", UID: "0000-gone"}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// an owner of a kind not served here is never taken for gone
		if _, err := pods.Create(ctx, testPod("foreign", "", metav1.OwnerReference{APIVersion: "example.com/v1", Kind: "Widget", Name: "w", UID: "0000-widget"}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "dangling dependent collected", podGone("dangling"))
		eventually(t, "dangling reference dropped", func() bool {
			p, err := pods.Get(ctx, "two-owners", metav1.GetOptions{})
			return err == nil && len(p.OwnerReferences) == 1 && p.OwnerReferences[0].UID == live.UID
		})
		if _, err := pods.Get(ctx, "foreign", metav1.GetOptions{}); err != nil {
			t.Fatalf("pod with a foreign owner: %v", err)
		}
	})
}
