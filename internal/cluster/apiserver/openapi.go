package apiserver

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"unicode"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// openAPI generates OpenAPI v2 and v3 documents from the Go types of the
// served resources by reflection (k8s.io/api carries field descriptions in
// its SwaggerDoc methods and patch strategies in struct tags).
type openAPI struct {
	reg  *registry
	once sync.Once
	err  error

	v3docs  map[string][]byte // "apis/apps/v1" -> document
	v3hash  map[string]string
	v3index []byte
	v2json  []byte
	v2proto []byte
	v2hash  string
}

func newOpenAPI(reg *registry) *openAPI { return &openAPI{reg: reg} }

type jsonObj = map[string]interface{}

// schemaGen walks Go types into named schemas.
type schemaGen struct {
	refPrefix string // "#/components/schemas/" or "#/definitions/"
	v3        bool
	defs      map[string]jsonObj
	gvks      map[string][]jsonObj
}

func defName(t reflect.Type) string {
	p := t.PkgPath()
	parts := strings.Split(p, "/")
	host := strings.Split(parts[0], ".")
	for i, j := 0, len(host)-1; i < j; i, j = i+1, j-1 {
		host[i], host[j] = host[j], host[i]
	}
	segs := append(host, parts[1:]...)
	for i := range segs {
		segs[i] = strings.ReplaceAll(segs[i], "-", "_")
	}
	return strings.Join(segs, ".") + "." + t.Name()
}

type openAPITyper interface{ OpenAPISchemaType() []string }
type openAPIFormatter interface{ OpenAPISchemaFormat() string }
type swaggerDoc interface{ SwaggerDoc() map[string]string }

func (g *schemaGen) ref(name, desc string) jsonObj {
	r := jsonObj{"$ref": g.refPrefix + name}
	if desc == "" {
		return r
	}
	if g.v3 {
		return jsonObj{"allOf": []interface{}{r}, "description": desc}
	}
	r["description"] = desc
	return r
}

// schemaFor returns the inline schema of a field of type t.
func (g *schemaGen) schemaFor(t reflect.Type, desc string) jsonObj {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Name() != "" && t.PkgPath() != "" && (t.Kind() == reflect.Struct || isSpecial(t)) {
		name := defName(t)
		g.define(t, name)
		return g.ref(name, desc)
	}
	s := jsonObj{}
	if desc != "" {
		s["description"] = desc
	}
	switch t.Kind() {
	case reflect.String:
		s["type"] = "string"
	case reflect.Bool:
		s["type"] = "boolean"
	case reflect.Int32, reflect.Uint32, reflect.Int16, reflect.Uint16, reflect.Int8, reflect.Uint8:
		s["type"], s["format"] = "integer", "int32"
	case reflect.Int, reflect.Int64, reflect.Uint64, reflect.Uint:
		s["type"], s["format"] = "integer", "int64"
	case reflect.Float32, reflect.Float64:
		s["type"], s["format"] = "number", "double"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			s["type"], s["format"] = "string", "byte"
			break
		}
		s["type"] = "array"
		s["items"] = g.schemaFor(t.Elem(), "")
	case reflect.Map:
		s["type"] = "object"
		s["additionalProperties"] = g.schemaFor(t.Elem(), "")
	case reflect.Interface:
		s["type"] = "object"
	case reflect.Struct:
		s["type"] = "object"
	}
	return s
}

func isSpecial(t reflect.Type) bool {
	_, ok := reflect.New(t).Interface().(openAPITyper)
	return ok
}

// define adds the named schema of t (once).
func (g *schemaGen) define(t reflect.Type, name string) {
	if _, ok := g.defs[name]; ok {
		return
	}
	s := jsonObj{}
	g.defs[name] = s
	var docs map[string]string
	if d, ok := reflect.New(t).Elem().Interface().(swaggerDoc); ok {
		docs = d.SwaggerDoc()
	} else if d, ok := reflect.New(t).Interface().(swaggerDoc); ok {
		docs = d.SwaggerDoc()
	}
	if docs[""] != "" {
		s["description"] = docs[""]
	}
	if ty, ok := reflect.New(t).Interface().(openAPITyper); ok {
		types := ty.OpenAPISchemaType()
		format := ""
		if f, ok := reflect.New(t).Interface().(openAPIFormatter); ok {
			format = f.OpenAPISchemaFormat()
		}
		if format == "int-or-string" {
			s["x-kubernetes-int-or-string"] = true
			if g.v3 {
				s["anyOf"] = []interface{}{jsonObj{"type": "integer"}, jsonObj{"type": "string"}}
			} else {
				s["type"], s["format"] = "string", "int-or-string"
			}
			return
		}
		if len(types) > 0 {
			s["type"] = types[0]
		}
		if format != "" {
			s["format"] = format
		}
		return
	}
	switch name {
	case "io.k8s.apimachinery.pkg.runtime.RawExtension", "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1":
		s["type"] = "object"
		return
	case "io.k8s.apimachinery.pkg.api.resource.Quantity":
		s["type"] = "string"
		return
	}
	props := jsonObj{}
	g.fields(t, props, docs)
	s["type"] = "object"
	if len(props) > 0 {
		s["properties"] = props
	}
	if gv, ok := g.gvks[name]; ok {
		s["x-kubernetes-group-version-kind"] = gv
	}
}

func (g *schemaGen) fields(t reflect.Type, props jsonObj, docs map[string]string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && (name == "" || strings.Contains(opts, "inline")) {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			var sub map[string]string
			if d, ok := reflect.New(ft).Elem().Interface().(swaggerDoc); ok {
				sub = d.SwaggerDoc()
			}
			g.fields(ft, props, sub)
			continue
		}
		if name == "" {
			name = lowerFirst(f.Name)
		}
		p := g.schemaFor(f.Type, docs[name])
		if ps := f.Tag.Get("patchStrategy"); ps != "" {
			p["x-kubernetes-patch-strategy"] = ps
		}
		if mk := f.Tag.Get("patchMergeKey"); mk != "" {
			p["x-kubernetes-patch-merge-key"] = mk
		}
		props[name] = p
	}
}

func lowerFirst(s string) string {
	r := []rune(s)
	r[0] = unicode.ToLower(r[0])
	return string(r)
}

// ---------- documents ----------

func gvkExt(g schema.GroupVersionKind) jsonObj {
	return jsonObj{"group": g.Group, "version": g.Version, "kind": g.Kind}
}

func opID(verb string, r *resource, namespaced bool, suffix string) string {
	gv := ""
	if r.group == "" {
		gv = "Core" + upperFirst(r.version)
	} else {
		g := strings.Split(r.group, ".")[0]
		gv = upperFirst(g) + upperFirst(r.version)
	}
	ns := ""
	if namespaced {
		ns = "Namespaced"
	}
	return verb + gv + ns + r.kind + suffix
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (o *openAPI) build() {
	o.v3docs, o.v3hash = map[string][]byte{}, map[string]string{}
	index := jsonObj{}
	allV2Paths := jsonObj{}
	v2gen := o.newGen(false)
	for _, gv := range o.reg.groupVersions() {
		gen := o.newGen(true)
		paths := jsonObj{}
		for _, r := range o.reg.all {
			if r.group != gv.Group || r.version != gv.Version {
				continue
			}
			gen.define(reflect.TypeOf(r.newObj()).Elem(), defName(reflect.TypeOf(r.newObj()).Elem()))
			gen.define(reflect.TypeOf(r.newList()).Elem(), defName(reflect.TypeOf(r.newList()).Elem()))
			v2gen.define(reflect.TypeOf(r.newObj()).Elem(), defName(reflect.TypeOf(r.newObj()).Elem()))
			v2gen.define(reflect.TypeOf(r.newList()).Elem(), defName(reflect.TypeOf(r.newList()).Elem()))
			for p, item := range o.paths(r, true) {
				paths[p] = item
			}
			for p, item := range o.paths(r, false) {
				allV2Paths[p] = item
			}
		}
		for _, t := range []reflect.Type{reflect.TypeOf(metav1.Status{}), reflect.TypeOf(metav1.DeleteOptions{}), reflect.TypeOf(metav1.WatchEvent{}),
			reflect.TypeOf(metav1.Patch{}), reflect.TypeOf(autoscalingv1.Scale{})} {
			gen.define(t, defName(t))
			v2gen.define(t, defName(t))
		}
		doc := jsonObj{
			"openapi":    "3.0.0",
			"info":       jsonObj{"title": "Kubernetes", "version": Version.GitVersion},
			"paths":      paths,
			"components": jsonObj{"schemas": gen.defs},
		}
		data, _ := json.Marshal(doc)
		key := "api/" + gv.Version
		if gv.Group != "" {
			key = "apis/" + gv.Group + "/" + gv.Version
		}
		sum := sha512.Sum512(data)
		h := strings.ToUpper(hex.EncodeToString(sum[:]))
		o.v3docs[key], o.v3hash[key] = data, h
		index[key] = jsonObj{"serverRelativeURL": "/openapi/v3/" + key + "?hash=" + h}
	}
	o.v3index, _ = json.Marshal(jsonObj{"paths": index})
	v2 := jsonObj{
		"swagger":     "2.0",
		"info":        jsonObj{"title": "Kubernetes", "version": Version.GitVersion},
		"paths":       allV2Paths,
		"definitions": v2gen.defs,
		"securityDefinitions": jsonObj{"BearerToken": jsonObj{"type": "apiKey", "name": "authorization", "in": "header",
			"description": "Bearer Token authentication"}},
		"security": []interface{}{jsonObj{"BearerToken": []interface{}{}}},
	}
	o.v2json, _ = json.Marshal(v2)
	sum := sha512.Sum512(o.v2json)
	o.v2hash = strings.ToUpper(hex.EncodeToString(sum[:]))
	doc, err := openapi_v2.ParseDocument(o.v2json)
	if err != nil {
		o.err = fmt.Errorf("openapi v2: %w", err)
		return
	}
	o.v2proto, err = proto.Marshal(doc)
	if err != nil {
		o.err = err
	}
}

func (o *openAPI) newGen(v3 bool) *schemaGen {
	g := &schemaGen{v3: v3, defs: map[string]jsonObj{}, gvks: map[string][]jsonObj{}, refPrefix: "#/definitions/"}
	if v3 {
		g.refPrefix = "#/components/schemas/"
	}
	for _, r := range o.reg.all {
		g.gvks[defName(reflect.TypeOf(r.newObj()).Elem())] = []jsonObj{gvkExt(r.gvk())}
		g.gvks[defName(reflect.TypeOf(r.newList()).Elem())] = []jsonObj{gvkExt(schema.GroupVersionKind{Group: r.group, Version: r.version, Kind: r.listKind})}
	}
	var metaGVKs = func(kind string) []jsonObj {
		var out []jsonObj
		seen := map[string]bool{}
		for _, gv := range append([]schema.GroupVersion{{Version: "v1"}}, o.reg.groupVersions()...) {
			if seen[gv.String()] {
				continue
			}
			seen[gv.String()] = true
			out = append(out, gvkExt(gv.WithKind(kind)))
		}
		return out
	}
	g.gvks["io.k8s.apimachinery.pkg.apis.meta.v1.Status"] = []jsonObj{gvkExt(schema.GroupVersionKind{Version: "v1", Kind: "Status"})}
	g.gvks["io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"] = metaGVKs("DeleteOptions")
	g.gvks["io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent"] = metaGVKs("WatchEvent")
	g.gvks["io.k8s.api.autoscaling.v1.Scale"] = []jsonObj{gvkExt(schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"})}
	return g
}

var patchTypes = []string{"application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json", "application/apply-patch+yaml"}

func qparam(name, typ, desc string, v3 bool) jsonObj {
	p := jsonObj{"name": name, "in": "query", "description": desc, "uniqueItems": true}
	if v3 {
		p["schema"] = jsonObj{"type": typ, "uniqueItems": true}
	} else {
		p["type"] = typ
	}
	return p
}

// paths returns the path items of r (v3 or v2 form).
func (o *openAPI) paths(r *resource, v3 bool) jsonObj {
	prefix := "#/definitions/"
	if v3 {
		prefix = "#/components/schemas/"
	}
	ref := func(t reflect.Type) jsonObj { return jsonObj{"$ref": prefix + defName(t)} }
	objRef := ref(reflect.TypeOf(r.newObj()).Elem())
	listRef := ref(reflect.TypeOf(r.newList()).Elem())
	base := "/api/" + r.version
	if r.group != "" {
		base = "/apis/" + r.group + "/" + r.version
	}
	coll := base + "/" + r.name
	if r.namespaced {
		coll = base + "/namespaces/{namespace}/" + r.name
	}
	gvk := gvkExt(r.gvk())
	fieldValidation := qparam("fieldValidation", "string", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict", v3)
	dryRun := qparam("dryRun", "string", "When present, indicates that modifications should not be persisted.", v3)
	fieldManager := qparam("fieldManager", "string", "fieldManager is a name associated with the actor or entity that is making these changes.", v3)
	force := qparam("force", "boolean", "Force is going to \"force\" Apply requests.", v3)
	response := func(schema jsonObj, codes ...string) jsonObj {
		resp := jsonObj{}
		for _, c := range codes {
			if v3 {
				resp[c] = jsonObj{"description": "OK", "content": jsonObj{"application/json": jsonObj{"schema": schema}, "application/yaml": jsonObj{"schema": schema}, "application/vnd.kubernetes.protobuf": jsonObj{"schema": schema}}}
			} else {
				resp[c] = jsonObj{"description": "OK", "schema": schema}
			}
		}
		resp["401"] = jsonObj{"description": "Unauthorized"}
		return resp
	}
	op := func(verb, action string, suffix string, namespaced bool, schema jsonObj, params []interface{}, body jsonObj, bodyTypes []string, codes ...string) jsonObj {
		o := jsonObj{
			"operationId":                     opID(verb, r, namespaced, suffix),
			"description":                     verb + " " + r.kind,
			"x-kubernetes-action":             action,
			"x-kubernetes-group-version-kind": gvk,
			"responses":                       response(schema, codes...),
			"tags":                            []string{strings.ReplaceAll(r.group, ".", "") + "_" + r.version},
		}
		if body != nil {
			if v3 {
				content := jsonObj{}
				for _, bt := range bodyTypes {
					content[bt] = jsonObj{"schema": body}
				}
				o["requestBody"] = jsonObj{"required": true, "content": content}
			} else {
				params = append(params, jsonObj{"name": "body", "in": "body", "required": true, "schema": body})
				o["consumes"] = bodyTypes
			}
		}
		if params != nil {
			o["parameters"] = params
		}
		if !v3 {
			o["produces"] = []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
			o["schemes"] = []string{"https"}
		}
		return o
	}
	nsParam := func(ps []interface{}) []interface{} {
		if !r.namespaced {
			return ps
		}
		p := jsonObj{"name": "namespace", "in": "path", "required": true, "description": "object name and auth scope, such as for teams and projects"}
		if v3 {
			p["schema"] = jsonObj{"type": "string", "uniqueItems": true}
		} else {
			p["type"] = "string"
		}
		return append([]interface{}{p}, ps...)
	}
	nameParam := func(ps []interface{}) []interface{} {
		p := jsonObj{"name": "name", "in": "path", "required": true, "description": "name of the " + r.kind}
		if v3 {
			p["schema"] = jsonObj{"type": "string", "uniqueItems": true}
		} else {
			p["type"] = "string"
		}
		return append(ps, p)
	}
	patchRef := ref(reflect.TypeOf(metav1.Patch{}))
	status := ref(reflect.TypeOf(metav1.Status{}))
	writeTypes := []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
	ns := r.namespaced
	out := jsonObj{}
	collItem := jsonObj{
		"get":        op("list", "list", "", ns, listRef, nil, nil, nil, "200"),
		"post":       op("create", "post", "", ns, objRef, []interface{}{dryRun, fieldManager, fieldValidation}, objRef, writeTypes, "200", "201", "202"),
		"parameters": nsParam(nil),
	}
	if !r.noDeleteColl {
		collItem["delete"] = op("deletecollection", "deletecollection", "", ns, status, nil, ref(reflect.TypeOf(metav1.DeleteOptions{})), writeTypes, "200")
	}
	out[coll] = collItem
	item := func(suffix string, schema jsonObj, actionSuffix string) jsonObj {
		it := jsonObj{
			"get":        op("read", "get", actionSuffix, ns, schema, nil, nil, nil, "200"),
			"put":        op("replace", "put", actionSuffix, ns, schema, []interface{}{dryRun, fieldManager, fieldValidation}, schema, writeTypes, "200", "201"),
			"patch":      op("patch", "patch", actionSuffix, ns, schema, []interface{}{dryRun, fieldManager, fieldValidation, force}, patchRef, patchTypes, "200", "201"),
			"parameters": nameParam(nsParam(nil)),
		}
		if suffix == "" {
			it["delete"] = op("delete", "delete", "", ns, status, []interface{}{dryRun}, ref(reflect.TypeOf(metav1.DeleteOptions{})), writeTypes, "200", "202")
		}
		return it
	}
	out[coll+"/{name}"] = item("", objRef, "")
	if r.hasStatus {
		out[coll+"/{name}/status"] = item("status", objRef, "Status")
	}
	if r.hasScale {
		sc := item("scale", ref(reflect.TypeOf(autoscalingv1.Scale{})), "Scale")
		for _, k := range []string{"get", "put", "patch"} {
			sc[k].(jsonObj)["x-kubernetes-group-version-kind"] = gvkExt(schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"})
		}
		out[coll+"/{name}/scale"] = sc
	}
	return out
}

func (o *openAPI) ensure() error {
	o.once.Do(o.build)
	return o.err
}

func (o *openAPI) serveV3Index(w http.ResponseWriter, r *http.Request) {
	if err := o.ensure(); err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(o.v3index)
}

func (o *openAPI) serveV3(w http.ResponseWriter, r *http.Request, key string) {
	if err := o.ensure(); err != nil {
		writeError(w, err)
		return
	}
	doc, ok := o.v3docs[key]
	if !ok {
		writeError(w, notFoundPath(r))
		return
	}
	h := o.v3hash[key]
	w.Header().Set("Etag", `"`+h+`"`)
	if r.URL.Query().Get("hash") == h {
		w.Header().Set("Cache-Control", "public, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache, private")
	}
	if inm := r.Header.Get("If-None-Match"); inm == `"`+h+`"` {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(doc)
}

func (o *openAPI) serveV2(w http.ResponseWriter, r *http.Request) {
	if err := o.ensure(); err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Etag", `"`+o.v2hash+`"`)
	w.Header().Set("Vary", "Accept")
	if inm := r.Header.Get("If-None-Match"); inm == `"`+o.v2hash+`"` {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if strings.Contains(r.Header.Get("Accept"), "protobuf") {
		w.Header().Set("Content-Type", "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
		w.Write(o.v2proto)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(o.v2json)
}

// definitionNames lists the generated v2 definitions (tests).
func (o *openAPI) definitionNames() []string {
	o.ensure()
	var v map[string]json.RawMessage
	var doc struct {
		Definitions map[string]json.RawMessage `json:"definitions"`
	}
	json.Unmarshal(o.v2json, &doc)
	v = doc.Definitions
	out := make([]string, 0, len(v))
	for k := range v {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
