package apiserver

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/wharfhq/wharf/internal/cluster/store"
)

// fuzzServer is a seeded server whose handler is called directly.
func fuzzServer(t testing.TB) *Server {
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "state.db"), store.BoltOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{DataRoot: t.TempDir(), Listener: l, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); st.Close() })
	if err := s.seed(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *Server) serve(method, path, ctype string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.Token())
	req.Header.Set("Content-Type", ctype)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

const seedDeployment = `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","labels":{"a":"b"}},"spec":{"replicas":2,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"nginx","ports":[{"containerPort":80}]}]}}}}`

// FuzzDecodeBody: no body, in any media type, makes the server fail (5xx)
// or panic.
func FuzzDecodeBody(f *testing.F) {
	f.Add([]byte(seedDeployment), uint8(0))
	f.Add([]byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: y}\n"), uint8(1))
	f.Add([]byte{0x6b, 0x38, 0x73, 0x00, 0x0a, 0x0c, 0x0a, 0x07}, uint8(2))
	f.Add([]byte(`{"kind":"Pod"}`), uint8(0))
	f.Add([]byte(`{"metadata":{"name":"x","labels":{"bad key!":"v"}}}`), uint8(0))
	f.Add([]byte(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}`), uint8(0))
	f.Add([]byte(`{"metadata":{"name":"x","name":"y"},"spec":{"ports":[{"port":"eighty"}]}}`), uint8(0))
	f.Add([]byte("metadata: [\n"), uint8(1))
	f.Add([]byte("a: &x [*x]\n"), uint8(1))
	f.Add([]byte("k8s\x00\x0a\x0c\x0a\x02v1\x12\x06Deploy"), uint8(2))
	s := fuzzServer(f)
	types := []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
	f.Fuzz(func(t *testing.T, body []byte, ct uint8) {
		for _, path := range []string{"/apis/apps/v1/namespaces/default/deployments", "/api/v1/namespaces/default/services"} {
			rec := s.serve(http.MethodPost, path, types[int(ct)%len(types)], body)
			if rec.Code >= 500 {
				t.Fatalf("POST %s (%s) %q: %d %s", path, types[int(ct)%len(types)], body, rec.Code, rec.Body.String())
			}
		}
	})
}

// FuzzPatch: no patch of any type makes the server fail or panic.
func FuzzPatch(f *testing.F) {
	f.Add([]byte(`{"spec":{"replicas":5}}`), uint8(0))
	f.Add([]byte(`{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"c"}],"containers":[{"name":"c","image":"x"}]}}}}`), uint8(0))
	f.Add([]byte(`{"metadata":{"labels":null}}`), uint8(1))
	f.Add([]byte(`[{"op":"replace","path":"/spec/replicas","value":3}]`), uint8(2))
	f.Add([]byte(`[{"op":"remove","path":"/metadata"}]`), uint8(2))
	f.Add([]byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: 7}\n"), uint8(3))
	s := fuzzServer(f)
	if rec := s.serve(http.MethodPost, "/apis/apps/v1/namespaces/default/deployments", "application/json", []byte(seedDeployment)); rec.Code != 201 {
		f.Fatalf("seed deployment: %d %s", rec.Code, rec.Body.String())
	}
	types := []string{"application/strategic-merge-patch+json", "application/merge-patch+json", "application/json-patch+json", "application/apply-patch+yaml"}
	f.Fuzz(func(t *testing.T, patch []byte, pt uint8) {
		typ := types[int(pt)%len(types)]
		path := "/apis/apps/v1/namespaces/default/deployments/d?fieldManager=fuzz&dryRun=All"
		rec := s.serve(http.MethodPatch, path, typ, patch)
		if rec.Code >= 500 {
			t.Fatalf("PATCH %s %q: %d %s", typ, patch, rec.Code, rec.Body.String())
		}
	})
}

// FuzzSubresourcePatch: patches of /scale and /status, of any type, never
// make the server fail or panic.
func FuzzSubresourcePatch(f *testing.F) {
	f.Add([]byte(`{"spec":{"replicas":5}}`), uint8(0), false)
	f.Add([]byte(`{"spec":{"replicas":-1}}`), uint8(1), false)
	f.Add([]byte(`[{"op":"replace","path":"/spec/replicas","value":"x"}]`), uint8(2), false)
	f.Add([]byte(`{"status":{"replicas":3,"conditions":[{"type":"Available"}]}}`), uint8(0), true)
	f.Add([]byte(`{"status":null}`), uint8(1), true)
	s := fuzzServer(f)
	if rec := s.serve(http.MethodPost, "/apis/apps/v1/namespaces/default/deployments", "application/json", []byte(seedDeployment)); rec.Code != 201 {
		f.Fatalf("seed deployment: %d %s", rec.Code, rec.Body.String())
	}
	types := []string{"application/strategic-merge-patch+json", "application/merge-patch+json", "application/json-patch+json", "application/apply-patch+yaml"}
	f.Fuzz(func(t *testing.T, patch []byte, pt uint8, status bool) {
		typ := types[int(pt)%len(types)]
		path := "/apis/apps/v1/namespaces/default/deployments/d/scale?fieldManager=fuzz&dryRun=All"
		if status {
			path = "/apis/apps/v1/namespaces/default/deployments/d/status?fieldManager=fuzz&dryRun=All"
		}
		rec := s.serve(http.MethodPatch, path, typ, patch)
		if rec.Code >= 500 {
			t.Fatalf("PATCH %s %s %q: %d %s", path, typ, patch, rec.Code, rec.Body.String())
		}
	})
}
