package apiserver

import (
	"mime"
	"net/http"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	apidiscoveryv2beta1 "k8s.io/api/apidiscovery/v2beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

type subresource struct {
	name  string
	kind  schema.GroupVersionKind
	verbs []string
}

func (s *Server) subresources(r *resource) []subresource {
	var out []subresource
	if r.hasStatus {
		out = append(out, subresource{"status", r.gvk(), []string{"get", "patch", "update"}})
	}
	if r.hasScale {
		out = append(out, subresource{"scale", schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}, []string{"get", "patch", "update"}})
	}
	if r.name == "namespaces" {
		out = append(out, subresource{"finalize", r.gvk(), []string{"update"}})
	}
	if r.name == "pods" {
		pgvk := schema.GroupVersionKind{Version: "v1", Kind: "PodAttachOptions"}
		out = append(out,
			subresource{"attach", pgvk, []string{"create", "get"}},
			subresource{"exec", schema.GroupVersionKind{Version: "v1", Kind: "PodExecOptions"}, []string{"create", "get"}},
			subresource{"log", schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, []string{"get"}},
			subresource{"portforward", schema.GroupVersionKind{Version: "v1", Kind: "PodPortForwardOptions"}, []string{"create", "get"}},
			subresource{"proxy", schema.GroupVersionKind{Version: "v1", Kind: "PodProxyOptions"}, []string{"create", "delete", "get", "patch", "update"}},
		)
	}
	return out
}

// aggregatedAccept returns the aggregated discovery version the client
// accepts ("v2", "v2beta1" or "" for legacy).
func aggregatedAccept(r *http.Request) string {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if mt == "application/json" && params["g"] == "apidiscovery.k8s.io" && params["as"] == "APIGroupDiscoveryList" {
			if params["v"] == "v2" || params["v"] == "v2beta1" {
				return params["v"]
			}
		}
		if mt == "application/json" && params["g"] == "" {
			return ""
		}
	}
	return ""
}

func (s *Server) groupDiscovery(group string) apidiscoveryv2.APIGroupDiscovery {
	gd := apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: group}}
	for _, gv := range s.reg.groupVersions() {
		if gv.Group != group {
			continue
		}
		vd := apidiscoveryv2.APIVersionDiscovery{Version: gv.Version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
		for _, r := range s.reg.all {
			if r.group != group || r.version != gv.Version {
				continue
			}
			scope := apidiscoveryv2.ScopeCluster
			if r.namespaced {
				scope = apidiscoveryv2.ScopeNamespace
			}
			rd := apidiscoveryv2.APIResourceDiscovery{
				Resource:         r.name,
				ResponseKind:     &metav1.GroupVersionKind{Group: r.group, Version: r.version, Kind: r.kind},
				Scope:            scope,
				SingularResource: r.singular,
				Verbs:            r.verbs(),
				ShortNames:       r.shortNames,
				Categories:       r.categories,
			}
			for _, sr := range s.subresources(r) {
				rd.Subresources = append(rd.Subresources, apidiscoveryv2.APISubresourceDiscovery{
					Subresource:  sr.name,
					ResponseKind: &metav1.GroupVersionKind{Group: sr.kind.Group, Version: sr.kind.Version, Kind: sr.kind.Kind},
					Verbs:        sr.verbs,
				})
			}
			vd.Resources = append(vd.Resources, rd)
		}
		gd.Versions = append(gd.Versions, vd)
	}
	return gd
}

func (s *Server) writeAggregated(w http.ResponseWriter, ver string, groups []string) {
	list := apidiscoveryv2.APIGroupDiscoveryList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: "apidiscovery.k8s.io/" + ver}}
	for _, g := range groups {
		list.Items = append(list.Items, s.groupDiscovery(g))
	}
	var out interface{} = list
	if ver == "v2beta1" {
		// same shape; the struct types differ only by package
		b := apidiscoveryv2beta1.APIGroupDiscoveryList{TypeMeta: list.TypeMeta}
		for _, it := range list.Items {
			gd := apidiscoveryv2beta1.APIGroupDiscovery{ObjectMeta: it.ObjectMeta}
			for _, v := range it.Versions {
				vd := apidiscoveryv2beta1.APIVersionDiscovery{Version: v.Version, Freshness: apidiscoveryv2beta1.DiscoveryFreshness(v.Freshness)}
				for _, r := range v.Resources {
					rd := apidiscoveryv2beta1.APIResourceDiscovery{Resource: r.Resource, ResponseKind: r.ResponseKind, Scope: apidiscoveryv2beta1.ResourceScope(r.Scope),
						SingularResource: r.SingularResource, Verbs: r.Verbs, ShortNames: r.ShortNames, Categories: r.Categories}
					for _, sr := range r.Subresources {
						rd.Subresources = append(rd.Subresources, apidiscoveryv2beta1.APISubresourceDiscovery{Subresource: sr.Subresource, ResponseKind: sr.ResponseKind, Verbs: sr.Verbs})
					}
					vd.Resources = append(vd.Resources, rd)
				}
				gd.Versions = append(gd.Versions, vd)
			}
			b.Items = append(b.Items, gd)
		}
		out = b
	}
	w.Header().Set("Content-Type", "application/json;g=apidiscovery.k8s.io;v="+ver+";as=APIGroupDiscoveryList")
	w.Header().Set("Vary", "Accept")
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) nonCoreGroups() []string {
	var out []string
	seen := map[string]bool{}
	for _, gv := range s.reg.groupVersions() {
		if gv.Group != "" && !seen[gv.Group] {
			seen[gv.Group] = true
			out = append(out, gv.Group)
		}
	}
	return out
}

// serveAPI answers GET /api.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	if v := aggregatedAccept(r); v != "" {
		s.writeAggregated(w, v, []string{""})
		return
	}
	w.Header().Set("Vary", "Accept")
	writeJSON(w, http.StatusOK, &metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"},
		ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}}})
}

func (s *Server) apiGroup(group string) metav1.APIGroup {
	g := metav1.APIGroup{TypeMeta: metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}, Name: group}
	for _, gv := range s.reg.groupVersions() {
		if gv.Group == group {
			v := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version}
			g.Versions = append(g.Versions, v)
			if g.PreferredVersion.Version == "" {
				g.PreferredVersion = v
			}
		}
	}
	return g
}

// serveAPIs answers GET /apis.
func (s *Server) serveAPIs(w http.ResponseWriter, r *http.Request) {
	if v := aggregatedAccept(r); v != "" {
		s.writeAggregated(w, v, s.nonCoreGroups())
		return
	}
	list := metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
	for _, g := range s.nonCoreGroups() {
		ag := s.apiGroup(g)
		ag.TypeMeta = metav1.TypeMeta{}
		list.Groups = append(list.Groups, ag)
	}
	w.Header().Set("Vary", "Accept")
	writeJSON(w, http.StatusOK, list)
}

// serveGroup answers GET /apis/<group>.
func (s *Server) serveGroup(w http.ResponseWriter, r *http.Request, group string) {
	g := s.apiGroup(group)
	if len(g.Versions) == 0 {
		writeError(w, notFoundPath(r))
		return
	}
	writeJSON(w, http.StatusOK, g)
}

// serveResourceList answers GET /api/v1 and /apis/<group>/<version>.
func (s *Server) serveResourceList(w http.ResponseWriter, r *http.Request, group, version string) {
	gv := schema.GroupVersion{Group: group, Version: version}
	list := metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv.String()}
	for _, res := range s.reg.all {
		if res.group != group || res.version != version {
			continue
		}
		list.APIResources = append(list.APIResources, metav1.APIResource{Name: res.name, SingularName: res.singular, Namespaced: res.namespaced,
			Kind: res.kind, Verbs: res.verbs(), ShortNames: res.shortNames, Categories: res.categories, StorageVersionHash: storageHash(res)})
		for _, sr := range s.subresources(res) {
			list.APIResources = append(list.APIResources, metav1.APIResource{Name: res.name + "/" + sr.name, Namespaced: res.namespaced,
				Group: sr.kind.Group, Version: sr.kind.Version, Kind: sr.kind.Kind, Verbs: sr.verbs})
		}
	}
	if len(list.APIResources) == 0 {
		writeError(w, notFoundPath(r))
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func storageHash(r *resource) string {
	h := uint32(2166136261)
	for _, c := range []byte(r.group + "/" + r.version + "/" + r.kind) {
		h = (h ^ uint32(c)) * 16777619
	}
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	b := make([]byte, 11)
	for i := range b {
		b[i] = chars[h%64]
		h = h*31 + uint32(i)
	}
	return string(b[:11])
}
