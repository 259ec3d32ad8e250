package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/wharfhq/wharf/internal/cluster/store"
)

// The garbage collector works like kube-controller-manager's, over the
// store instead of informers: a sweep lists every object's metadata, then
//   - deletes a dependent whose owners (ownerReferences, by uid) are all
//     gone (background propagation), or all waiting for their dependents
//     (foreground propagation: the dependent is deleted in the foreground
//     too when it has dependents itself);
//   - drops the dangling references of a dependent that still has a live
//     owner;
//   - for an owner being deleted with the `orphan` finalizer, removes its
//     ownerReference from every dependent, then the finalizer;
//   - for an owner being deleted with the `foregroundDeletion` finalizer,
//     removes the finalizer once no dependent with blockOwnerDeletion is
//     left.
// A sweep runs after every deletion (kicked) and every GCInterval.

// DefaultGCInterval is how often the garbage collector sweeps without being
// kicked by a deletion.
const DefaultGCInterval = 30 * time.Second

// gcMeta is the part of a stored object the collector reads.
type gcMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name              string                  `json:"name"`
		Namespace         string                  `json:"namespace"`
		UID               types.UID               `json:"uid"`
		DeletionTimestamp *metav1.Time            `json:"deletionTimestamp"`
		Finalizers        []string                `json:"finalizers"`
		OwnerReferences   []metav1.OwnerReference `json:"ownerReferences"`
	} `json:"metadata"`
}

type gcItem struct {
	r *resource
	m gcMeta
}

func (it *gcItem) has(fin string) bool {
	for _, f := range it.m.Metadata.Finalizers {
		if f == fin {
			return true
		}
	}
	return false
}

// kickGC asks for a sweep soon.
func (s *Server) kickGC() {
	select {
	case s.gcKick <- struct{}{}:
	default:
	}
}

func (s *Server) gcLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.gcKick:
		}
		// sweep until nothing changes (a foreground chain takes one sweep
		// per level), bounded so a misbehaving object cannot spin us
		for i := 0; i < 50 && ctx.Err() == nil; i++ {
			if !s.gcSweep(ctx) {
				break
			}
		}
	}
}

// gcResource maps an ownerReference to a served resource (nil: unknown
// kind, whose owners are never considered gone).
func (s *Server) gcResource(ref metav1.OwnerReference) *resource {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return nil
	}
	return s.reg.byGVK[gv.WithKind(ref.Kind)]
}

// ownerGone checks with a fresh read that the owner a reference names does
// not exist (or exists with another uid).
func (s *Server) ownerGone(ctx context.Context, dep *gcItem, ref metav1.OwnerReference) bool {
	r := s.gcResource(ref)
	if r == nil {
		return false
	}
	ns := ""
	if r.namespaced {
		ns = dep.m.Metadata.Namespace
		if !dep.r.namespaced {
			return false // a cluster-scoped object cannot have a namespaced owner; leave it alone
		}
	}
	kv, err := s.store.Get(ctx, r.key(ns, ref.Name))
	if errors.Is(err, store.ErrNotFound) {
		return true
	}
	if err != nil {
		return false
	}
	var m gcMeta
	if json.Unmarshal(kv.Value, &m) != nil {
		return false
	}
	return m.Metadata.UID != ref.UID
}

// gcSweep runs one pass; it reports whether it changed anything.
func (s *Server) gcSweep(ctx context.Context) bool {
	byUID := map[types.UID]*gcItem{}
	deps := map[types.UID][]*gcItem{}
	var items []*gcItem
	for _, r := range s.reg.all {
		if r.name == "events" {
			continue
		}
		res, err := s.store.List(ctx, r.listPrefix(""), store.ListOptions{})
		if err != nil {
			return false
		}
		for _, kv := range res.KVs {
			it := &gcItem{r: r}
			if json.Unmarshal(kv.Value, &it.m) != nil {
				continue
			}
			byUID[it.m.Metadata.UID] = it
			items = append(items, it)
			for _, ref := range it.m.Metadata.OwnerReferences {
				deps[ref.UID] = append(deps[ref.UID], it)
			}
		}
	}
	changed := false
	// dependents
	for _, it := range items {
		md := &it.m.Metadata
		if len(md.OwnerReferences) == 0 || md.DeletionTimestamp != nil {
			continue
		}
		var solid, drop, waiting int
		dropUIDs := map[types.UID]bool{}
		for _, ref := range md.OwnerReferences {
			owner := byUID[ref.UID]
			switch {
			case owner == nil && s.ownerGone(ctx, it, ref):
				drop++
				dropUIDs[ref.UID] = true
			case owner != nil && owner.m.Metadata.DeletionTimestamp != nil && owner.has(metav1.FinalizerDeleteDependents):
				waiting++
				dropUIDs[ref.UID] = true
			default:
				solid++
			}
		}
		switch {
		case solid > 0:
			if len(dropUIDs) > 0 && s.gcRemoveOwnerRefs(ctx, it, dropUIDs) {
				changed = true
			}
		case waiting > 0:
			prop := metav1.DeletePropagationBackground
			if len(deps[md.UID]) > 0 {
				prop = metav1.DeletePropagationForeground
			}
			if s.gcDelete(ctx, it, prop) {
				changed = true
			}
		default: // every owner is gone
			prop := metav1.DeletePropagationBackground
			if it.has(metav1.FinalizerOrphanDependents) {
				prop = metav1.DeletePropagationOrphan
			} else if it.has(metav1.FinalizerDeleteDependents) {
				prop = metav1.DeletePropagationForeground
			}
			if s.gcDelete(ctx, it, prop) {
				changed = true
			}
		}
	}
	// owners being deleted with a collector finalizer
	for _, it := range items {
		md := &it.m.Metadata
		if md.DeletionTimestamp == nil {
			continue
		}
		if it.has(metav1.FinalizerOrphanDependents) {
			ok := true
			for _, d := range deps[md.UID] {
				if !s.gcRemoveOwnerRefs(ctx, d, map[types.UID]bool{md.UID: true}) {
					ok = false
				}
			}
			if ok && s.gcRemoveFinalizer(ctx, it, metav1.FinalizerOrphanDependents) {
				changed = true
			}
			continue
		}
		if it.has(metav1.FinalizerDeleteDependents) {
			blocking := 0
			for _, d := range deps[md.UID] {
				for _, ref := range d.m.Metadata.OwnerReferences {
					if ref.UID == md.UID && ref.BlockOwnerDeletion != nil && *ref.BlockOwnerDeletion {
						blocking++
					}
				}
			}
			if blocking == 0 && s.gcRemoveFinalizer(ctx, it, metav1.FinalizerDeleteDependents) {
				changed = true
			}
		}
	}
	return changed
}

func (s *Server) gcDelete(ctx context.Context, it *gcItem, prop metav1.DeletionPropagation) bool {
	uid := it.m.Metadata.UID
	_, _, err := s.deleteObject(ctx, it.r, it.m.Metadata.Namespace, it.m.Metadata.Name,
		&metav1.DeleteOptions{PropagationPolicy: &prop, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		s.opts.Logf("kube API: garbage collector: delete %s %s/%s: %v", it.r.name, it.m.Metadata.Namespace, it.m.Metadata.Name, err)
	}
	return err == nil
}

// gcRemoveOwnerRefs drops the references to uids; false when it failed.
func (s *Server) gcRemoveOwnerRefs(ctx context.Context, it *gcItem, uids map[types.UID]bool) bool {
	_, _, err := s.update(ctx, it.r, it.m.Metadata.Namespace, it.m.Metadata.Name, "", false, "", func(cur runtime.Object) (runtime.Object, error) {
		if cur == nil {
			return nil, apierrors.NewNotFound(it.r.gr(), it.m.Metadata.Name)
		}
		cm := cur.(metav1.Object)
		if cm.GetUID() != it.m.Metadata.UID {
			return nil, apierrors.NewNotFound(it.r.gr(), it.m.Metadata.Name)
		}
		var refs []metav1.OwnerReference
		for _, ref := range cm.GetOwnerReferences() {
			if !uids[ref.UID] {
				refs = append(refs, ref)
			}
		}
		cm.SetOwnerReferences(refs)
		cm.SetResourceVersion("")
		return cur, nil
	})
	if err != nil && !apierrors.IsNotFound(err) {
		s.opts.Logf("kube API: garbage collector: update %s %s/%s: %v", it.r.name, it.m.Metadata.Namespace, it.m.Metadata.Name, err)
		return false
	}
	return true
}

// gcRemoveFinalizer removes fin; an object left with no finalizers and a
// zero grace period is deleted by the update.
func (s *Server) gcRemoveFinalizer(ctx context.Context, it *gcItem, fin string) bool {
	_, _, err := s.update(ctx, it.r, it.m.Metadata.Namespace, it.m.Metadata.Name, "", false, "", func(cur runtime.Object) (runtime.Object, error) {
		if cur == nil {
			return nil, apierrors.NewNotFound(it.r.gr(), it.m.Metadata.Name)
		}
		cm := cur.(metav1.Object)
		if cm.GetUID() != it.m.Metadata.UID {
			return nil, apierrors.NewNotFound(it.r.gr(), it.m.Metadata.Name)
		}
		var fins []string
		for _, f := range cm.GetFinalizers() {
			if f != fin {
				fins = append(fins, f)
			}
		}
		cm.SetFinalizers(fins)
		cm.SetResourceVersion("")
		return cur, nil
	})
	if err != nil && !apierrors.IsNotFound(err) {
		s.opts.Logf("kube API: garbage collector: remove finalizer %s from %s %s/%s: %v", fin, it.r.name, it.m.Metadata.Namespace, it.m.Metadata.Name, err)
		return false
	}
	return err == nil
}

// ---------- graceful deletion ----------

// beforeDelete applies the grace period of a DELETE as kube-apiserver does
// (only pods delete gracefully): graceful is true when obj was marked
// (deletionTimestamp in the future, deletionGracePeriodSeconds) and must be
// stored instead of deleted; pending is true when a graceful deletion with
// an equal or shorter period is already under way (nothing to do).
func beforeDelete(r *resource, obj runtime.Object, opts *metav1.DeleteOptions) (graceful, pending bool) {
	m := obj.(metav1.Object)
	if g := opts.GracePeriodSeconds; g != nil && *g < 0 {
		opts.GracePeriodSeconds = ptr(int64(1))
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok || r.name != "pods" {
		return false, false
	}
	if dts := m.GetDeletionTimestamp(); dts != nil {
		cur := m.GetDeletionGracePeriodSeconds()
		if cur == nil || *cur == 0 {
			return false, false
		}
		if opts.GracePeriodSeconds == nil {
			return false, true
		}
		period := *opts.GracePeriodSeconds
		if period >= *cur {
			return false, true
		}
		if period == 0 {
			return false, false // the node agent's (or a forced) final delete
		}
		when := dts.Add(-time.Duration(*cur) * time.Second).Add(time.Duration(period) * time.Second)
		if now := time.Now(); when.Before(now) {
			when, period = now, 1
		}
		t := metav1.NewTime(when).Rfc3339Copy()
		m.SetDeletionTimestamp(&t)
		m.SetDeletionGracePeriodSeconds(&period)
		return true, false
	}
	period := int64(0)
	if opts.GracePeriodSeconds != nil {
		period = *opts.GracePeriodSeconds
	} else if pod.Spec.TerminationGracePeriodSeconds != nil {
		period = *pod.Spec.TerminationGracePeriodSeconds
	}
	if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded {
		period = 0 // never scheduled, or already finished: nothing to stop
	}
	opts.GracePeriodSeconds = &period
	if period == 0 {
		return false, false
	}
	t := metav1.NewTime(time.Now().Add(time.Duration(period) * time.Second)).Rfc3339Copy()
	m.SetDeletionTimestamp(&t)
	m.SetDeletionGracePeriodSeconds(&period)
	if g := m.GetGeneration(); g > 0 {
		m.SetGeneration(g + 1)
	}
	return true, false
}

// gcFinalizers returns the finalizers a DELETE leaves on obj: the
// collector's `orphan` and `foregroundDeletion` as its propagation asks
// (or, without one, as the object's finalizers already say), the others
// kept. changed reports a difference from the current set.
func gcFinalizers(m metav1.Object, opts *metav1.DeleteOptions) (fins []string, changed bool) {
	orphan, foreground := false, false
	switch {
	case opts.OrphanDependents != nil:
		orphan = *opts.OrphanDependents
	case opts.PropagationPolicy != nil:
		orphan = *opts.PropagationPolicy == metav1.DeletePropagationOrphan
		foreground = *opts.PropagationPolicy == metav1.DeletePropagationForeground
	default:
		for _, f := range m.GetFinalizers() {
			orphan = orphan || f == metav1.FinalizerOrphanDependents
			foreground = foreground || f == metav1.FinalizerDeleteDependents
		}
		if orphan {
			foreground = false
		}
	}
	for _, f := range m.GetFinalizers() {
		if f != metav1.FinalizerOrphanDependents && f != metav1.FinalizerDeleteDependents {
			fins = append(fins, f)
		}
	}
	if orphan {
		fins = append(fins, metav1.FinalizerOrphanDependents)
	}
	if foreground {
		fins = append(fins, metav1.FinalizerDeleteDependents)
	}
	old := map[string]bool{}
	for _, f := range m.GetFinalizers() {
		old[f] = true
	}
	changed = len(old) != len(fins)
	for _, f := range fins {
		if !old[f] {
			changed = true
		}
	}
	return fins, changed
}
