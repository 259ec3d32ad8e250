package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKubeDeletionAndGC drives graceful pod deletion and the garbage
// collector (kubectl delete --cascade=background|orphan|foreground) with the
// real kubectl binaries, over ReplicaSets and Pods made by hand with
// ownerReferences (no controllers run yet).
func TestKubeDeletionAndGC(t *testing.T) {
	versions := kubectlVersions()
	if len(versions) == 0 {
		t.Skip("no kubectl binaries in /usr/lib/google-cloud-sdk/bin (set WHARF_KUBECTL_DIR)")
	}
	for _, v := range []string{"1.27", "1.30", "1.33"} {
		bin, ok := versions[v]
		if !ok {
			continue
		}
		t.Run(v, func(t *testing.T) {
			ks := startKube(t)
			dir := t.TempDir()
			k := kubectl{bin: bin, cache: filepath.Join(dir, "cache"), kubeconfig: ks.kubeconfig, home: ks.home, dir: dir}
			kubectlGracefulPods(t, k)
			kubectlCascade(t, k)
		})
	}
}

func kubePodYAML(name, node, owner string) string {
	y := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\n  labels: {app: gc}\n" + owner
	if node != "" {
		y += "spec:\n  nodeName: " + node + "\n"
	} else {
		y += "spec:\n"
	}
	return y + "  containers:\n  - name: c\n    image: nginx\n"
}

func kubeOwnerYAML(kind, name, uid string, block bool) string {
	b := "false"
	if block {
		b = "true"
	}
	return "  ownerReferences:\n  - apiVersion: apps/v1\n    kind: " + kind + "\n    name: " + name + "\n    uid: " + uid +
		"\n    controller: true\n    blockOwnerDeletion: " + b + "\n"
}

func kubeRSYAML(name, owner string) string {
	return "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: " + name + "\n" + owner +
		"spec:\n  selector:\n    matchLabels: {app: gc}\n  template:\n    metadata:\n      labels: {app: gc}\n" +
		"    spec:\n      containers:\n      - name: c\n        image: nginx\n"
}

func (k kubectl) create(t *testing.T, yaml string) {
	t.Helper()
	if r := k.run(t, yaml, "create", "-f", "-"); r.err != nil {
		t.Fatalf("create: %v\n%s\n%s", r.err, r.stderr, yaml)
	}
}

// notFound polls (the deadline only guards against a hang) until get says
// NotFound.
func (k kubectl) notFound(t *testing.T, what ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := k.run(t, "", append([]string{"get"}, what...)...)
		if r.err != nil && strings.Contains(r.stderr, "NotFound") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v never went away: %s %s", what, r.stdout, r.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func kubectlGracefulPods(t *testing.T, k kubectl) {
	// a scheduled pod stays Terminating until its node agent confirms
	k.create(t, kubePodYAML("sched", "node-1", ""))
	mustContain(t, "delete --wait=false", k.ok(t, "delete", "pod", "sched", "--wait=false"), `pod "sched" deleted`)
	mustContain(t, "get terminating", k.ok(t, "get", "pod", "sched"), "Terminating")
	out := k.ok(t, "get", "pod", "sched", "-o", "jsonpath={.metadata.deletionGracePeriodSeconds} {.metadata.deletionTimestamp}")
	if !strings.HasPrefix(out, "30 ") || len(out) < 10 {
		t.Fatalf("deletion fields: %q", out)
	}
	// --grace-period=0 --force deletes at once
	r := k.run(t, "", "delete", "pod", "sched", "--grace-period=0", "--force")
	if r.err != nil {
		t.Fatalf("force delete: %v %s", r.err, r.stderr)
	}
	mustContain(t, "force delete", r.stdout+r.stderr, `pod "sched"`)
	if r := k.run(t, "", "get", "pod", "sched"); r.err == nil || !strings.Contains(r.stderr, "NotFound") {
		t.Fatalf("force-deleted pod still there: %s %s", r.stdout, r.stderr)
	}
	// a pod never scheduled is deleted at once (kubectl waits for it)
	k.create(t, kubePodYAML("unsched", "", ""))
	mustContain(t, "delete unscheduled", k.ok(t, "delete", "pod", "unsched"), `pod "unsched" deleted`)
	if r := k.run(t, "", "get", "pod", "unsched"); r.err == nil {
		t.Fatalf("unscheduled pod still there: %s", r.stdout)
	}
}

// kubeTree makes a deployment, a ReplicaSet it owns and a Pod the
// ReplicaSet owns; it returns the deployment's uid.
func kubeTree(t *testing.T, k kubectl, name, node string, block bool) {
	t.Helper()
	if r := k.run(t, "", "create", "deployment", name, "--image=nginx"); r.err != nil {
		t.Fatalf("create deployment: %v %s", r.err, r.stderr)
	}
	uid := k.ok(t, "get", "deploy", name, "-o", "jsonpath={.metadata.uid}")
	k.create(t, kubeRSYAML(name+"-rs", kubeOwnerYAML("Deployment", name, uid, block)))
	rsUID := k.ok(t, "get", "rs", name+"-rs", "-o", "jsonpath={.metadata.uid}")
	k.create(t, kubePodYAML(name+"-pod", node, kubeOwnerYAML("ReplicaSet", name+"-rs", rsUID, block)))
}

func kubectlCascade(t *testing.T, k kubectl) {
	// background (the default)
	kubeTree(t, k, "bg", "", false)
	mustContain(t, "delete background", k.ok(t, "delete", "deployment", "bg", "--cascade=background"), `deployment.apps "bg" deleted`)
	k.notFound(t, "rs", "bg-rs")
	k.notFound(t, "pod", "bg-pod")

	// orphan: the ReplicaSet stays, without its ownerReference
	kubeTree(t, k, "or", "", false)
	mustContain(t, "delete orphan", k.ok(t, "delete", "deployment", "or", "--cascade=orphan"), `deployment.apps "or" deleted`)
	k.notFound(t, "deploy", "or")
	out := k.ok(t, "get", "rs", "or-rs", "-o", "jsonpath={.metadata.name}:{.metadata.ownerReferences}")
	if out != "or-rs:" {
		t.Fatalf("orphaned replicaset: %q", out)
	}
	mustContain(t, "orphan keeps grandchildren", k.ok(t, "get", "pod", "or-pod", "-o", "jsonpath={.metadata.ownerReferences[0].kind}"), "ReplicaSet")

	// foreground, all unscheduled: kubectl waits until the chain is gone
	kubeTree(t, k, "fg", "", true)
	mustContain(t, "delete foreground", k.ok(t, "delete", "deployment", "fg", "--cascade=foreground"), `deployment.apps "fg" deleted`)
	k.notFound(t, "deploy", "fg")
	k.notFound(t, "rs", "fg-rs")
	k.notFound(t, "pod", "fg-pod")

	// foreground over a scheduled pod: the owner waits, with its finalizer,
	// for the pod's confirmation
	kubeTree(t, k, "fw", "node-1", true)
	k.ok(t, "delete", "deployment", "fw", "--cascade=foreground", "--wait=false")
	out = k.ok(t, "get", "deploy", "fw", "-o", "jsonpath={.metadata.finalizers}")
	mustContain(t, "foreground finalizer", out, "foregroundDeletion")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(k.ok(t, "get", "pod", "fw-pod"), "Terminating") {
		if time.Now().After(deadline) {
			t.Fatal("dependent pod never Terminating")
		}
		time.Sleep(200 * time.Millisecond)
	}
	k.ok(t, "get", "deploy", "fw") // still there
	k.run(t, "", "delete", "pod", "fw-pod", "--grace-period=0", "--force")
	k.notFound(t, "rs", "fw-rs")
	k.notFound(t, "deploy", "fw")
}
