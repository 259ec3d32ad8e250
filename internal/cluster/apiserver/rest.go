package apiserver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/wharfhq/wharf/internal/cluster/store"
)

// maxBodyBytes is kube-apiserver's request body limit.
const maxBodyBytes = 3 * 1024 * 1024

func base64URLDecode(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func equalJSON(a, b interface{}) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// ---------- object <-> storage ----------

func (s *Server) setTypeMeta(r *resource, obj runtime.Object) {
	obj.GetObjectKind().SetGroupVersionKind(r.gvk())
}

// encodeForStore marshals obj without its resourceVersion.
func (s *Server) encodeForStore(r *resource, obj runtime.Object) ([]byte, error) {
	m := obj.(metav1.Object)
	rv := m.GetResourceVersion()
	m.SetResourceVersion("")
	s.setTypeMeta(r, obj)
	data, err := json.Marshal(obj)
	m.SetResourceVersion(rv)
	return data, err
}

func (s *Server) decodeStored(r *resource, kv store.KeyValue) (runtime.Object, error) {
	obj := r.newObj()
	if err := json.Unmarshal(kv.Value, obj); err != nil {
		return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
	}
	obj.(metav1.Object).SetResourceVersion(strconv.FormatInt(kv.ModRevision, 10))
	s.setTypeMeta(r, obj)
	return obj, nil
}

func storeErr(r *resource, name string, err error) error {
	var se apierrors.APIStatus
	switch {
	case errors.As(err, &se):
		return err
	case errors.Is(err, store.ErrNotFound):
		return apierrors.NewNotFound(r.gr(), name)
	case errors.Is(err, store.ErrExists):
		return apierrors.NewAlreadyExists(r.gr(), name)
	case errors.Is(err, store.ErrConflict):
		return apierrors.NewConflict(r.gr(), name, errors.New(registryConflictMsg))
	case errors.Is(err, store.ErrCompacted):
		return apierrors.NewResourceExpired("The resourceVersion for the provided list is too old.")
	case errors.Is(err, store.ErrFutureRevision):
		return apierrors.NewTimeoutError("Too large resource version", 1)
	}
	return apierrors.NewInternalError(err)
}

const registryConflictMsg = "the object has been modified; please apply your changes to the latest version and try again"

func (s *Server) getObject(ctx context.Context, r *resource, ns, name string) (runtime.Object, store.KeyValue, error) {
	kv, err := s.store.Get(ctx, r.key(ns, name))
	if err != nil {
		return nil, kv, storeErr(r, name, err)
	}
	obj, err := s.decodeStored(r, kv)
	return obj, kv, err
}

// ---------- request decoding ----------

type fieldValidation string

func fieldValidationOf(r *http.Request) (fieldValidation, error) {
	v := r.URL.Query().Get("fieldValidation")
	switch v {
	case "":
		return "Warn", nil
	case "Strict", "Warn", "Ignore":
		return fieldValidation(v), nil
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("fieldValidation invalid value: %s", v))
}

func readBody(r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if len(data) > maxBodyBytes {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", maxBodyBytes))
	}
	return data, nil
}

func mediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return "application/json"
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ct
	}
	return mt
}

// strictJSON decodes data into obj, reporting unknown/duplicate fields per
// fieldValidation. Warnings are returned for Warn.
func strictJSON(data []byte, obj interface{}, fv fieldValidation, kind, version string) ([]string, error) {
	strictErrs, err := sigsjson.UnmarshalStrict(data, obj, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", kind, version, kind, err))
	}
	if len(strictErrs) == 0 || fv == "Ignore" {
		return nil, nil
	}
	var msgs []string
	for _, e := range strictErrs {
		msgs = append(msgs, e.Error())
	}
	if fv == "Strict" {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: strict decoding error: %s", kind, version, kind, strings.Join(msgs, ", ")))
	}
	return msgs, nil
}

// decodeBody decodes a request body (JSON, YAML or protobuf) into r's type.
func (s *Server) decodeBody(r *resource, req *http.Request, into runtime.Object, kind, apiVersion string) (runtime.Object, []string, error) {
	fv, err := fieldValidationOf(req)
	if err != nil {
		return nil, nil, err
	}
	data, err := readBody(req)
	if err != nil {
		return nil, nil, err
	}
	if into == nil {
		into = r.newObj()
		kind, apiVersion = r.kind, r.apiVersion()
	}
	switch mt := mediaType(req); mt {
	case "application/vnd.kubernetes.protobuf":
		obj, gvk, err := s.protoCodec.Decode(data, nil, into)
		if err != nil {
			if gvk != nil && gvk.Kind != "" {
				return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", gvk.Kind, gvk.Version, kind, err))
			}
			return nil, nil, unrecognizedBody(kind, err, data)
		}
		if gvk != nil && gvk.Kind != "" && gvk.Kind != kind {
			return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: no kind %q is registered for version %q", gvk.Kind, gvk.Version, kind, gvk.Kind, gvk.GroupVersion().String()))
		}
		return obj, nil, nil
	case "application/yaml", "application/x-yaml", "text/yaml":
		j, err := yaml.YAMLToJSON(data)
		if err != nil {
			return nil, nil, unrecognizedBody(kind, fmt.Errorf("error converting YAML to JSON: %w", err), data)
		}
		data = j
	case "application/json":
	default:
		return nil, nil, newUnsupportedMediaType(mt)
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(data, &tm); err != nil {
		// kube-apiserver: the serializer could not even find the kind
		return nil, nil, unrecognizedBody(kind, fmt.Errorf("couldn't get version/kind; json parse error: %w", err), data)
	}
	if tm.Kind != "" && tm.Kind != kind {
		gv, _ := schema.ParseGroupVersion(tm.APIVersion)
		if s.scheme.Recognizes(gv.WithKind(tm.Kind)) {
			return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: converting (%s.%s) to (%s): unknown conversion", tm.Kind, gv.Version, kind, gv.Version, tm.Kind, kind))
		}
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: no kind %q is registered for version %q in scheme %q", tm.Kind, gv.Version, kind, tm.Kind, tm.APIVersion, "pkg/api/legacyscheme/scheme.go:30"))
	}
	if tm.APIVersion != "" && tm.APIVersion != apiVersion {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)", tm.APIVersion, apiVersion))
	}
	warns, err := strictJSON(data, into, fv, kind, versionOf(apiVersion))
	if err != nil {
		return nil, nil, err
	}
	return into, warns, nil
}

// unrecognizedBody is kube-apiserver's 400 for a body whose kind cannot be
// read at all (its transformDecodeError without a group-version-kind).
func unrecognizedBody(kind string, err error, body []byte) error {
	return apierrors.NewBadRequest(fmt.Sprintf("the object provided is unrecognized (must be of type %s): %v (%s)", kind, err, summarizeBody(body, 30)))
}

// summarizeBody shows the start of a body: as text when it looks like JSON,
// else in hex.
func summarizeBody(data []byte, max int) string {
	switch {
	case len(data) == 0:
		return "<empty>"
	case data[0] == '{':
		if len(data) > max {
			return string(data[:max]) + " ..."
		}
		return string(data)
	default:
		if len(data) > max {
			return hex.EncodeToString(data[:max]) + " ..."
		}
		return hex.EncodeToString(data)
	}
}

func versionOf(apiVersion string) string {
	if i := strings.LastIndex(apiVersion, "/"); i >= 0 {
		return apiVersion[i+1:]
	}
	return apiVersion
}

func addWarnings(w http.ResponseWriter, warns []string) {
	for _, m := range warns {
		w.Header().Add("Warning", "299 - "+strconv.Quote(m))
	}
}

func isDryRun(r *http.Request) bool {
	for _, v := range r.URL.Query()["dryRun"] {
		if v == "All" {
			return true
		}
	}
	return false
}

// ---------- dispatch ----------

func (s *Server) serveREST(w http.ResponseWriter, req *http.Request, r *resource, ns, name, sub string) {
	ctx := req.Context()
	if r.namespaced && ns == "" && name != "" {
		writeError(w, notFoundPath(req))
		return
	}
	switch sub {
	case "":
	case "status":
		if !r.hasStatus {
			writeError(w, notFoundPath(req))
			return
		}
	case "scale":
		if !r.hasScale {
			writeError(w, notFoundPath(req))
			return
		}
		s.serveScale(w, req, r, ns, name)
		return
	case "log", "exec", "attach", "portforward", "proxy":
		if r.name != "pods" {
			writeError(w, notFoundPath(req))
			return
		}
		s.servePodStream(w, req, ns, name, sub)
		return
	case "finalize":
		if r.name != "namespaces" {
			writeError(w, notFoundPath(req))
			return
		}
	default:
		writeError(w, notFoundPath(req))
		return
	}
	switch req.Method {
	case http.MethodGet:
		if name == "" {
			if w2 := req.URL.Query().Get("watch"); w2 == "true" || w2 == "1" {
				s.serveWatch(w, req, r, ns)
				return
			}
			s.serveList(w, req, r, ns)
			return
		}
		obj, _, err := s.getObject(ctx, r, ns, name)
		if err != nil {
			writeError(w, err)
			return
		}
		s.writeObject(w, req, r, http.StatusOK, obj)
	case http.MethodPost:
		if name != "" {
			writeError(w, apierrors.NewMethodNotSupported(r.gr(), "create"))
			return
		}
		obj, warns, err := s.decodeBody(r, req, nil, "", "")
		if err != nil {
			writeError(w, err)
			return
		}
		addWarnings(w, warns)
		out, err := s.create(ctx, r, ns, obj, isDryRun(req), managerName(req))
		if err != nil {
			writeError(w, err)
			return
		}
		s.writeObject(w, req, r, http.StatusCreated, out)
	case http.MethodPut:
		if name == "" {
			writeError(w, apierrors.NewMethodNotSupported(r.gr(), "update"))
			return
		}
		obj, warns, err := s.decodeBody(r, req, nil, "", "")
		if err != nil {
			writeError(w, err)
			return
		}
		addWarnings(w, warns)
		m := obj.(metav1.Object)
		if m.GetName() != name {
			writeError(w, apierrors.NewBadRequest("the name of the object ("+m.GetName()+") does not match the name on the URL ("+name+")"))
			return
		}
		if r.namespaced && m.GetNamespace() != "" && m.GetNamespace() != ns {
			writeError(w, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request"))
			return
		}
		out, created, err := s.update(ctx, r, ns, name, sub, isDryRun(req), managerName(req), func(old runtime.Object) (runtime.Object, error) { return obj.DeepCopyObject(), nil })
		if err != nil {
			writeError(w, err)
			return
		}
		code := http.StatusOK
		if created {
			code = http.StatusCreated
		}
		s.writeObject(w, req, r, code, out)
	case http.MethodPatch:
		if name == "" {
			writeError(w, apierrors.NewMethodNotSupported(r.gr(), "patch"))
			return
		}
		s.servePatch(w, req, r, ns, name, sub)
	case http.MethodDelete:
		if name == "" {
			if r.noDeleteColl {
				writeError(w, apierrors.NewMethodNotSupported(r.gr(), "deletecollection"))
				return
			}
			s.serveDeleteCollection(w, req, r, ns)
			return
		}
		s.serveDelete(w, req, r, ns, name)
	default:
		writeError(w, apierrors.NewMethodNotSupported(r.gr(), strings.ToLower(req.Method)))
	}
}

// ---------- output ----------

// wantsTable reports whether the client asked for a meta.k8s.io Table.
func wantsTable(req *http.Request) bool {
	for _, part := range strings.Split(req.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if (mt == "application/json" || mt == "*/*") && params["as"] == "Table" && params["g"] == "meta.k8s.io" && (params["v"] == "v1" || params["v"] == "v1beta1") {
			return true
		}
		if mt == "application/json" && params["as"] == "" {
			return false
		}
	}
	return false
}

func (s *Server) writeObject(w http.ResponseWriter, req *http.Request, r *resource, code int, obj runtime.Object) {
	if req.Method == http.MethodGet && wantsTable(req) {
		writeJSON(w, code, tableFor(r, []runtime.Object{obj}, true, req.URL.Query().Get("includeObject")))
		return
	}
	s.setTypeMeta(r, obj)
	writeJSON(w, code, obj)
}

// ---------- create ----------

const genNameChars = "bcdfghjklmnpqrstvwxz2456789"

func generateName(base string) string {
	if len(base) > 58 {
		base = base[:58]
	}
	b := make([]byte, 5)
	for i := range b {
		b[i] = genNameChars[rand.IntN(len(genNameChars))]
	}
	return base + string(b)
}

func (s *Server) checkNamespace(ctx context.Context, r *resource, ns string) error {
	if !r.namespaced {
		return nil
	}
	nsr := s.reg.lookup("", "v1", "namespaces")
	obj, _, err := s.getObject(ctx, nsr, "", ns)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return apierrors.NewNotFound(nsr.gr(), ns)
		}
		return err
	}
	if obj.(*corev1.Namespace).DeletionTimestamp != nil {
		return apierrors.NewForbidden(r.gr(), "", fmt.Errorf("unable to create new content in namespace %s because it is being terminated", ns))
	}
	return nil
}

func (s *Server) create(ctx context.Context, r *resource, ns string, obj runtime.Object, dryRun bool, manager string) (runtime.Object, error) {
	m := obj.(metav1.Object)
	if r.namespaced {
		if m.GetNamespace() == "" {
			m.SetNamespace(ns)
		} else if ns != "" && m.GetNamespace() != ns {
			return nil, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
		ns = m.GetNamespace()
	} else {
		m.SetNamespace("")
	}
	if m.GetName() == "" && m.GetGenerateName() != "" {
		m.SetName(generateName(m.GetGenerateName()))
	}
	if m.GetName() == "" {
		return nil, apierrors.NewInvalid(r.gvk().GroupKind(), "", field.ErrorList{field.Required(field.NewPath("metadata", "name"), "name or generateName is required")})
	}
	if err := s.checkNamespace(ctx, r, ns); err != nil {
		return nil, err
	}
	m.SetUID(types.UID(uuid.NewString()))
	m.SetCreationTimestamp(metav1.Now().Rfc3339Copy())
	m.SetResourceVersion("")
	m.SetDeletionTimestamp(nil)
	m.SetDeletionGracePeriodSeconds(nil)
	m.SetSelfLink("")
	if hasGeneration(r) {
		m.SetGeneration(1)
	} else {
		m.SetGeneration(0)
	}
	if r.hasStatus && r.name != "namespaces" && r.name != "pods" && r.name != "services" && r.name != "nodes" {
		resetStatus(obj)
	}
	if r.defaults != nil {
		r.defaults(obj)
	}
	if manager != "" {
		obj = s.trackManagedFields(r, "", nil, obj, manager)
		m = obj.(metav1.Object)
	}
	if errs := s.validate(r, obj, nil); len(errs) > 0 {
		return nil, apierrors.NewInvalid(r.gvk().GroupKind(), m.GetName(), errs)
	}
	var release func()
	if r.name == "services" {
		var err error
		if release, err = s.allocateService(ctx, obj.(*corev1.Service), nil); err != nil {
			return nil, err
		}
		defer release()
	}
	if dryRun {
		s.setTypeMeta(r, obj)
		return obj, nil
	}
	data, err := s.encodeForStore(r, obj)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	kv, err := s.store.Create(ctx, r.key(ns, m.GetName()), data)
	if err != nil {
		return nil, storeErr(r, m.GetName(), err)
	}
	m.SetResourceVersion(strconv.FormatInt(kv.ModRevision, 10))
	s.afterCreate(ctx, r, obj)
	return obj, nil
}

func hasGeneration(r *resource) bool {
	switch r.name {
	case "deployments", "replicasets", "pods", "services", "namespaces":
		return true
	}
	return false
}

func resetStatus(obj runtime.Object) {
	v := reflect.ValueOf(obj).Elem().FieldByName("Status")
	if v.IsValid() && v.CanSet() {
		v.Set(reflect.Zero(v.Type()))
	}
}

func copyField(dst, src runtime.Object, name string) {
	d := reflect.ValueOf(dst).Elem().FieldByName(name)
	sv := reflect.ValueOf(src).Elem().FieldByName(name)
	if d.IsValid() && sv.IsValid() && d.CanSet() {
		d.Set(sv)
	}
}

func (s *Server) validate(r *resource, obj, old runtime.Object) field.ErrorList {
	errs := validateMeta(r, obj)
	if old != nil {
		errs = append(errs, apimachineryvalidation.ValidateObjectMetaAccessorUpdate(obj.(metav1.Object), old.(metav1.Object), field.NewPath("metadata"))...)
	}
	if r.validate != nil {
		errs = append(errs, r.validate(obj, old)...)
	}
	return errs
}

func (s *Server) afterCreate(ctx context.Context, r *resource, obj runtime.Object) {
	if r.name == "namespaces" {
		s.ensureDefaultServiceAccount(ctx, obj.(metav1.Object).GetName())
	}
}

// ---------- update ----------

func allowCreateOnUpdate(r *resource) bool {
	switch r.name {
	case "endpoints", "leases", "events", "endpointslices":
		return true
	}
	return false
}

// update is the guaranteed-update loop behind PUT, PATCH and the
// subresources. mutate gets a copy of the current object and returns the
// desired one; a resourceVersion it sets must match the current one.
func (s *Server) update(ctx context.Context, r *resource, ns, name, sub string, dryRun bool, manager string, mutate func(old runtime.Object) (runtime.Object, error)) (runtime.Object, bool, error) {
	key := r.key(ns, name)
	rel := func() {}
	defer func() { rel() }()
	for attempt := 0; ; attempt++ {
		rel()
		rel = func() {}
		kv, err := s.store.Get(ctx, key)
		if errors.Is(err, store.ErrNotFound) && allowCreateOnUpdate(r) && sub == "" {
			obj, err := mutate(nil)
			if err != nil {
				return nil, false, err
			}
			out, err := s.create(ctx, r, ns, obj, dryRun, manager)
			return out, err == nil, err
		}
		if err != nil {
			return nil, false, storeErr(r, name, err)
		}
		old, err := s.decodeStored(r, kv)
		if err != nil {
			return nil, false, apierrors.NewInternalError(err)
		}
		obj, err := mutate(old.DeepCopyObject())
		if err != nil {
			return nil, false, err
		}
		m, om := obj.(metav1.Object), old.(metav1.Object)
		if rv := m.GetResourceVersion(); rv != "" && rv != om.GetResourceVersion() {
			return nil, false, apierrors.NewConflict(r.gr(), name, errors.New(registryConflictMsg))
		}
		s.prepareUpdate(r, sub, obj, old)
		if manager != "" {
			obj = s.trackManagedFields(r, sub, old, obj, manager)
			m = obj.(metav1.Object)
		}
		if r.name == "services" {
			release, err := s.allocateService(ctx, obj.(*corev1.Service), old.(*corev1.Service))
			if err != nil {
				return nil, false, err
			}
			rel = release
		}
		if errs := s.validate(r, obj, old); len(errs) > 0 {
			return nil, false, apierrors.NewInvalid(r.gvk().GroupKind(), name, errs)
		}
		// finishing a deletion: the last finalizer is gone
		if m.GetDeletionTimestamp() != nil && len(m.GetFinalizers()) == 0 && (om.GetDeletionGracePeriodSeconds() == nil || *om.GetDeletionGracePeriodSeconds() == 0) {
			if dryRun {
				return obj, false, nil
			}
			if _, _, err := s.store.Delete(ctx, key, kv.ModRevision); err != nil {
				if retryConflict(ctx, err, attempt) {
					continue
				}
				return nil, false, storeErr(r, name, err)
			}
			s.afterDelete(r, obj, metav1.DeletePropagationBackground)
			return obj, false, nil
		}
		data, err := s.encodeForStore(r, obj)
		if err != nil {
			return nil, false, apierrors.NewInternalError(err)
		}
		oldData, _ := s.encodeForStore(r, old)
		if bytes.Equal(data, oldData) {
			return old, false, nil // no-op writes keep the resourceVersion
		}
		if dryRun {
			return obj, false, nil
		}
		nkv, err := s.store.Update(ctx, key, data, kv.ModRevision)
		if err != nil {
			if retryConflict(ctx, err, attempt) {
				continue
			}
			return nil, false, storeErr(r, name, err)
		}
		m.SetResourceVersion(strconv.FormatInt(nkv.ModRevision, 10))
		s.setTypeMeta(r, obj)
		return obj, false, nil
	}
}

// retryConflict reports whether a read-modify-write should be tried again:
// the store's compare-and-swap lost to a concurrent write. As in
// kube-apiserver's guaranteed update there is no attempt limit: a caller's
// resourceVersion precondition is checked against each fresh read (and
// answers 409 there), so only unconditional writes retry, until the request
// ends.
func retryConflict(ctx context.Context, err error, attempt int) bool {
	if !errors.Is(err, store.ErrConflict) || ctx.Err() != nil {
		return false
	}
	if attempt > 3 {
		time.Sleep(time.Duration(rand.IntN(1+min(attempt, 20))) * time.Millisecond) // heavy contention: spread the retries
	}
	return true
}

// prepareUpdate applies what a write may not change, defaults and the
// generation.
func (s *Server) prepareUpdate(r *resource, sub string, obj, old runtime.Object) {
	m, om := obj.(metav1.Object), old.(metav1.Object)
	switch {
	case sub == "status":
		// only status changes through /status
		st := reflect.ValueOf(obj).Elem().FieldByName("Status")
		nobj := old.DeepCopyObject()
		reflect.ValueOf(nobj).Elem().FieldByName("Status").Set(st)
		reflect.ValueOf(obj).Elem().Set(reflect.ValueOf(nobj).Elem())
	case sub == "finalize":
		fin := obj.(*corev1.Namespace).Spec.Finalizers
		nobj := old.DeepCopyObject().(*corev1.Namespace)
		nobj.Spec.Finalizers = fin
		*obj.(*corev1.Namespace) = *nobj
	case r.hasStatus && r.name != "nodes":
		copyField(obj, old, "Status")
	}
	m.SetUID(om.GetUID())
	m.SetCreationTimestamp(om.GetCreationTimestamp())
	m.SetDeletionTimestamp(om.GetDeletionTimestamp())
	m.SetDeletionGracePeriodSeconds(om.GetDeletionGracePeriodSeconds())
	m.SetNamespace(om.GetNamespace())
	m.SetName(om.GetName())
	m.SetGeneration(om.GetGeneration())
	m.SetSelfLink("")
	if m.GetManagedFields() == nil {
		m.SetManagedFields(om.GetManagedFields())
	}
	if r.defaults != nil {
		r.defaults(obj)
	}
	if hasGeneration(r) && specChanged(obj, old) {
		m.SetGeneration(om.GetGeneration() + 1)
	}
	m.SetResourceVersion(om.GetResourceVersion())
}

func specChanged(a, b runtime.Object) bool {
	sa := reflect.ValueOf(a).Elem().FieldByName("Spec")
	sb := reflect.ValueOf(b).Elem().FieldByName("Spec")
	if !sa.IsValid() || !sb.IsValid() {
		return false
	}
	return !equalJSON(sa.Interface(), sb.Interface())
}

// ---------- patch ----------

func (s *Server) servePatch(w http.ResponseWriter, req *http.Request, r *resource, ns, name, sub string) {
	patch, err := readBody(req)
	if err != nil {
		writeError(w, err)
		return
	}
	fv, err := fieldValidationOf(req)
	if err != nil {
		writeError(w, err)
		return
	}
	pt := types.PatchType(mediaType(req))
	switch pt {
	case types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType, types.ApplyYAMLPatchType:
	default:
		// checked before the object is read, as kube-apiserver does
		writeError(w, newUnsupportedPatchType(string(pt)))
		return
	}
	if pt == types.ApplyYAMLPatchType {
		s.serveApply(w, req, r, ns, name, sub, patch)
		return
	}
	var warns []string
	out, _, err := s.update(req.Context(), r, ns, name, sub, isDryRun(req), managerName(req), func(old runtime.Object) (runtime.Object, error) {
		if old == nil {
			return nil, apierrors.NewNotFound(r.gr(), name)
		}
		s.setTypeMeta(r, old)
		orig, err := json.Marshal(old)
		if err != nil {
			return nil, err
		}
		patched, err := applyPatch(pt, orig, patch, r.newObj())
		if err != nil {
			return nil, err
		}
		obj := r.newObj()
		warns, err = strictJSON(patched, obj, fv, r.kind, r.version)
		if err != nil {
			return nil, err
		}
		if obj.(metav1.Object).GetResourceVersion() == old.(metav1.Object).GetResourceVersion() {
			obj.(metav1.Object).SetResourceVersion("") // not a precondition
		}
		return obj, nil
	})
	addWarnings(w, warns)
	if err != nil {
		writeError(w, err)
		return
	}
	s.writeObject(w, req, r, http.StatusOK, out)
}

func applyPatch(pt types.PatchType, orig, patch []byte, schemaObj interface{}) (out []byte, err error) {
	defer func() {
		// the patch libraries panic on some malformed patches
		if p := recover(); p != nil {
			out, err = nil, apierrors.NewBadRequest(fmt.Sprintf("the server rejected our request due to an error in our request: %v", p))
		}
	}()
	switch pt {
	case types.StrategicMergePatchType:
		var pm map[string]interface{}
		if err := json.Unmarshal(patch, &pm); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding patch: %v", err))
		}
		out, err = strategicpatch.StrategicMergePatch(orig, patch, schemaObj)
	case types.MergePatchType:
		out, err = jsonpatch.MergePatch(orig, patch)
	case types.JSONPatchType:
		var p jsonpatch.Patch
		p, err = jsonpatch.DecodePatch(patch)
		if err == nil {
			out, err = p.Apply(orig)
		}
	case types.ApplyYAMLPatchType, types.ApplyCBORPatchType:
		return nil, newUnsupportedMediaType(string(pt))
	default:
		return nil, newUnsupportedMediaType(string(pt))
	}
	if err != nil {
		var se apierrors.APIStatus
		if errors.As(err, &se) {
			return nil, err
		}
		return nil, apierrors.NewBadRequest(err.Error())
	}
	return out, nil
}

// ---------- scale ----------

func scaleOf(r *resource, obj runtime.Object) *autoscalingv1.Scale {
	sc := &autoscalingv1.Scale{TypeMeta: metav1.TypeMeta{Kind: "Scale", APIVersion: "autoscaling/v1"}}
	m := obj.(metav1.Object)
	sc.Name, sc.Namespace, sc.UID, sc.ResourceVersion, sc.CreationTimestamp = m.GetName(), m.GetNamespace(), m.GetUID(), m.GetResourceVersion(), m.GetCreationTimestamp()
	switch o := obj.(type) {
	case *appsv1.Deployment:
		if o.Spec.Replicas != nil {
			sc.Spec.Replicas = *o.Spec.Replicas
		}
		sc.Status.Replicas = o.Status.Replicas
		sc.Status.Selector = selectorString(o.Spec.Selector)
	case *appsv1.ReplicaSet:
		if o.Spec.Replicas != nil {
			sc.Spec.Replicas = *o.Spec.Replicas
		}
		sc.Status.Replicas = o.Status.Replicas
		sc.Status.Selector = selectorString(o.Spec.Selector)
	}
	return sc
}

func setReplicas(obj runtime.Object, n int32) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		o.Spec.Replicas = &n
	case *appsv1.ReplicaSet:
		o.Spec.Replicas = &n
	}
}

func (s *Server) serveScale(w http.ResponseWriter, req *http.Request, r *resource, ns, name string) {
	ctx := req.Context()
	switch req.Method {
	case http.MethodGet:
		obj, _, err := s.getObject(ctx, r, ns, name)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, scaleOf(r, obj))
	case http.MethodPut, http.MethodPatch:
		var body []byte
		var desired *autoscalingv1.Scale
		if req.Method == http.MethodPut {
			obj, warns, err := s.decodeBody(r, req, &autoscalingv1.Scale{}, "Scale", "autoscaling/v1")
			if err != nil {
				writeError(w, err)
				return
			}
			addWarnings(w, warns)
			desired = obj.(*autoscalingv1.Scale)
		} else {
			var err error
			if body, err = readBody(req); err != nil {
				writeError(w, err)
				return
			}
		}
		pt := types.PatchType(mediaType(req))
		out, _, err := s.update(ctx, r, ns, name, "", isDryRun(req), "", func(old runtime.Object) (runtime.Object, error) {
			if old == nil {
				return nil, apierrors.NewNotFound(r.gr(), name)
			}
			sc := scaleOf(r, old)
			want := desired
			if want == nil {
				orig, _ := json.Marshal(sc)
				patched, err := applyPatch(pt, orig, body, &autoscalingv1.Scale{})
				if err != nil {
					return nil, err
				}
				want = &autoscalingv1.Scale{}
				if err := json.Unmarshal(patched, want); err != nil {
					return nil, apierrors.NewBadRequest(err.Error())
				}
			}
			if want.Spec.Replicas < 0 {
				return nil, apierrors.NewInvalid(schema.GroupKind{Group: "autoscaling", Kind: "Scale"}, name, field.ErrorList{field.Invalid(field.NewPath("spec", "replicas"), want.Spec.Replicas, "must be greater than or equal to 0")})
			}
			if want.ResourceVersion != "" && want.ResourceVersion != sc.ResourceVersion {
				return nil, apierrors.NewConflict(r.gr(), name, errors.New(registryConflictMsg))
			}
			setReplicas(old, want.Spec.Replicas)
			old.(metav1.Object).SetResourceVersion("")
			return old, nil
		})
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, scaleOf(r, out))
	default:
		writeError(w, apierrors.NewMethodNotSupported(r.gr(), strings.ToLower(req.Method)))
	}
}

// ---------- delete ----------

func (s *Server) deleteOptions(req *http.Request) (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	data, err := readBody(req)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(data)) > 0 {
		if mediaType(req) == "application/vnd.kubernetes.protobuf" {
			if _, _, err := s.protoCodec.Decode(data, nil, opts); err != nil {
				return nil, apierrors.NewBadRequest(err.Error())
			}
		} else if err := json.Unmarshal(data, opts); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding DeleteOptions: %v", err))
		}
	}
	q := req.URL.Query()
	if v := q.Get("propagationPolicy"); v != "" {
		p := metav1.DeletionPropagation(v)
		opts.PropagationPolicy = &p
	}
	if v := q.Get("gracePeriodSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, apierrors.NewBadRequest("invalid gracePeriodSeconds")
		}
		opts.GracePeriodSeconds = &n
	}
	if v := q.Get("orphanDependents"); v != "" {
		b := v == "true"
		opts.OrphanDependents = &b
	}
	if isDryRun(req) {
		opts.DryRun = []string{"All"}
	}
	return opts, nil
}

func propagationOf(opts *metav1.DeleteOptions) (metav1.DeletionPropagation, error) {
	if opts.PropagationPolicy != nil {
		switch *opts.PropagationPolicy {
		case metav1.DeletePropagationBackground, metav1.DeletePropagationForeground, metav1.DeletePropagationOrphan:
			return *opts.PropagationPolicy, nil
		}
		return "", apierrors.NewBadRequest(fmt.Sprintf("propagationPolicy: Unsupported value: %q: supported values: \"Foreground\", \"Background\", \"Orphan\"", *opts.PropagationPolicy))
	}
	if opts.OrphanDependents != nil && *opts.OrphanDependents {
		return metav1.DeletePropagationOrphan, nil
	}
	return metav1.DeletePropagationBackground, nil
}

func (s *Server) serveDelete(w http.ResponseWriter, req *http.Request, r *resource, ns, name string) {
	opts, err := s.deleteOptions(req)
	if err != nil {
		writeError(w, err)
		return
	}
	obj, finished, err := s.deleteObject(req.Context(), r, ns, name, opts)
	if err != nil {
		writeError(w, err)
		return
	}
	if !finished || r.name == "pods" { // pods answer with the object, as kube-apiserver does
		s.writeObject(w, req, r, http.StatusOK, obj)
		return
	}
	m := obj.(metav1.Object)
	writeJSON(w, http.StatusOK, &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess,
		Details: &metav1.StatusDetails{Name: name, Group: r.group, Kind: r.name, UID: m.GetUID()}})
}

var protectedNamespaces = map[string]bool{"default": true, "kube-system": true, "kube-public": true}

// deleteObject deletes (or, with finalizers, marks for deletion) one
// object. finished is false when the object still exists.
func (s *Server) deleteObject(ctx context.Context, r *resource, ns, name string, opts *metav1.DeleteOptions) (runtime.Object, bool, error) {
	prop, err := propagationOf(opts)
	if err != nil {
		return nil, false, err
	}
	if r.name == "namespaces" && protectedNamespaces[name] {
		return nil, false, apierrors.NewForbidden(r.gr(), name, errors.New("this namespace may not be deleted"))
	}
	dryRun := len(opts.DryRun) > 0
	for attempt := 0; ; attempt++ {
		obj, kv, err := s.getObject(ctx, r, ns, name)
		if err != nil {
			return nil, false, err
		}
		m := obj.(metav1.Object)
		if pc := opts.Preconditions; pc != nil {
			if pc.UID != nil && *pc.UID != m.GetUID() {
				return nil, false, apierrors.NewConflict(r.gr(), name, fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *pc.UID, m.GetUID()))
			}
			if pc.ResourceVersion != nil && *pc.ResourceVersion != m.GetResourceVersion() {
				return nil, false, apierrors.NewConflict(r.gr(), name, fmt.Errorf("Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *pc.ResourceVersion, m.GetResourceVersion()))
			}
		}
		if r.name == "namespaces" {
			if dryRun {
				return obj, true, nil
			}
			return s.deleteNamespace(ctx, r, obj, kv)
		}
		graceful, pending := beforeDelete(r, obj, opts)
		if pending {
			return obj, false, nil // a graceful deletion is already under way
		}
		fins, finChanged := gcFinalizers(m, opts)
		if graceful || finChanged || len(fins) > 0 {
			m.SetFinalizers(fins)
			if !graceful && (m.GetDeletionTimestamp() == nil || len(fins) > 0) {
				if m.GetDeletionTimestamp() == nil {
					now := metav1.Now().Rfc3339Copy()
					m.SetDeletionTimestamp(&now)
					if g := m.GetGeneration(); g > 0 {
						m.SetGeneration(g + 1)
					}
				}
				m.SetDeletionGracePeriodSeconds(ptr(int64(0)))
			}
			if graceful || len(fins) > 0 {
				if dryRun {
					return obj, false, nil
				}
				data, _ := s.encodeForStore(r, obj)
				nkv, err := s.store.Update(ctx, kv.Key, data, kv.ModRevision)
				if err != nil {
					if retryConflict(ctx, err, attempt) {
						continue
					}
					return nil, false, storeErr(r, name, err)
				}
				m.SetResourceVersion(strconv.FormatInt(nkv.ModRevision, 10))
				if len(fins) > 0 {
					s.kickGC()
				}
				return obj, false, nil
			}
		}
		if dryRun {
			return obj, true, nil
		}
		if _, _, err := s.store.Delete(ctx, kv.Key, kv.ModRevision); err != nil {
			if retryConflict(ctx, err, attempt) {
				continue
			}
			return nil, false, storeErr(r, name, err)
		}
		s.afterDelete(r, obj, prop)
		return obj, true, nil
	}
}

// afterDelete lets the garbage collector handle the dependents.
func (s *Server) afterDelete(r *resource, obj runtime.Object, prop metav1.DeletionPropagation) {
	s.kickGC()
}

// deleteNamespace removes everything in the namespace, then the namespace.
func (s *Server) deleteNamespace(ctx context.Context, r *resource, obj runtime.Object, kv store.KeyValue) (runtime.Object, bool, error) {
	nsObj := obj.(*corev1.Namespace)
	if nsObj.DeletionTimestamp == nil {
		now := metav1.Now().Rfc3339Copy()
		nsObj.DeletionTimestamp = &now
		nsObj.Status.Phase = corev1.NamespaceTerminating
		data, _ := s.encodeForStore(r, obj)
		nkv, err := s.store.Update(ctx, kv.Key, data, kv.ModRevision)
		if err != nil {
			return nil, false, storeErr(r, nsObj.Name, err)
		}
		nsObj.ResourceVersion = strconv.FormatInt(nkv.ModRevision, 10)
	}
	name := nsObj.Name
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		for _, rr := range s.reg.all {
			if !rr.namespaced {
				continue
			}
			res, err := s.store.List(ctx, rr.listPrefix(name), store.ListOptions{})
			if err != nil {
				continue
			}
			for _, kv := range res.KVs {
				s.store.Delete(ctx, kv.Key, 0)
			}
		}
		s.store.Delete(ctx, r.key("", name), 0)
	}()
	return obj, false, nil
}

func (s *Server) serveDeleteCollection(w http.ResponseWriter, req *http.Request, r *resource, ns string) {
	opts, err := s.deleteOptions(req)
	if err != nil {
		writeError(w, err)
		return
	}
	sel, err := parseSelectors(req, r)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx := req.Context()
	res, err := s.store.List(ctx, r.listPrefix(ns), store.ListOptions{})
	if err != nil {
		writeError(w, storeErr(r, "", err))
		return
	}
	var deleted []runtime.Object
	for _, kv := range res.KVs {
		obj, err := s.decodeStored(r, kv)
		if err != nil || !sel.matches(r, obj) {
			continue
		}
		m := obj.(metav1.Object)
		if r.name == "namespaces" && protectedNamespaces[m.GetName()] {
			continue
		}
		if out, _, err := s.deleteObject(ctx, r, m.GetNamespace(), m.GetName(), opts); err == nil {
			deleted = append(deleted, out)
		} else if !apierrors.IsNotFound(err) {
			writeError(w, err)
			return
		}
	}
	list, err := s.buildList(r, deleted, res.Revision, "")
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// ---------- list ----------

type selectors struct {
	label labels.Selector
	field fields.Selector
}

func parseSelectors(req *http.Request, r *resource) (*selectors, error) {
	q := req.URL.Query()
	sel := &selectors{label: labels.Everything(), field: fields.Everything()}
	if v := q.Get("labelSelector"); v != "" {
		ls, err := labels.Parse(v)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("unable to parse requirement: %v", err))
		}
		sel.label = ls
	}
	if v := q.Get("fieldSelector"); v != "" {
		fs, err := fields.ParseSelector(v)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		known := fieldSetOf(r, r.newObj())
		for _, req := range fs.Requirements() {
			if _, ok := known[req.Field]; !ok {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", req.Field))
			}
		}
		sel.field = fs
	}
	return sel, nil
}

func fieldSetOf(r *resource, obj runtime.Object) fields.Set {
	m := obj.(metav1.Object)
	set := fields.Set{"metadata.name": m.GetName()}
	if r.namespaced {
		set["metadata.namespace"] = m.GetNamespace()
	}
	if r.fieldSet != nil {
		r.fieldSet(obj, set)
	}
	return set
}

func (sel *selectors) matches(r *resource, obj runtime.Object) bool {
	if sel == nil {
		return true
	}
	m := obj.(metav1.Object)
	if !sel.label.Empty() && !sel.label.Matches(labels.Set(m.GetLabels())) {
		return false
	}
	if !sel.field.Empty() && !sel.field.Matches(fieldSetOf(r, obj)) {
		return false
	}
	return true
}

type continueToken struct {
	RV    int64  `json:"rv"`
	Start string `json:"start"`
}

func encodeContinue(rv int64, lastKey string) string {
	b, _ := json.Marshal(continueToken{RV: rv, Start: lastKey})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinue(s string) (*continueToken, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, apierrors.NewBadRequest("continue key is not valid: " + err.Error())
	}
	var t continueToken
	if err := json.Unmarshal(b, &t); err != nil || t.RV <= 0 {
		return nil, apierrors.NewBadRequest("continue key is not valid")
	}
	return &t, nil
}

// listObjects reads a (possibly paged) list honouring resourceVersion
// semantics and selectors.
func (s *Server) listObjects(ctx context.Context, req *http.Request, r *resource, ns string, sel *selectors) ([]runtime.Object, int64, string, error) {
	q := req.URL.Query()
	limit, _ := strconv.ParseInt(q.Get("limit"), 10, 64)
	opts := store.ListOptions{}
	if c := q.Get("continue"); c != "" {
		tok, err := decodeContinue(c)
		if err != nil {
			return nil, 0, "", err
		}
		opts.Revision, opts.StartAfter = tok.RV, tok.Start
	} else if rv := q.Get("resourceVersion"); rv != "" && rv != "0" {
		n, err := strconv.ParseInt(rv, 10, 64)
		if err != nil {
			return nil, 0, "", apierrors.NewBadRequest(fmt.Sprintf("invalid resource version: %s", rv))
		}
		if q.Get("resourceVersionMatch") == "Exact" {
			opts.Revision = n
		} else if cur, err := s.store.CurrentRevision(ctx); err == nil && n > cur {
			return nil, 0, "", apierrors.NewTimeoutError(fmt.Sprintf("Too large resource version: %d, current: %d", n, cur), 1)
		}
	}
	prefix := r.listPrefix(ns)
	var out []runtime.Object
	var rev int64
	for {
		pageLimit := int64(0)
		if limit > 0 {
			pageLimit = limit - int64(len(out)) + 1 // one extra tells if more remain
			if pageLimit < 50 {
				pageLimit = 50
			}
		}
		opts.Limit = pageLimit
		res, err := s.store.List(ctx, prefix, opts)
		if err != nil {
			if errors.Is(err, store.ErrCompacted) && q.Get("continue") != "" {
				return nil, 0, "", apierrors.NewResourceExpired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
			}
			return nil, 0, "", storeErr(r, "", err)
		}
		rev = res.Revision
		opts.Revision = rev
		for i, kv := range res.KVs {
			obj, err := s.decodeStored(r, kv)
			if err != nil {
				return nil, 0, "", apierrors.NewInternalError(err)
			}
			if !sel.matches(r, obj) {
				continue
			}
			if limit > 0 && int64(len(out)) == limit {
				// more remain: continue after the last returned key
				_ = i
				last := out[len(out)-1].(metav1.Object)
				return out, rev, encodeContinue(rev, r.key(last.GetNamespace(), last.GetName())), nil
			}
			out = append(out, obj)
		}
		if !res.More {
			return out, rev, "", nil
		}
		opts.StartAfter = res.KVs[len(res.KVs)-1].Key
	}
}

func (s *Server) buildList(r *resource, objs []runtime.Object, rev int64, cont string) (runtime.Object, error) {
	list := r.newList()
	items := reflect.ValueOf(list).Elem().FieldByName("Items")
	slice := reflect.MakeSlice(items.Type(), 0, len(objs))
	for _, o := range objs {
		slice = reflect.Append(slice, reflect.ValueOf(o).Elem())
	}
	items.Set(slice)
	lm := list.(metav1.ListInterface)
	lm.SetResourceVersion(strconv.FormatInt(rev, 10))
	lm.SetContinue(cont)
	list.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{Group: r.group, Version: r.version, Kind: r.listKind})
	return list, nil
}

func (s *Server) serveList(w http.ResponseWriter, req *http.Request, r *resource, ns string) {
	sel, err := parseSelectors(req, r)
	if err != nil {
		writeError(w, err)
		return
	}
	objs, rev, cont, err := s.listObjects(req.Context(), req, r, ns, sel)
	if err != nil {
		writeError(w, err)
		return
	}
	if wantsTable(req) {
		t := tableFor(r, objs, true, req.URL.Query().Get("includeObject"))
		t.ResourceVersion = strconv.FormatInt(rev, 10)
		t.Continue = cont
		writeJSON(w, http.StatusOK, t)
		return
	}
	list, err := s.buildList(r, objs, rev, cont)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// ---------- seed ----------

func (s *Server) seed(ctx context.Context) error {
	nsr := s.reg.lookup("", "v1", "namespaces")
	for _, name := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		if _, err := s.store.Get(ctx, nsr.key("", name)); err == nil {
			s.ensureDefaultServiceAccount(ctx, name)
			continue
		}
		if _, err := s.create(ctx, nsr, "", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, false, ""); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	svc := s.reg.lookup("", "v1", "services")
	if _, err := s.store.Get(ctx, svc.key("default", "kubernetes")); errors.Is(err, store.ErrNotFound) {
		port := int32(6443)
		if ta, ok := s.listener.Addr().(interface{ String() string }); ok {
			if i := strings.LastIndex(ta.String(), ":"); i >= 0 {
				if n, err := strconv.Atoi(ta.String()[i+1:]); err == nil {
					port = int32(n)
				}
			}
		}
		k := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default", Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"}},
			Spec: corev1.ServiceSpec{ClusterIP: s.alloc.first().String(), Ports: []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intOrStr(port)}}}}
		if _, err := s.create(ctx, svc, "default", k, false, ""); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return nil
}

func (s *Server) ensureDefaultServiceAccount(ctx context.Context, ns string) {
	sa := s.reg.lookup("", "v1", "serviceaccounts")
	if _, err := s.store.Get(ctx, sa.key(ns, "default")); err == nil {
		return
	}
	s.create(ctx, sa, ns, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}}, false, "")
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func newUnsupportedMediaType(mt string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType,
		Reason: metav1.StatusReasonUnsupportedMediaType, Message: fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got %q)", mt),
		Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: metav1.CauseTypeUnexpectedServerResponse, Message: mt}}}}}
}

func newUnsupportedPatchType(mt string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType,
		Reason: metav1.StatusReasonUnsupportedMediaType, Message: "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json",
		Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: metav1.CauseTypeUnexpectedServerResponse, Message: mt}}}}}
}
