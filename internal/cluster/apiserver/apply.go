package apiserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"sigs.k8s.io/yaml"
)

// Server-side apply and managed fields, with
// k8s.io/apimachinery/pkg/util/managedfields over a type converter built
// from the generated OpenAPI schemas.

type fieldManagers struct {
	once sync.Once
	err  error
	tc   managedfields.TypeConverter
	mu   sync.Mutex
	fms  map[string]*managedfields.FieldManager
}

type defaulter struct{ reg *registry }

func (d defaulter) Default(obj runtime.Object) {
	if r := d.reg.byGVK[obj.GetObjectKind().GroupVersionKind()]; r != nil && r.defaults != nil {
		r.defaults(obj)
	}
}

func (s *Server) fieldManager(r *resource, sub string) (*managedfields.FieldManager, error) {
	f := &s.fms
	f.once.Do(func() {
		if err := s.openapi.ensure(); err != nil {
			f.err = err
			return
		}
		var doc struct {
			Definitions map[string]*spec.Schema `json:"definitions"`
		}
		if err := json.Unmarshal(s.openapi.v2json, &doc); err != nil {
			f.err = err
			return
		}
		f.tc, f.err = managedfields.NewTypeConverter(doc.Definitions, false)
		f.fms = map[string]*managedfields.FieldManager{}
	})
	if f.err != nil {
		return nil, f.err
	}
	key := r.gvk().String() + "/" + sub
	f.mu.Lock()
	defer f.mu.Unlock()
	if fm, ok := f.fms[key]; ok {
		return fm, nil
	}
	fm, err := managedfields.NewDefaultFieldManager(f.tc, runtime.UnsafeObjectConvertor(s.scheme), defaulter{s.reg}, s.scheme, r.gvk(), r.gvk().GroupVersion(), sub, nil)
	if err != nil {
		return nil, err
	}
	f.fms[key] = fm
	return fm, nil
}

// managerName is the field manager of a write: ?fieldManager= or, like
// kube-apiserver, the User-Agent's program name.
func managerName(req *http.Request) string {
	if m := req.URL.Query().Get("fieldManager"); m != "" {
		return m
	}
	ua := req.Header.Get("User-Agent")
	if i := strings.Index(ua, "/"); i >= 0 {
		ua = ua[:i]
	}
	if ua == "" {
		return "unknown"
	}
	return ua
}

// trackManagedFields updates obj's managedFields for a write by manager
// (old nil for a create).
func (s *Server) trackManagedFields(r *resource, sub string, old, obj runtime.Object, manager string) runtime.Object {
	fm, err := s.fieldManager(r, sub)
	if err != nil || manager == "" {
		return obj
	}
	live := old
	if live == nil {
		live = r.newObj()
	}
	s.setTypeMeta(r, live)
	s.setTypeMeta(r, obj)
	out := fm.UpdateNoErrors(live, obj, manager)
	return s.toTyped(r, out)
}

func (s *Server) toTyped(r *resource, obj runtime.Object) runtime.Object {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		typed := r.newObj()
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.UnstructuredContent(), typed); err == nil {
			s.setTypeMeta(r, typed)
			return typed
		}
	}
	return obj
}

// decodeApply parses an apply patch (YAML or JSON) and checks it.
func (s *Server) decodeApply(r *resource, patch []byte, fv fieldValidation, name string) (*unstructured.Unstructured, []string, error) {
	j, err := yaml.YAMLToJSON(patch)
	if err != nil {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding YAML: %v", err))
	}
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal(j, &u.Object); err != nil || u.Object == nil {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding apply patch: %v", err))
	}
	if u.GetAPIVersion() == "" || u.GetKind() == "" {
		return nil, nil, apierrors.NewBadRequest("apiVersion and kind must be set in an apply patch")
	}
	if u.GroupVersionKind() != r.gvk() {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)", u.GetAPIVersion(), r.apiVersion()))
	}
	if u.GetName() != "" && u.GetName() != name {
		return nil, nil, apierrors.NewBadRequest("the name of the object (" + u.GetName() + ") does not match the name on the URL (" + name + ")")
	}
	if len(u.GetManagedFields()) > 0 {
		return nil, nil, apierrors.NewBadRequest("metadata.managedFields must be nil")
	}
	warns, err := strictJSON(j, r.newObj(), fv, r.kind, r.version)
	if err != nil {
		return nil, nil, err
	}
	return u, warns, nil
}

func (s *Server) serveApply(w http.ResponseWriter, req *http.Request, r *resource, ns, name, sub string, patch []byte) {
	ctx := req.Context()
	manager := req.URL.Query().Get("fieldManager")
	if manager == "" {
		writeError(w, apierrors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: "PatchOptions"}, "", field.ErrorList{field.Required(field.NewPath("fieldManager"), "is required for apply patch")}))
		return
	}
	force := req.URL.Query().Get("force") == "true"
	fv, err := fieldValidationOf(req)
	if err != nil {
		writeError(w, err)
		return
	}
	applied, warns, err := s.decodeApply(r, patch, fv, name)
	if err != nil {
		writeError(w, err)
		return
	}
	addWarnings(w, warns)
	fm, err := s.fieldManager(r, sub)
	if err != nil {
		writeError(w, apierrors.NewInternalError(err))
		return
	}
	apply := func(live runtime.Object) (runtime.Object, error) {
		s.setTypeMeta(r, live)
		out, err := fm.Apply(live, applied.DeepCopy(), manager, force)
		if err != nil {
			if _, ok := err.(apierrors.APIStatus); ok {
				return nil, err
			}
			return nil, apierrors.NewBadRequest(err.Error())
		}
		return s.toTyped(r, out), nil
	}
	code := http.StatusOK
	out, _, err := s.update(ctx, r, ns, name, sub, isDryRun(req), "", func(old runtime.Object) (runtime.Object, error) {
		if old == nil {
			return nil, apierrors.NewNotFound(r.gr(), name)
		}
		obj, err := apply(old)
		if err != nil {
			return nil, err
		}
		obj.(metav1.Object).SetResourceVersion("")
		return obj, nil
	})
	if apierrors.IsNotFound(err) && sub == "" {
		// apply creates
		live := r.newObj()
		live.(metav1.Object).SetName(name)
		live.(metav1.Object).SetNamespace(ns)
		var obj runtime.Object
		if obj, err = apply(live); err == nil {
			obj.(metav1.Object).SetName(name)
			out, err = s.create(ctx, r, ns, obj, isDryRun(req), "")
			code = http.StatusCreated
		}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	s.writeObject(w, req, r, code, out)
}
