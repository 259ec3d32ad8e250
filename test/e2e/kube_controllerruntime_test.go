package e2e

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

func crDeployment(name string, replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": name}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}},
			},
		},
	}
}

// eventuallyCR polls cond (the deadline only guards against a hang).
func eventuallyCR(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: never happened (last: %s)", what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestKubeControllerRuntime: sigs.k8s.io/controller-runtime's direct client
// (create, get, list with selectors, update, merge patch, optimistic
// concurrency, server-side apply, status, delete) and a manager with leader
// election on a Lease and a cache-backed reconciler: a tiny deployment
// controller that keeps one owned ReplicaSet at the deployment's replicas and
// reports observedGeneration through /status. Deleting the deployment lets
// the API server's garbage collector remove the ReplicaSet.
func TestKubeControllerRuntime(t *testing.T) {
	crlog.SetLogger(logr.Discard())
	ks := startKube(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", ks.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// --- the direct client ---
	d := crDeployment("cr-direct", 2)
	if err := c.Create(ctx, d); err != nil {
		t.Fatalf("create: %v", err)
	}
	if d.UID == "" || d.ResourceVersion == "" || d.Generation != 1 || d.Spec.Template.Spec.Containers[0].TerminationMessagePath != "/dev/termination-log" {
		t.Fatalf("create answered without server fields or defaults: uid %q rv %q gen %d", d.UID, d.ResourceVersion, d.Generation)
	}
	if err := c.Create(ctx, crDeployment("cr-direct", 1)); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("second create: %v", err)
	}
	var got appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "cr-direct"}, &got); err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.UID != d.UID || *got.Spec.Replicas != 2 {
		t.Fatalf("get: %+v", got.ObjectMeta)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "nope"}, &got); !apierrors.IsNotFound(err) {
		t.Fatalf("get missing: %v", err)
	}
	if err := c.Create(ctx, crDeployment("cr-other", 1)); err != nil {
		t.Fatal(err)
	}
	var list appsv1.DeploymentList
	if err := c.List(ctx, &list, client.InNamespace("default"), client.MatchingLabels{"app": "cr-direct"}); err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "cr-direct" {
		t.Fatalf("list by label: %d items", len(list.Items))
	}
	if err := c.List(ctx, &list, client.InNamespace("default"), client.MatchingFields{"metadata.name": "cr-other"}); err != nil || len(list.Items) != 1 {
		t.Fatalf("list by field: %v %d", err, len(list.Items))
	}
	if err := c.List(ctx, &list, client.InNamespace("default"), client.Limit(1)); err != nil || len(list.Items) != 1 || list.Continue == "" {
		t.Fatalf("list with limit: %v %d items, continue %q", err, len(list.Items), list.Continue)
	}
	if err := c.List(ctx, &list, client.InNamespace("default"), client.Limit(1), client.Continue(list.Continue)); err != nil || len(list.Items) != 1 || list.Continue != "" {
		t.Fatalf("list continued: %v %d items, continue %q", err, len(list.Items), list.Continue)
	}

	// update; a stale copy conflicts
	stale := got.DeepCopy()
	*got.Spec.Replicas = 3
	if err := c.Update(ctx, &got); err != nil {
		t.Fatalf("update: %v", err)
	}
	if got.Generation != 2 {
		t.Fatalf("update: generation %d", got.Generation)
	}
	*stale.Spec.Replicas = 4
	if err := c.Update(ctx, stale); !apierrors.IsConflict(err) {
		t.Fatalf("stale update: %v", err)
	}
	// merge patch, and a merge patch with optimistic locking on a stale base
	base := got.DeepCopy()
	got.Labels["tier"] = "web"
	if err := c.Patch(ctx, &got, client.MergeFrom(base)); err != nil {
		t.Fatalf("merge patch: %v", err)
	}
	if err := c.Patch(ctx, stale, client.MergeFromWithOptions(stale.DeepCopy(), client.MergeFromWithOptimisticLock{})); !apierrors.IsConflict(err) {
		t.Fatalf("optimistic-lock patch on a stale object: %v", err)
	}
	// strategic merge patch on a container
	if err := c.Patch(ctx, &got, client.RawPatch(types.StrategicMergePatchType, []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.28"}]}}}}`))); err != nil {
		t.Fatalf("strategic merge patch: %v", err)
	}
	if got.Spec.Template.Spec.Containers[0].Image != "nginx:1.28" || got.Labels["tier"] != "web" {
		t.Fatalf("after patches: image %q labels %v", got.Spec.Template.Spec.Containers[0].Image, got.Labels)
	}
	// server-side apply through the typed apply configurations
	ac := appsv1ac.Deployment("cr-direct", "default").WithSpec(appsv1ac.DeploymentSpec().WithMinReadySeconds(5))
	if err := c.Apply(ctx, ac, client.FieldOwner("cr-test"), client.ForceOwnership); err != nil {
		t.Fatalf("server-side apply: %v", err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(&got), &got); err != nil {
		t.Fatal(err)
	}
	owned := false
	for _, mf := range got.ManagedFields {
		if mf.Manager == "cr-test" && mf.Operation == metav1.ManagedFieldsOperationApply {
			owned = true
		}
	}
	if got.Spec.MinReadySeconds != 5 || !owned {
		t.Fatalf("after apply: minReadySeconds %d, managers %+v", got.Spec.MinReadySeconds, got.ManagedFields)
	}
	// status subresource: spec stays, status changes
	got.Status.ObservedGeneration = got.Generation
	got.Status.Replicas = 3
	*got.Spec.Replicas = 9
	if err := c.Status().Update(ctx, &got); err != nil {
		t.Fatalf("status update: %v", err)
	}
	if got.Status.Replicas != 3 || *got.Spec.Replicas != 3 {
		t.Fatalf("status update: spec.replicas %d status.replicas %d", *got.Spec.Replicas, got.Status.Replicas)
	}
	// delete with a precondition; deleting again is NotFound
	if err := c.Delete(ctx, &got, client.Preconditions{UID: ptrTo(types.UID("wrong"))}); !apierrors.IsConflict(err) {
		t.Fatalf("delete with a wrong uid precondition: %v", err)
	}
	if err := c.Delete(ctx, &got, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := c.Delete(ctx, &got); !apierrors.IsNotFound(err) {
		t.Fatalf("second delete: %v", err)
	}
	if err := c.DeleteAllOf(ctx, &appsv1.Deployment{}, client.InNamespace("default"), client.MatchingLabels{"app": "cr-other"}); err != nil {
		t.Fatalf("delete all of: %v", err)
	}
	eventuallyCR(t, "deletecollection", func() (bool, string) {
		err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "cr-other"}, &got)
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})

	// --- a manager: leader election on a Lease, cache-backed client, reconciler ---
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:  "0",
		LeaderElection:          true,
		LeaderElectionID:        "wharf-cr-test",
		LeaderElectionNamespace: "default",
	})
	if err != nil {
		t.Fatal(err)
	}
	var reconciles atomic.Int64
	rec := &miniDeploymentReconciler{c: mgr.GetClient(), scheme: scheme, n: &reconciles}
	if err := ctrl.NewControllerManagedBy(mgr).For(&appsv1.Deployment{}).Owns(&appsv1.ReplicaSet{}).Named("mini-deployment").Complete(rec); err != nil {
		t.Fatal(err)
	}
	mctx, mcancel := context.WithCancel(ctx)
	mdone := make(chan error, 1)
	go func() { mdone <- mgr.Start(mctx) }()
	defer func() {
		mcancel()
		select {
		case err := <-mdone:
			if err != nil {
				t.Errorf("manager: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("manager did not stop")
		}
	}()
	select {
	case <-mgr.Elected():
	case err := <-mdone:
		t.Fatalf("manager stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("manager was never elected")
	}
	var lease coordinationv1.Lease
	if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "wharf-cr-test"}, &lease); err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Fatalf("leader election lease: %v %+v", err, lease.Spec)
	}
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}

	web := crDeployment("cr-web", 2)
	if err := c.Create(ctx, web); err != nil {
		t.Fatal(err)
	}
	rsOf := func(name string) (*appsv1.ReplicaSet, error) {
		var rs appsv1.ReplicaSet
		err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: name + "-rs"}, &rs)
		return &rs, err
	}
	converged := func(want int32) func() (bool, string) {
		return func() (bool, string) {
			var dep appsv1.Deployment
			if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "cr-web"}, &dep); err != nil {
				return false, err.Error()
			}
			rs, err := rsOf("cr-web")
			if err != nil {
				return false, err.Error()
			}
			st := fmt.Sprintf("deployment gen %d observed %d status.replicas %d; rs replicas %d", dep.Generation, dep.Status.ObservedGeneration, dep.Status.Replicas, *rs.Spec.Replicas)
			return dep.Status.ObservedGeneration == dep.Generation && dep.Status.Replicas == want && *rs.Spec.Replicas == want, st
		}
	}
	eventuallyCR(t, "reconciler creates the ReplicaSet", converged(2))
	rs, _ := rsOf("cr-web")
	if ref := metav1.GetControllerOf(rs); ref == nil || ref.UID != web.UID || ref.Kind != "Deployment" {
		t.Fatalf("ReplicaSet owner: %+v", rs.OwnerReferences)
	}
	// scale through /scale: the watch on deployments wakes the reconciler
	scale := &autoscalingv1.Scale{}
	if err := c.SubResource("scale").Patch(ctx, web, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"replicas":5}}`)), client.WithSubResourceBody(scale)); err != nil {
		t.Fatalf("scale: %v", err)
	}
	if scale.Spec.Replicas != 5 || scale.Status.Selector != "app=cr-web" {
		t.Fatalf("scale answered %+v", scale)
	}
	scale = &autoscalingv1.Scale{}
	if err := c.SubResource("scale").Get(ctx, web, scale); err != nil || scale.Spec.Replicas != 5 {
		t.Fatalf("get scale: %v %+v", err, scale.Spec)
	}
	eventuallyCR(t, "reconciler follows a scale", converged(5))
	// someone changes the owned ReplicaSet: the Owns() watch puts it back
	rs, _ = rsOf("cr-web")
	rs.Spec.Replicas = ptrTo(int32(1))
	if err := c.Update(ctx, rs); err != nil {
		t.Fatal(err)
	}
	eventuallyCR(t, "reconciler repairs its ReplicaSet", converged(5))
	// the cache-backed client sees the same as the server
	var cached appsv1.ReplicaSetList
	if err := mgr.GetClient().List(ctx, &cached, client.InNamespace("default")); err != nil || len(cached.Items) != 1 {
		t.Fatalf("cached list: %v %d", err, len(cached.Items))
	}
	// delete the deployment: the garbage collector removes the ReplicaSet
	if err := c.Delete(ctx, web); err != nil {
		t.Fatal(err)
	}
	eventuallyCR(t, "ReplicaSet garbage collected", func() (bool, string) {
		_, err := rsOf("cr-web")
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	if reconciles.Load() < 3 {
		t.Fatalf("only %d reconciles", reconciles.Load())
	}
}

func ptrTo[T any](v T) *T { return &v }

// miniDeploymentReconciler keeps one ReplicaSet per Deployment at its
// replicas and reports status, reading through the manager's cache.
type miniDeploymentReconciler struct {
	c      client.Client
	scheme *runtime.Scheme
	n      *atomic.Int64
}

func (r *miniDeploymentReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	r.n.Add(1)
	var d appsv1.Deployment
	if err := r.c.Get(ctx, req.NamespacedName, &d); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if d.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: d.Name + "-rs", Namespace: d.Namespace}}
	if _, err := controllerutil.CreateOrUpdate(ctx, r.c, rs, func() error {
		rs.Labels = d.Spec.Template.Labels
		rs.Spec.Replicas = ptrTo(*d.Spec.Replicas)
		rs.Spec.Selector = d.Spec.Selector
		rs.Spec.Template = d.Spec.Template
		return controllerutil.SetControllerReference(&d, rs, r.scheme)
	}); err != nil {
		return ctrl.Result{}, err
	}
	if d.Status.ObservedGeneration != d.Generation || d.Status.Replicas != *d.Spec.Replicas {
		d.Status.ObservedGeneration = d.Generation
		d.Status.Replicas = *d.Spec.Replicas
		if err := r.c.Status().Update(ctx, &d); err != nil {
			return ctrl.Result{}, err // a conflict with a newer write: requeued
		}
	}
	return ctrl.Result{}, nil
}
