package apiserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wharfhq/wharf/internal/cluster/store"
)

type testServer struct {
	*Server
	cs     *kubernetes.Clientset
	http   *http.Client
	cancel func()
}

func startTest(t testing.TB, st store.Interface) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{DataRoot: t.TempDir(), Listener: l, Store: st})
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
	cs := kubernetes.NewForConfigOrDie(cfg)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	return &testServer{Server: s, cs: cs, http: hc, cancel: cancel}
}

func (ts *testServer) do(t testing.TB, method, path, ctype, accept string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, ts.URL()+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+ts.Token())
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := ts.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func TestPKIAndKubeconfig(t *testing.T) {
	ts := startTest(t, nil)
	dir := filepath.Join(ts.opts.DataRoot, "kube")
	for _, f := range []string{"ca.crt", "ca.key", "serving.crt", "serving.key", "token"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v", f, fi.Mode())
		}
	}
	// a second start reuses CA and token
	p, err := loadOrCreatePKI(dir, nil)
	if err != nil || p.token != ts.Token() || !bytes.Equal(p.caPEM, ts.CAPEM()) {
		t.Fatalf("PKI not reused: %v", err)
	}
	// merge into ~/.kube/config: current only when none is set
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, ".kube"), 0o700)
	os.WriteFile(filepath.Join(home, ".kube", "config"), []byte(`apiVersion: v1
kind: Config
clusters:
- cluster: {server: "https://other:6443"}
  name: other
users:
- name: other
  user: {token: abc}
contexts:
- context: {cluster: other, user: other}
  name: other
current-context: other
`), 0o600)
	if err := MergeKubeconfig(ts.KubeconfigPath(), home, false); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.LoadFromFile(filepath.Join(home, ".kube", "config"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CurrentContext != "other" || cfg.Contexts["wharf"] == nil || cfg.Contexts["other"] == nil || cfg.AuthInfos["wharf"].Token != ts.Token() {
		t.Fatalf("merge without use: %+v", cfg)
	}
	if err := MergeKubeconfig(ts.KubeconfigPath(), home, true); err != nil {
		t.Fatal(err)
	}
	cfg, _ = clientcmd.LoadFromFile(filepath.Join(home, ".kube", "config"))
	if cfg.CurrentContext != "wharf" {
		t.Fatalf("merge with use: current %q", cfg.CurrentContext)
	}
	// empty home: becomes current
	home2 := t.TempDir()
	if err := MergeKubeconfig(ts.KubeconfigPath(), home2, false); err != nil {
		t.Fatal(err)
	}
	cfg, _ = clientcmd.LoadFromFile(filepath.Join(home2, ".kube", "config"))
	if cfg.CurrentContext != "wharf" {
		t.Fatalf("fresh merge: current %q", cfg.CurrentContext)
	}
}

func TestServiceAllocation(t *testing.T) {
	ts := startTest(t, nil)
	ctx := context.Background()
	svcs := ts.cs.CoreV1().Services("default")
	mk := func(name string, typ corev1.ServiceType, ip string, nodePort int32) (*corev1.Service, error) {
		return svcs.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{Type: typ, ClusterIP: ip,
			Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Port: 80, NodePort: nodePort}}}}, metav1.CreateOptions{})
	}
	a, err := mk("a", corev1.ServiceTypeNodePort, "10.43.7.7", 30080)
	if err != nil {
		t.Fatal(err)
	}
	if a.Spec.ClusterIP != "10.43.7.7" || a.Spec.Ports[0].NodePort != 30080 || a.Spec.Ports[0].TargetPort.IntValue() != 80 || a.Spec.Ports[0].Protocol != "TCP" {
		t.Fatalf("explicit values: %+v", a.Spec)
	}
	_, err = mk("b", corev1.ServiceTypeClusterIP, "10.43.7.7", 0)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "provided IP is already allocated") {
		t.Fatalf("IP clash: %v", err)
	}
	_, err = mk("c", corev1.ServiceTypeNodePort, "", 30080)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "provided port is already allocated") {
		t.Fatalf("nodePort clash: %v", err)
	}
	_, err = mk("d", corev1.ServiceTypeNodePort, "", 80)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "provided port is not in the valid range") {
		t.Fatalf("nodePort range: %v", err)
	}
	_, err = mk("e", corev1.ServiceTypeClusterIP, "192.168.1.1", 0)
	if !apierrors.IsInvalid(err) {
		t.Fatalf("IP outside CIDR: %v", err)
	}
	seen := map[string]bool{}
	for _, n := range []string{"f", "g", "h"} {
		s, err := mk(n, corev1.ServiceTypeNodePort, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if seen[s.Spec.ClusterIP] || !strings.HasPrefix(s.Spec.ClusterIP, "10.43.") || s.Spec.Ports[0].NodePort < 30000 {
			t.Fatalf("allocated %+v", s.Spec)
		}
		seen[s.Spec.ClusterIP] = true
	}
	// an update keeps the allocations even when the client omits them
	a.Spec.ClusterIP, a.Spec.ClusterIPs, a.Spec.Ports[0].NodePort = "", nil, 0
	a.Spec.Selector = map[string]string{"app": "changed"}
	u, err := svcs.Update(ctx, a, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if u.Spec.ClusterIP != "10.43.7.7" || u.Spec.Ports[0].NodePort != 30080 {
		t.Fatalf("update lost allocations: %+v", u.Spec)
	}
	// deleting frees the port
	if err := svcs.Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := mk("a2", corev1.ServiceTypeNodePort, "10.43.7.7", 30080); err != nil {
		t.Fatalf("reuse after delete: %v", err)
	}
}

func TestListPagingSelectorsAndTable(t *testing.T) {
	ts := startTest(t, nil)
	ctx := context.Background()
	for i := 0; i < 25; i++ {
		lbl := "odd"
		if i%2 == 0 {
			lbl = "even"
		}
		_, err := ts.cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
			Name: "cm-" + string(rune('a'+i)), Labels: map[string]string{"parity": lbl}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	opts := metav1.ListOptions{Limit: 7, LabelSelector: "parity=even"}
	rv := ""
	for {
		l, err := ts.cs.CoreV1().ConfigMaps("default").List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if rv == "" {
			rv = l.ResourceVersion
			// a write between pages is not seen by the paged list
			ts.cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-late", Labels: map[string]string{"parity": "even"}}}, metav1.CreateOptions{})
		} else if l.ResourceVersion != rv {
			t.Fatalf("pages at different revisions: %s %s", rv, l.ResourceVersion)
		}
		for _, c := range l.Items {
			names = append(names, c.Name)
		}
		if l.Continue == "" {
			break
		}
		opts.Continue = l.Continue
	}
	if len(names) != 13 {
		t.Fatalf("paged list: %d %v", len(names), names)
	}
	l, err := ts.cs.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=cm-b"})
	if err != nil || len(l.Items) != 1 {
		t.Fatalf("field selector: %v %v", err, l)
	}
	if _, err := ts.cs.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nope=1"}); !apierrors.IsBadRequest(err) {
		t.Fatalf("unknown field selector: %v", err)
	}
	// Table output
	code, hdr, body := ts.do(t, "GET", "/api/v1/namespaces", "", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json", nil)
	var tbl metav1.Table
	if code != 200 || json.Unmarshal(body, &tbl) != nil || tbl.Kind != "Table" || len(tbl.ColumnDefinitions) != 3 || tbl.ColumnDefinitions[1].Name != "Status" {
		t.Fatalf("namespace table: %d %s %s", code, hdr.Get("Content-Type"), body)
	}
	if len(tbl.Rows) != 4 || tbl.Rows[0].Cells[1] != "Active" {
		t.Fatalf("namespace rows: %s", body)
	}
}

func TestWatchSemantics(t *testing.T) {
	ts := startTest(t, nil)
	ctx := context.Background()
	cms := ts.cs.CoreV1().ConfigMaps("default")
	a, _ := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.CreateOptions{})
	// sendInitialEvents: ADDED for the state, then a bookmark with the
	// initial-events-end annotation
	code, _, body := ts.do(t, "GET", "/api/v1/namespaces/default/configmaps?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1", "", "", nil)
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if code != 200 || len(lines) < 2 || !strings.Contains(lines[0], `"ADDED"`) || !strings.Contains(lines[len(lines)-1], `"BOOKMARK"`) ||
		!strings.Contains(lines[len(lines)-1], `k8s.io/initial-events-end`) {
		t.Fatalf("sendInitialEvents: %d %s", code, body)
	}
	// sendInitialEvents without NotOlderThan -> 422
	code, _, body = ts.do(t, "GET", "/api/v1/namespaces/default/configmaps?watch=1&sendInitialEvents=true", "", "", nil)
	if code != 422 {
		t.Fatalf("sendInitialEvents without resourceVersionMatch: %d %s", code, body)
	}
	// watch from a resourceVersion sees later changes only
	w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: a.ResourceVersion, LabelSelector: "x=y"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	a.Labels = map[string]string{"x": "y"}
	cms.Update(ctx, a, metav1.UpdateOptions{})
	cms.Delete(ctx, "a", metav1.DeleteOptions{})
	for _, want := range []string{"ADDED", "DELETED"} {
		select {
		case ev := <-w.ResultChan():
			if string(ev.Type) != want {
				t.Fatalf("got %s want %s", ev.Type, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s event", want)
		}
	}
}

func TestSubresourcesAndDefaults(t *testing.T) {
	ts := startTest(t, nil)
	ctx := context.Background()
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d"}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx:latest"}}}}}}
	got, err := ts.cs.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := got.Spec.Template.Spec.Containers[0]
	if *got.Spec.Replicas != 1 || c.ImagePullPolicy != corev1.PullAlways || got.Generation != 1 {
		t.Fatalf("defaults: %+v", got.Spec)
	}
	// status is only written through /status
	got.Status.Replicas = 5
	got2, err := ts.cs.AppsV1().Deployments("default").Update(ctx, got, metav1.UpdateOptions{})
	if err != nil || got2.Status.Replicas != 0 || got2.ResourceVersion != got.ResourceVersion {
		t.Fatalf("status via main resource: %v %+v", err, got2.Status)
	}
	got2.Status.Replicas = 5
	got2.Status.ObservedGeneration = 1
	got3, err := ts.cs.AppsV1().Deployments("default").UpdateStatus(ctx, got2, metav1.UpdateOptions{})
	if err != nil || got3.Status.Replicas != 5 || got3.Generation != 1 {
		t.Fatalf("status update: %v %+v", err, got3)
	}
	sc, err := ts.cs.AppsV1().Deployments("default").GetScale(ctx, "d", metav1.GetOptions{})
	if err != nil || sc.Spec.Replicas != 1 || sc.Status.Selector != "a=b" {
		t.Fatalf("scale: %v %+v", err, sc)
	}
	sc.Spec.Replicas = 4
	if _, err := ts.cs.AppsV1().Deployments("default").UpdateScale(ctx, "d", sc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	got4, _ := ts.cs.AppsV1().Deployments("default").Get(ctx, "d", metav1.GetOptions{})
	if *got4.Spec.Replicas != 4 || got4.Generation != 2 || got4.Status.Replicas != 5 {
		t.Fatalf("after scale: %+v gen %d", got4.Spec.Replicas, got4.Generation)
	}
	// selector mismatch -> 422
	d.Name = "bad"
	d.Spec.Template.Labels = map[string]string{"a": "c"}
	if _, err := ts.cs.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "`selector` does not match template `labels`") {
		t.Fatalf("selector mismatch: %v", err)
	}
	// protected namespace
	if err := ts.cs.CoreV1().Namespaces().Delete(ctx, "default", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("delete default namespace: %v", err)
	}
	// oversized body -> 413
	code, _, _ := ts.do(t, "POST", "/api/v1/namespaces/default/configmaps", "application/json", "", bytes.Repeat([]byte(" "), maxBodyBytes+10))
	if code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d", code)
	}
	// malformed JSON -> 400; unknown media type -> 415
	if code, _, _ := ts.do(t, "POST", "/api/v1/namespaces/default/configmaps", "application/json", "", []byte("{")); code != 400 {
		t.Fatalf("malformed JSON: %d", code)
	}
	if code, _, _ := ts.do(t, "POST", "/api/v1/namespaces/default/configmaps", "text/plain", "", []byte("x")); code != 415 {
		t.Fatalf("unknown media type: %d", code)
	}
}

func TestDiscoveryAndOpenAPI(t *testing.T) {
	ts := startTest(t, nil)
	for _, v := range []string{"v2", "v2beta1"} {
		code, hdr, body := ts.do(t, "GET", "/apis", "", "application/json;g=apidiscovery.k8s.io;v="+v+";as=APIGroupDiscoveryList,application/json", nil)
		if code != 200 || hdr.Get("Content-Type") != "application/json;g=apidiscovery.k8s.io;v="+v+";as=APIGroupDiscoveryList" || !strings.Contains(string(body), `"deployments"`) {
			t.Fatalf("aggregated %s: %d %s", v, code, hdr.Get("Content-Type"))
		}
	}
	code, _, body := ts.do(t, "GET", "/apis/apps/v1", "", "", nil)
	if code != 200 || !strings.Contains(string(body), `"deployments/scale"`) {
		t.Fatalf("legacy discovery: %d %s", code, body)
	}
	code, hdr, body := ts.do(t, "GET", "/openapi/v2", "", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf", nil)
	if code != 200 || hdr.Get("Content-Type") != "application/com.github.proto-openapi.spec.v2.v1.0+protobuf" {
		t.Fatalf("openapi v2: %d %s", code, hdr.Get("Content-Type"))
	}
	var doc openapi_v2.Document
	if err := proto.Unmarshal(body, &doc); err != nil || doc.Swagger != "2.0" {
		t.Fatalf("openapi v2 protobuf: %v", err)
	}
	code, _, body = ts.do(t, "GET", "/openapi/v3", "", "", nil)
	var idx struct {
		Paths map[string]struct {
			ServerRelativeURL string `json:"serverRelativeURL"`
		} `json:"paths"`
	}
	if code != 200 || json.Unmarshal(body, &idx) != nil || idx.Paths["apis/apps/v1"].ServerRelativeURL == "" {
		t.Fatalf("openapi v3 index: %d %s", code, body)
	}
	code, _, body = ts.do(t, "GET", idx.Paths["apis/apps/v1"].ServerRelativeURL, "", "", nil)
	if code != 200 || !strings.Contains(string(body), `"fieldValidation"`) || !strings.Contains(string(body), `"x-kubernetes-patch-merge-key":"name"`) {
		t.Fatalf("openapi v3 apps/v1: %d", code)
	}
}

func TestEtcdBackedServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real etcd")
	}
	ep := startEtcd(t)
	st, err := store.OpenEtcd(context.Background(), store.EtcdOptions{Endpoints: []string{ep}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	old := EtcdCompactionInterval
	EtcdCompactionInterval = 200 * time.Millisecond
	defer func() { EtcdCompactionInterval = old }()
	ts := startTest(t, st)
	ctx := context.Background()
	if _, err := ts.cs.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	w, err := ts.cs.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	cm, err := ts.cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.ResultChan():
		if ev.Type != "ADDED" || ev.Object.(*corev1.ConfigMap).ResourceVersion != cm.ResourceVersion {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event from etcd")
	}
	stale := cm.DeepCopy()
	cm.Data = map[string]string{"a": "b"}
	if _, err := ts.cs.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	stale.Data = map[string]string{"a": "c"}
	if _, err := ts.cs.CoreV1().ConfigMaps("default").Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale update on etcd: %v", err)
	}
	// the server compacts etcd's history
	deadline := time.Now().Add(10 * time.Second)
	for {
		if cr, _ := st.CompactedRevision(ctx); cr > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("etcd never compacted")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestNamespaceDeletion(t *testing.T) {
	ts := startTest(t, nil)
	ctx := context.Background()
	if _, err := ts.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "gone"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.cs.CoreV1().ConfigMaps("gone").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := ts.cs.CoreV1().Namespaces().Delete(ctx, "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := ts.cs.CoreV1().Namespaces().Get(ctx, "gone", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace not deleted: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if l, _ := ts.cs.CoreV1().ConfigMaps("gone").List(ctx, metav1.ListOptions{}); len(l.Items) != 0 {
		t.Fatalf("content left in a deleted namespace: %d", len(l.Items))
	}
}
