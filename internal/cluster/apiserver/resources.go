package apiserver

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// newScheme registers the served types. Built on demand (never in init):
// the wharf binary re-execs itself for every container start.
func newScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, autoscalingv1.AddToScheme,
		coordinationv1.AddToScheme, discoveryv1.AddToScheme, metav1.AddMetaToScheme,
	} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	return s, nil
}

// column is one Table column with the function producing its cell.
type column struct {
	def  metav1.TableColumnDefinition
	cell func(obj runtime.Object) interface{}
}

// resource describes one served REST resource.
type resource struct {
	group, version string
	name, singular string // plural resource name, singular
	kind, listKind string
	namespaced     bool
	shortNames     []string
	categories     []string
	hasStatus      bool
	hasScale       bool
	noDeleteColl   bool
	newObj         func() runtime.Object
	newList        func() runtime.Object
	// defaults fills kube-apiserver's defaults on every write.
	defaults func(obj runtime.Object)
	// validate returns field errors (nil old for create).
	validate func(obj, old runtime.Object) field.ErrorList
	// columns are the Table columns after NAME (nil: CREATED AT).
	columns []column
	// fieldSet returns the fields usable in fieldSelector beyond metadata.
	fieldSet func(obj runtime.Object, set fields.Set)
}

func (r *resource) gvk() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: r.group, Version: r.version, Kind: r.kind}
}

func (r *resource) gr() schema.GroupResource {
	return schema.GroupResource{Group: r.group, Resource: r.name}
}

func (r *resource) apiVersion() string {
	if r.group == "" {
		return r.version
	}
	return r.group + "/" + r.version
}

// storagePrefix is the key prefix of all objects of this resource.
func (r *resource) storagePrefix() string {
	g := r.group
	if g == "" {
		g = "core"
	}
	return "/registry/" + g + "/" + r.name + "/"
}

func (r *resource) key(ns, name string) string {
	if r.namespaced {
		return r.storagePrefix() + ns + "/" + name
	}
	return r.storagePrefix() + name
}

func (r *resource) listPrefix(ns string) string {
	if r.namespaced && ns != "" {
		return r.storagePrefix() + ns + "/"
	}
	return r.storagePrefix()
}

func (r *resource) verbs() []string {
	v := []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	if r.noDeleteColl {
		v = []string{"create", "delete", "get", "list", "patch", "update", "watch"}
	}
	return v
}

// registry holds every served resource.
type registry struct {
	all    []*resource
	byPath map[string]*resource // "group/version/resource"
	byGVK  map[schema.GroupVersionKind]*resource
}

func (g *registry) lookup(group, version, res string) *resource {
	return g.byPath[group+"/"+version+"/"+res]
}

// groupVersions returns the served group versions in discovery order.
func (g *registry) groupVersions() []schema.GroupVersion {
	var out []schema.GroupVersion
	seen := map[schema.GroupVersion]bool{}
	for _, r := range g.all {
		gv := schema.GroupVersion{Group: r.group, Version: r.version}
		if !seen[gv] {
			seen[gv] = true
			out = append(out, gv)
		}
	}
	return out
}

func newRegistry() *registry {
	g := &registry{byPath: map[string]*resource{}, byGVK: map[schema.GroupVersionKind]*resource{}}
	add := func(r *resource) {
		if r.listKind == "" {
			r.listKind = r.kind + "List"
		}
		if r.singular == "" {
			r.singular = strings.ToLower(r.kind)
		}
		g.all = append(g.all, r)
		g.byPath[r.group+"/"+r.version+"/"+r.name] = r
		g.byGVK[r.gvk()] = r
	}
	add(&resource{version: "v1", name: "namespaces", kind: "Namespace", shortNames: []string{"ns"}, hasStatus: true, noDeleteColl: true,
		newObj: func() runtime.Object { return &corev1.Namespace{} }, newList: func() runtime.Object { return &corev1.NamespaceList{} },
		defaults: defaultNamespace, validate: validateNamespace, columns: namespaceColumns,
		fieldSet: func(o runtime.Object, s fields.Set) { s["status.phase"] = string(o.(*corev1.Namespace).Status.Phase) }})
	add(&resource{version: "v1", name: "pods", kind: "Pod", namespaced: true, shortNames: []string{"po"}, categories: []string{"all"}, hasStatus: true,
		newObj: func() runtime.Object { return &corev1.Pod{} }, newList: func() runtime.Object { return &corev1.PodList{} },
		defaults: defaultPod, validate: validatePod, columns: podColumns, fieldSet: podFields})
	add(&resource{version: "v1", name: "services", kind: "Service", namespaced: true, shortNames: []string{"svc"}, categories: []string{"all"}, hasStatus: true,
		newObj: func() runtime.Object { return &corev1.Service{} }, newList: func() runtime.Object { return &corev1.ServiceList{} },
		defaults: defaultService, validate: validateService, columns: serviceColumns})
	add(&resource{version: "v1", name: "endpoints", kind: "Endpoints", namespaced: true, shortNames: []string{"ep"},
		newObj: func() runtime.Object { return &corev1.Endpoints{} }, newList: func() runtime.Object { return &corev1.EndpointsList{} },
		defaults: defaultEndpoints, columns: endpointsColumns})
	add(&resource{version: "v1", name: "nodes", kind: "Node", shortNames: []string{"no"}, hasStatus: true,
		newObj: func() runtime.Object { return &corev1.Node{} }, newList: func() runtime.Object { return &corev1.NodeList{} },
		columns: nodeColumns, fieldSet: func(o runtime.Object, s fields.Set) {
			s["spec.unschedulable"] = fmt.Sprint(o.(*corev1.Node).Spec.Unschedulable)
		}})
	add(&resource{version: "v1", name: "events", kind: "Event", namespaced: true, shortNames: []string{"ev"},
		newObj: func() runtime.Object { return &corev1.Event{} }, newList: func() runtime.Object { return &corev1.EventList{} },
		validate: validateEvent, columns: eventColumns, fieldSet: eventFields})
	add(&resource{version: "v1", name: "configmaps", kind: "ConfigMap", namespaced: true, shortNames: []string{"cm"},
		newObj: func() runtime.Object { return &corev1.ConfigMap{} }, newList: func() runtime.Object { return &corev1.ConfigMapList{} },
		validate: validateConfigMap, columns: configMapColumns})
	add(&resource{version: "v1", name: "secrets", kind: "Secret", namespaced: true,
		newObj: func() runtime.Object { return &corev1.Secret{} }, newList: func() runtime.Object { return &corev1.SecretList{} },
		defaults: defaultSecret, validate: validateSecret, columns: secretColumns, fieldSet: func(o runtime.Object, s fields.Set) { s["type"] = string(o.(*corev1.Secret).Type) }})
	add(&resource{version: "v1", name: "serviceaccounts", kind: "ServiceAccount", namespaced: true, shortNames: []string{"sa"},
		newObj: func() runtime.Object { return &corev1.ServiceAccount{} }, newList: func() runtime.Object { return &corev1.ServiceAccountList{} },
		columns: serviceAccountColumns})
	add(&resource{group: "apps", version: "v1", name: "deployments", kind: "Deployment", namespaced: true, shortNames: []string{"deploy"}, categories: []string{"all"}, hasStatus: true, hasScale: true,
		newObj: func() runtime.Object { return &appsv1.Deployment{} }, newList: func() runtime.Object { return &appsv1.DeploymentList{} },
		defaults: defaultDeployment, validate: validateDeployment, columns: deploymentColumns})
	add(&resource{group: "apps", version: "v1", name: "replicasets", kind: "ReplicaSet", namespaced: true, shortNames: []string{"rs"}, categories: []string{"all"}, hasStatus: true, hasScale: true,
		newObj: func() runtime.Object { return &appsv1.ReplicaSet{} }, newList: func() runtime.Object { return &appsv1.ReplicaSetList{} },
		defaults: defaultReplicaSet, validate: validateReplicaSet, columns: replicaSetColumns})
	add(&resource{group: "discovery.k8s.io", version: "v1", name: "endpointslices", kind: "EndpointSlice", namespaced: true,
		newObj: func() runtime.Object { return &discoveryv1.EndpointSlice{} }, newList: func() runtime.Object { return &discoveryv1.EndpointSliceList{} },
		defaults: defaultEndpointSlice, columns: endpointSliceColumns})
	add(&resource{group: "coordination.k8s.io", version: "v1", name: "leases", kind: "Lease", namespaced: true,
		newObj: func() runtime.Object { return &coordinationv1.Lease{} }, newList: func() runtime.Object { return &coordinationv1.LeaseList{} },
		columns: leaseColumns})
	return g
}
