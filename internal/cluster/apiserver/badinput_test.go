package apiserver

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestBadInput: malformed bodies, oversized bodies, invalid names, labels
// and keys, unknown kinds and resources answer with kube-apiserver's status
// codes, reasons and messages.
func TestBadInput(t *testing.T) {
	ts := startTest(t, nil)
	const cms = "/api/v1/namespaces/default/configmaps"
	const deps = "/apis/apps/v1/namespaces/default/deployments"
	big := func(n int) []byte {
		return []byte(`{"metadata":{"name":"big"},"data":{"k":"` + strings.Repeat("x", n) + `"}}`)
	}
	cases := []struct {
		name, method, path, ctype string
		body                      []byte
		code                      int
		reason                    metav1.StatusReason
		msg                       string // prefix of the message
	}{
		{"oversized create", "POST", cms, "application/json", big(maxBodyBytes), 413, metav1.StatusReasonRequestEntityTooLarge,
			"Request entity too large: limit is 3145728"},
		{"oversized update", "PUT", cms + "/x", "application/json", big(maxBodyBytes), 413, metav1.StatusReasonRequestEntityTooLarge,
			"Request entity too large: limit is 3145728"},
		{"oversized patch", "PATCH", cms + "/x", "application/merge-patch+json", big(maxBodyBytes), 413, metav1.StatusReasonRequestEntityTooLarge,
			"Request entity too large: limit is 3145728"},
		{"oversized apply", "PATCH", cms + "/x?fieldManager=m", "application/apply-patch+yaml", big(maxBodyBytes), 413, metav1.StatusReasonRequestEntityTooLarge,
			"Request entity too large: limit is 3145728"},
		{"configmap over 1 MiB", "POST", cms, "application/json", big(maxConfigSize + 1), 422, metav1.StatusReasonInvalid,
			`ConfigMap "big" is invalid: []: Too long: `},
		{"truncated JSON", "POST", cms, "application/json", []byte("{"), 400, metav1.StatusReasonBadRequest,
			"the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; json parse error: unexpected end of JSON input ({)"},
		{"empty body", "POST", cms, "application/json", nil, 400, metav1.StatusReasonBadRequest,
			"the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; json parse error: unexpected end of JSON input (<empty>)"},
		{"not JSON", "POST", cms, "application/json", []byte("hello"), 400, metav1.StatusReasonBadRequest,
			"the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; json parse error: "},
		{"wrong JSON type", "POST", cms, "application/json", []byte(`{"metadata":{"name":5}}`), 400, metav1.StatusReasonBadRequest,
			`ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal number into Go struct field ObjectMeta.metadata.name of type string`},
		{"malformed YAML", "POST", cms, "application/yaml", []byte("metadata: [\n"), 400, metav1.StatusReasonBadRequest,
			"the object provided is unrecognized (must be of type ConfigMap): error converting YAML to JSON: yaml: "},
		{"malformed protobuf", "POST", deps, "application/vnd.kubernetes.protobuf", []byte("\x00\x01garbage"), 400, metav1.StatusReasonBadRequest,
			"the object provided is unrecognized (must be of type Deployment): provided data does not appear to be a protobuf message"},
		{"truncated protobuf", "POST", deps, "application/vnd.kubernetes.protobuf", []byte("k8s\x00\x0a\x0c\x0a\x07"), 400, metav1.StatusReasonBadRequest,
			""},
		{"unknown kind", "POST", cms, "application/json", []byte(`{"apiVersion":"v1","kind":"Foo","metadata":{"name":"x"}}`), 400, metav1.StatusReasonBadRequest,
			`Foo in version "v1" cannot be handled as a ConfigMap: no kind "Foo" is registered for version "v1"`},
		{"other kind", "POST", cms, "application/json", []byte(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}`), 400, metav1.StatusReasonBadRequest,
			`Secret in version "v1" cannot be handled as a ConfigMap: converting (v1.Secret) to (ConfigMap): unknown conversion`},
		{"wrong apiVersion", "POST", deps, "application/json", []byte(`{"apiVersion":"apps/v2","kind":"Deployment","metadata":{"name":"x"}}`), 400, metav1.StatusReasonBadRequest,
			"the API version in the data (apps/v2) does not match the expected API version (apps/v1)"},
		{"unknown resource", "GET", "/api/v1/namespaces/default/foos", "", nil, 404, metav1.StatusReasonNotFound,
			"the server could not find the requested resource"},
		{"unknown group", "POST", "/apis/example.com/v1/namespaces/default/widgets", "application/json", []byte(`{}`), 404, metav1.StatusReasonNotFound,
			"the server could not find the requested resource"},
		{"unsupported media type", "POST", cms, "text/plain", []byte("x"), 415, metav1.StatusReasonUnsupportedMediaType,
			"the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf"},
		{"invalid name", "POST", cms, "application/json", []byte(`{"metadata":{"name":"Bad_Name"}}`), 422, metav1.StatusReasonInvalid,
			`ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`},
		{"invalid service name", "POST", "/api/v1/namespaces/default/services", "application/json", []byte(`{"metadata":{"name":"1abc"},"spec":{"ports":[{"port":80}]}}`), 422, metav1.StatusReasonInvalid,
			`Service "1abc" is invalid: metadata.name: Invalid value: "1abc": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character`},
		{"name too long", "POST", cms, "application/json", []byte(`{"metadata":{"name":"` + strings.Repeat("a", 254) + `"}}`), 422, metav1.StatusReasonInvalid,
			`ConfigMap "` + strings.Repeat("a", 254) + `" is invalid: metadata.name: Invalid value: "` + strings.Repeat("a", 254) + `": must be no more than 253 characters`},
		{"invalid label key", "POST", cms, "application/json", []byte(`{"metadata":{"name":"l","labels":{"bad key!":"v"}}}`), 422, metav1.StatusReasonInvalid,
			`ConfigMap "l" is invalid: metadata.labels: Invalid value: "bad key!": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`},
		{"invalid label value", "POST", cms, "application/json", []byte(`{"metadata":{"name":"l","labels":{"k":"-v-"}}}`), 422, metav1.StatusReasonInvalid,
			`ConfigMap "l" is invalid: metadata.labels: Invalid value: "-v-": a valid label must be an empty string or consist of alphanumeric characters`},
		{"invalid configmap key", "POST", cms, "application/json", []byte(`{"metadata":{"name":"k"},"data":{"a/b":"v"}}`), 422, metav1.StatusReasonInvalid,
			`ConfigMap "k" is invalid: data[a/b]: Invalid value: "a/b": a valid config key must consist of alphanumeric characters, '-', '_' or '.'`},
		{"invalid namespace name", "POST", "/api/v1/namespaces", "application/json", []byte(`{"metadata":{"name":"a.b"}}`), 422, metav1.StatusReasonInvalid,
			`Namespace "a.b" is invalid: metadata.name: Invalid value: "a.b": must not contain dots`},
		{"missing name", "POST", cms, "application/json", []byte(`{"metadata":{}}`), 422, metav1.StatusReasonInvalid,
			`ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required`},
		{"strict unknown field", "POST", cms + "?fieldValidation=Strict", "application/json", []byte(`{"metadata":{"name":"s"},"dat":{}}`), 400, metav1.StatusReasonBadRequest,
			`ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "dat"`},
		{"strict duplicate field", "POST", cms + "?fieldValidation=Strict", "application/json", []byte(`{"metadata":{"name":"s","name":"t"}}`), 400, metav1.StatusReasonBadRequest,
			`ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: duplicate field "metadata.name"`},
		{"bad fieldValidation", "POST", cms + "?fieldValidation=Loud", "application/json", []byte(`{"metadata":{"name":"s"}}`), 400, metav1.StatusReasonBadRequest,
			"fieldValidation invalid value: Loud"},
		{"bad label selector", "GET", cms + "?labelSelector=a%20in%20(", "", nil, 400, metav1.StatusReasonBadRequest, "unable to parse requirement"},
		{"unknown field selector", "GET", cms + "?fieldSelector=spec.nope%3Dx", "", nil, 400, metav1.StatusReasonBadRequest,
			"field label not supported: spec.nope"},
		{"bad continue", "GET", cms + "?limit=1&continue=bm90IGpzb24", "", nil, 400, metav1.StatusReasonBadRequest, ""},
		{"unsupported patch type", "PATCH", cms + "/x", "application/xml", []byte("<a/>"), 415, metav1.StatusReasonUnsupportedMediaType,
			"the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"},
	}
	for _, c := range cases {
		code, hdr, body := ts.do(t, c.method, c.path, c.ctype, "", c.body)
		var st metav1.Status
		if err := json.Unmarshal(body, &st); err != nil {
			t.Errorf("%s: %d, not a Status: %.200s", c.name, code, body)
			continue
		}
		if code != c.code || int(st.Code) != c.code || st.Reason != c.reason || st.Kind != "Status" || st.Status != metav1.StatusFailure ||
			!strings.HasPrefix(st.Message, c.msg) || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
			t.Errorf("%s: got %d %s %q\nwant %d %s %q...", c.name, code, st.Reason, st.Message, c.code, c.reason, c.msg)
		}
		if c.code == 422 && (st.Details == nil || len(st.Details.Causes) == 0 || st.Details.Causes[0].Field == "") {
			t.Errorf("%s: 422 without field causes: %+v", c.name, st.Details)
		}
	}

	// malformed patches against an existing object
	if code, _, body := ts.do(t, "POST", deps, "application/json", "", []byte(`{"metadata":{"name":"d"},"spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"nginx"}]}}}}`)); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	for _, c := range []struct{ ctype, body string }{
		{"application/strategic-merge-patch+json", "{"},
		{"application/strategic-merge-patch+json", `{"spec":{"replicas":"many"}}`},
		{"application/merge-patch+json", "{"},
		{"application/json-patch+json", `{"op":"add"}`},
		{"application/json-patch+json", `[{"op":"move","from":"/nope","path":"/spec"}]`},
		{"application/json-patch+json", `[{"op":"test","path":"/spec/replicas","value":9}]`},
		{"application/apply-patch+yaml", "spec: [\n"},
		{"application/apply-patch+yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: other}\n"},
	} {
		code, _, body := ts.do(t, "PATCH", deps+"/d?fieldManager=m", c.ctype, "", []byte(c.body))
		var st metav1.Status
		json.Unmarshal(body, &st)
		if code < 400 || code >= 500 || st.Kind != "Status" || int(st.Code) != code {
			t.Errorf("PATCH %s %q: %d %s", c.ctype, c.body, code, body)
		}
	}
	// a strategic merge patch that makes the object invalid: 422
	code, _, body := ts.do(t, "PATCH", deps+"/d", "application/strategic-merge-patch+json", "", []byte(`{"metadata":{"labels":{"bad key!":"v"}}}`))
	if code != 422 || !bytes.Contains(body, []byte(`Deployment.apps \"d\" is invalid: metadata.labels: Invalid value: \"bad key!\"`)) {
		t.Errorf("invalid label by patch: %d %s", code, body)
	}
	// nothing was written by any of the above
	code, _, body = ts.do(t, "GET", cms, "", "", nil)
	var list struct{ Items []json.RawMessage }
	json.Unmarshal(body, &list)
	if code != http.StatusOK || len(list.Items) != 0 {
		t.Errorf("bad input left configmaps behind: %d %s", code, body)
	}
}
