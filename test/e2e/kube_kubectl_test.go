package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestKubeKubectlMatrix drives the real kubectl 1.27, 1.30 and 1.33 through
// the tutorial walkthrough and the wider command set.
func TestKubeKubectlMatrix(t *testing.T) {
	versions := kubectlVersions()
	if len(versions) == 0 {
		t.Skip("no kubectl binaries in /usr/lib/google-cloud-sdk/bin (set WHARF_KUBECTL_DIR)")
	}
	tut := tutorialDir(t)
	for _, v := range []string{"1.27", "1.30", "1.33"} {
		bin, ok := versions[v]
		if !ok {
			continue
		}
		t.Run(v, func(t *testing.T) {
			ks := startKube(t)
			dir := t.TempDir()
			copyFile(t, filepath.Join(tut, "deployment.yaml"), filepath.Join(dir, "deployment.yaml"))
			copyFile(t, filepath.Join(tut, "service.yaml"), filepath.Join(dir, "service.yaml"))
			k := kubectl{bin: bin, cache: filepath.Join(dir, "cache"), kubeconfig: ks.kubeconfig, home: ks.home, dir: dir}
			kubectlWalkthrough(t, k, dir)
			kubectlColumnsAndStreams(t, k, dir)
			kubectlBadInput(t, k, dir)
		})
	}
}

func mustContain(t *testing.T, what, out string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(out, s) {
			t.Fatalf("%s: missing %q in:\n%s", what, s, out)
		}
	}
}

func kubectlWalkthrough(t *testing.T, k kubectl, dir string) {
	out := k.ok(t, "version")
	mustContain(t, "version", out, "v1.33.0+wharf")

	out = k.ok(t, "api-resources")
	mustContain(t, "api-resources", out, "deployments", "deploy", "apps/v1", "pods", "po", "services", "svc", "leases", "endpointslices")

	// the walkthrough: apply, get with kube-apiserver's columns
	mustContain(t, "apply deployment", k.ok(t, "apply", "-f", "deployment.yaml"), "deployment.apps/nginx-deployment created")
	mustContain(t, "apply service", k.ok(t, "apply", "-f", "service.yaml"), "service/nginx-service created")
	out = k.ok(t, "get", "deploy,po,svc", "-o", "wide")
	mustContain(t, "get -o wide", out, "READY", "UP-TO-DATE", "AVAILABLE", "CONTAINERS", "IMAGES", "SELECTOR",
		"deployment.apps/nginx-deployment", "0/3", "my-nginx-server", "app=nginx",
		"TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "service/nginx-service", "NodePort", "80:3")
	out = k.ok(t, "get", "all")
	mustContain(t, "get all", out, "service/kubernetes", "deployment.apps/nginx-deployment")

	out = k.ok(t, "get", "deployment", "nginx-deployment", "-o", "yaml")
	mustContain(t, "get -o yaml (defaults)", out, "replicas: 3", "progressDeadlineSeconds: 600", "revisionHistoryLimit: 10",
		"maxSurge: 25%", "terminationMessagePath: /dev/termination-log", "dnsPolicy: ClusterFirst", "restartPolicy: Always",
		"protocol: TCP", "schedulerName: default-scheduler", "terminationGracePeriodSeconds: 30", "kubectl.kubernetes.io/last-applied-configuration")
	out = k.ok(t, "get", "service", "nginx-service", "-o", "jsonpath={.spec.ports[0].nodePort} {.spec.clusterIP} {.spec.sessionAffinity}")
	f := strings.Fields(out)
	if len(f) != 3 || !strings.HasPrefix(f[1], "10.43.") || f[2] != "None" {
		t.Fatalf("service defaults: %q", out)
	}
	if np, _ := strconv.Atoi(f[0]); np < 30000 || np > 32767 {
		t.Fatalf("nodePort %q out of range", f[0])
	}
	out = k.ok(t, "get", "deploy", "-o", "name")
	mustContain(t, "get -o name", out, "deployment.apps/nginx-deployment")
	out = k.ok(t, "get", "deploy", "nginx-deployment", "-o", "json")
	mustContain(t, "get -o json", out, `"kind": "Deployment"`, `"resourceVersion"`)

	// unchanged re-apply does not write
	rv1 := k.ok(t, "get", "deploy", "nginx-deployment", "-o", "jsonpath={.metadata.resourceVersion}")
	mustContain(t, "re-apply", k.ok(t, "apply", "-f", "deployment.yaml"), "deployment.apps/nginx-deployment unchanged")
	mustContain(t, "re-apply", k.ok(t, "apply", "-f", "service.yaml"), "service/nginx-service unchanged")
	if rv2 := k.ok(t, "get", "deploy", "nginx-deployment", "-o", "jsonpath={.metadata.resourceVersion}"); rv2 != rv1 {
		t.Fatalf("unchanged apply bumped resourceVersion %s -> %s", rv1, rv2)
	}
	// apply with a change
	data, _ := os.ReadFile(filepath.Join(dir, "deployment.yaml"))
	os.WriteFile(filepath.Join(dir, "deployment-5.yaml"), bytes.Replace(data, []byte("replicas: 3"), []byte("replicas: 5"), 1), 0o644)
	mustContain(t, "apply change", k.ok(t, "apply", "-f", "deployment-5.yaml"), "deployment.apps/nginx-deployment configured")
	if r := k.ok(t, "get", "deploy", "nginx-deployment", "-o", "jsonpath={.spec.replicas} {.metadata.generation}"); r != "5 2" {
		t.Fatalf("after apply replicas/generation = %q", r)
	}

	// scale, label, annotate, patch
	mustContain(t, "scale", k.ok(t, "scale", "deployment", "nginx-deployment", "--replicas=2"), "scaled")
	mustContain(t, "label", k.ok(t, "label", "deployment", "nginx-deployment", "tier=web"), "labeled")
	mustContain(t, "annotate", k.ok(t, "annotate", "deployment", "nginx-deployment", "note=hello"), "annotate")
	mustContain(t, "patch", k.ok(t, "patch", "deployment", "nginx-deployment", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.27"}]}}}}`), "patched")
	mustContain(t, "patch merge", k.ok(t, "patch", "deployment", "nginx-deployment", "--type=merge", "-p", `{"metadata":{"labels":{"merge":"yes"}}}`), "patched")
	mustContain(t, "patch json", k.ok(t, "patch", "deployment", "nginx-deployment", "--type=json", "-p", `[{"op":"replace","path":"/spec/minReadySeconds","value":3}]`), "patched")
	out = k.ok(t, "get", "deploy", "nginx-deployment", "-o", "jsonpath={.spec.replicas} {.metadata.labels.tier} {.metadata.annotations.note} {.spec.template.spec.containers[0].image} {.metadata.labels.merge} {.spec.minReadySeconds}")
	if out != "2 web hello nginx:1.27 yes 3" {
		t.Fatalf("after scale/label/annotate/patch: %q", out)
	}
	out = k.ok(t, "get", "deploy", "-l", "tier=web", "-o", "name")
	mustContain(t, "label selector", out, "deployment.apps/nginx-deployment")
	out = k.ok(t, "get", "deploy", "--field-selector", "metadata.name=nginx-deployment", "-o", "name")
	mustContain(t, "field selector", out, "deployment.apps/nginx-deployment")

	// describe
	out = k.ok(t, "describe", "deployment", "nginx-deployment")
	mustContain(t, "describe", out, "Name:", "nginx-deployment", "Replicas:", "StrategyType:", "RollingUpdate")

	// get -w sees a change and ends with its timeout
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.bin, "--kubeconfig", k.kubeconfig, "--cache-dir", k.cache, "get", "deploy", "-w", "--request-timeout=5s")
	cmd.Env = append(os.Environ(), "HOME="+k.home)
	var wout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &wout, &wout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	k.ok(t, "scale", "deployment", "nginx-deployment", "--replicas=7")
	cmd.Wait()
	if !regexp.MustCompile(`nginx-deployment\s+0/7`).MatchString(wout.String()) {
		t.Fatalf("get -w did not show the change:\n%s", wout.String())
	}

	// edit with a scripted EDITOR
	editor := filepath.Join(dir, "editor.sh")
	os.WriteFile(editor, []byte("#!/bin/sh\nsed -i 's/replicas: 7/replicas: 6/' \"$1\"\n"), 0o755)
	er := k.runEnv(t, []string{"EDITOR=" + editor, "KUBE_EDITOR=" + editor}, "edit", "deployment", "nginx-deployment")
	if er.err != nil || !strings.Contains(er.stdout, "edited") {
		t.Fatalf("edit: %v %s %s", er.err, er.stdout, er.stderr)
	}
	if r := k.ok(t, "get", "deploy", "nginx-deployment", "-o", "jsonpath={.spec.replicas}"); r != "6" {
		t.Fatalf("after edit replicas = %q", r)
	}

	// server-side apply over a client-side applied object, its conflict,
	// and an unchanged server-side apply that does not write
	mustContain(t, "apply --server-side", k.ok(t, "apply", "--server-side", "-f", "service.yaml"), "service/nginx-service serverside-applied")
	rvA := k.ok(t, "get", "svc", "nginx-service", "-o", "jsonpath={.metadata.resourceVersion}")
	mustContain(t, "apply --server-side again", k.ok(t, "apply", "--server-side", "-f", "service.yaml"), "serverside-applied")
	if rvB := k.ok(t, "get", "svc", "nginx-service", "-o", "jsonpath={.metadata.resourceVersion}"); rvA != rvB {
		t.Fatalf("unchanged server-side apply bumped resourceVersion %s -> %s", rvA, rvB)
	}
	svc, _ := os.ReadFile(filepath.Join(dir, "service.yaml"))
	os.WriteFile(filepath.Join(dir, "service-8080.yaml"), bytes.Replace(svc, []byte("targetPort: 80"), []byte("targetPort: 8080"), 1), 0o644)
	r0 := k.run(t, "", "apply", "--server-side", "--field-manager=other", "-f", "service-8080.yaml")
	if r0.err == nil || !strings.Contains(r0.stderr, "conflict") {
		t.Fatalf("server-side apply conflict: %v %s %s", r0.err, r0.stdout, r0.stderr)
	}
	k.ok(t, "apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "service-8080.yaml")
	if r := k.ok(t, "get", "svc", "nginx-service", "-o", "jsonpath={.spec.ports[*].targetPort}"); r != "8080" {
		t.Fatalf("after forced apply targetPort = %q", r)
	}

	// explain from the OpenAPI documents
	out = k.ok(t, "explain", "deployment.spec")
	mustContain(t, "explain", out, "DeploymentSpec", "replicas", "template", "strategy")

	// strict field validation of a typo
	os.WriteFile(filepath.Join(dir, "typo.yaml"), []byte(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: typo
spec:
  selector:
    matchLabels: {app: typo}
  template:
    metadata:
      labels: {app: typo}
    spec:
      containers:
      - name: c
        image: busybox
        imagePullPolicyy: Always
`), 0o644)
	r := k.run(t, "", "apply", "-f", "typo.yaml")
	if r.err == nil {
		t.Fatal("apply of a typo'd field succeeded")
	}
	mustContain(t, "strict validation", r.stderr, `strict decoding error: unknown field "spec.template.spec.containers[0].imagePullPolicyy"`)
	r = k.run(t, "", "apply", "--validate=warn", "-f", "typo.yaml")
	if r.err != nil {
		t.Fatalf("apply --validate=warn: %v %s", r.err, r.stderr)
	}
	mustContain(t, "warn validation", r.stderr, `unknown field "spec.template.spec.containers[0].imagePullPolicyy"`)
	// invalid object -> 422 with field causes
	r = k.run(t, "", "create", "deployment", "bad", "--image=busybox", "--replicas=-1")
	if r.err == nil || !strings.Contains(r.stderr, "spec.replicas") {
		t.Fatalf("negative replicas: %v %s", r.err, r.stderr)
	}

	// protobuf body (kubectl create deployment) and expose
	mustContain(t, "create deployment", k.ok(t, "create", "deployment", "web", "--image=nginx"), "deployment.apps/web created")
	mustContain(t, "expose", k.ok(t, "expose", "deployment", "web", "--port=8080"), "service/web exposed")
	out = k.ok(t, "get", "svc", "web", "-o", "jsonpath={.spec.type} {.spec.ports[0].targetPort}")
	if out != "ClusterIP 8080" {
		t.Fatalf("exposed service: %q", out)
	}

	// delete cascades to a ReplicaSet owned by the deployment
	uid := k.ok(t, "get", "deploy", "nginx-deployment", "-o", "jsonpath={.metadata.uid}")
	rs := `apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: nginx-deployment-abc
  ownerReferences:
  - apiVersion: apps/v1
    kind: Deployment
    name: nginx-deployment
    uid: ` + uid + `
    controller: true
spec:
  selector:
    matchLabels: {app: nginx}
  template:
    metadata:
      labels: {app: nginx}
    spec:
      containers:
      - name: nginx
        image: nginx
`
	if r := k.run(t, rs, "create", "-f", "-"); r.err != nil {
		t.Fatalf("create rs: %v %s", r.err, r.stderr)
	}
	mustContain(t, "delete -f", k.ok(t, "delete", "-f", "deployment.yaml"), `deployment.apps "nginx-deployment" deleted`)
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := k.run(t, "", "get", "rs", "nginx-deployment-abc")
		if r.err != nil && strings.Contains(r.stderr, "NotFound") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("owned ReplicaSet not garbage collected: %s %s", r.stdout, r.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	r = k.run(t, "", "get", "deploy", "nginx-deployment")
	if r.err == nil || !strings.Contains(r.stderr, `deployments.apps "nginx-deployment" not found`) {
		t.Fatalf("get after delete: %v %s", r.err, r.stderr)
	}

	// the other served resources answer with tables
	mustContain(t, "create configmap", k.ok(t, "create", "configmap", "cfg", "--from-literal=a=b"), "configmap/cfg created")
	mustContain(t, "create secret", k.ok(t, "create", "secret", "generic", "sec", "--from-literal=p=q"), "secret/sec created")
	out = k.ok(t, "get", "cm,secret,sa,ep,endpointslices,leases,events,nodes,ns")
	mustContain(t, "get many", out, "configmap/cfg", "DATA", "secret/sec", "Opaque", "serviceaccount/default", "namespace/kube-system", "Active")
	out = k.ok(t, "get", "secret", "sec", "-o", "jsonpath={.data.p}")
	if out != "cQ==" {
		t.Fatalf("secret data %q", out)
	}

	// namespaces with their default service account
	k.ok(t, "create", "namespace", "team-a")
	deadline = time.Now().Add(10 * time.Second)
	for k.run(t, "", "get", "sa", "default", "-n", "team-a").err != nil {
		if time.Now().After(deadline) {
			t.Fatal("no default service account in a new namespace")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// a wrong token gets 401
	r = k.run(t, "", "--token=wrong", "get", "pods")
	if r.err == nil || !strings.Contains(r.stderr, "Unauthorized") {
		t.Fatalf("wrong token: %v %s", r.err, r.stderr)
	}
}

// header returns the first line of a kubectl table, its columns separated
// by single spaces.
func header(out string) string {
	line, _, _ := strings.Cut(out, "\n")
	return strings.Join(strings.Fields(line), " ")
}

// kubectlColumnsAndStreams: kube-apiserver's columns for deployments, pods
// and services (plain and -o wide), get all with pods, describe of a pod and
// a service, and pods/log, exec and port-forward answering a clear 503
// Status (no node agent yet) instead of hanging.
func kubectlColumnsAndStreams(t *testing.T, k kubectl, dir string) {
	mustContain(t, "run", k.ok(t, "run", "p", "--image=nginx", "--port=80"), "pod/p created")
	if h := header(k.ok(t, "get", "deployment")); h != "NAME READY UP-TO-DATE AVAILABLE AGE" {
		t.Fatalf("get deployment columns: %q", h)
	}
	if h := header(k.ok(t, "get", "deployment", "-o", "wide")); h != "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR" {
		t.Fatalf("get deployment -o wide columns: %q", h)
	}
	out := k.ok(t, "get", "pods")
	if h := header(out); h != "NAME READY STATUS RESTARTS AGE" {
		t.Fatalf("get pods columns: %q", h)
	}
	if !regexp.MustCompile(`(?m)^p\s+0/1\s+Pending\s+0\s+\S+$`).MatchString(out) {
		t.Fatalf("get pods row:\n%s", out)
	}
	if h := header(k.ok(t, "get", "pods", "-o", "wide")); h != "NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES" {
		t.Fatalf("get pods -o wide columns: %q", h)
	}
	if h := header(k.ok(t, "get", "service")); h != "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE" {
		t.Fatalf("get service columns: %q", h)
	}
	if h := header(k.ok(t, "get", "service", "-o", "wide")); h != "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE SELECTOR" {
		t.Fatalf("get service -o wide columns: %q", h)
	}
	out = k.ok(t, "get", "all")
	mustContain(t, "get all", out, "pod/p", "service/kubernetes", "service/web", "deployment.apps/web")
	if strings.Contains(out, "configmap") || strings.Contains(out, "secret/") {
		t.Fatalf("get all lists resources outside the all category:\n%s", out)
	}
	mustContain(t, "describe pod", k.ok(t, "describe", "pod", "p"), "Name:", "Namespace:", "default", "Status:", "Pending", "Containers:", "nginx")
	mustContain(t, "describe service", k.ok(t, "describe", "service", "web"), "Name:", "web", "Type:", "ClusterIP", "IP:", "Port:", "8080/TCP")

	// the pod as a node agent would report it, so kubectl gets to the streams
	k.ok(t, "patch", "pod", "p", "--subresource=status", "--type=merge", "-p", `{"status":{"phase":"Running","podIP":"10.42.0.9"}}`)
	stream := func(what string, args ...string) {
		t.Helper()
		start := time.Now()
		r := k.run(t, "", args...)
		if r.err == nil {
			t.Fatalf("%s succeeded without a node agent: %s", what, r.stdout)
		}
		if time.Since(start) > 45*time.Second {
			t.Fatalf("%s hung", what)
		}
		if !strings.Contains(r.stderr+r.stdout, "no node agent is running") {
			t.Fatalf("%s: no clear error:\n%s%s", what, r.stdout, r.stderr)
		}
	}
	stream("logs", "logs", "p")
	stream("logs -f", "logs", "-f", "p")
	stream("exec", "exec", "p", "--", "true")
	stream("exec -it", "exec", "-i", "p", "--", "sh")
	stream("port-forward", "port-forward", "pod/p", "0:80")
	stream("attach", "attach", "p")
}

// kubectlBadInput: what kubectl prints for kube-apiserver's answers to bad
// input: invalid names and labels (422), an oversized object (413), a
// ConfigMap over 1 MiB (422 Too long), an unknown kind, malformed YAML.
func kubectlBadInput(t *testing.T, k kubectl, dir string) {
	fail := func(what, stdin string, want []string, args ...string) {
		t.Helper()
		r := k.run(t, stdin, args...)
		if r.err == nil {
			t.Fatalf("%s succeeded: %s", what, r.stdout)
		}
		mustContain(t, what, r.stderr, want...)
	}
	fail("invalid name", "", []string{`ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of`},
		"create", "configmap", "Bad_Name", "--from-literal=a=b")
	fail("invalid label", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lbl\n  labels: {\"bad key!\": v}\n",
		[]string{`The ConfigMap "lbl" is invalid: metadata.labels: Invalid value: "bad key!": name part must consist of alphanumeric characters`},
		"apply", "-f", "-")
	fail("invalid label value", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lbl\n  labels: {k: \"-v-\"}\n",
		[]string{`metadata.labels: Invalid value: "-v-": a valid label must be an empty string or consist of alphanumeric characters`},
		"create", "-f", "-")
	fail("invalid config key", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keys\ndata:\n  a b: c\n",
		[]string{`The ConfigMap "keys" is invalid: data[a b]: Invalid value: "a b": a valid config key must consist of alphanumeric characters`},
		"create", "-f", "-")
	bigFile := filepath.Join(dir, "big.bin")
	os.WriteFile(bigFile, bytes.Repeat([]byte("x"), 4<<20), 0o644)
	fail("oversized", "", []string{"Request entity too large: limit is 3145728"}, "create", "configmap", "big", "--from-file=big="+bigFile)
	os.WriteFile(bigFile, bytes.Repeat([]byte("x"), 3<<19), 0o644) // 1.5 MiB: under the body limit, over a ConfigMap's
	fail("ConfigMap over 1 MiB", "", []string{`ConfigMap "big" is invalid: []: Too long: `}, "create", "configmap", "big", "--from-file=big="+bigFile)
	fail("unknown kind", "apiVersion: v1\nkind: Widget\nmetadata:\n  name: w\n",
		[]string{`no matches for kind "Widget" in version "v1"`}, "apply", "-f", "-")
	fail("unknown resource", "", []string{`the server doesn't have a resource type "widgets"`}, "get", "widgets")
	fail("malformed YAML", "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n", []string{"error converting YAML to JSON"}, "apply", "-f", "-")
}
