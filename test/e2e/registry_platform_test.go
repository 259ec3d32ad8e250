package e2e

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// pushIndex pushes, as ref, an OCI index of the image at from (linux/amd64) and a small linux/arm64/v8
// image made here (one random layer).
func pushIndex(t *testing.T, from, ref string) {
	t.Helper()
	src, err := name.ParseReference(from, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	amd64, err := remote.Image(src)
	if err != nil {
		t.Fatalf("read %s: %v", from, err)
	}
	layer, err := random.Layer(4096, "application/vnd.oci.image.layer.v1.tar+gzip")
	if err != nil {
		t.Fatal(err)
	}
	arm, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := arm.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = "linux", "arm64", "v8"
	cf.Config.Cmd = []string{"/bin/true"}
	if arm, err = mutate.ConfigFile(arm, cf); err != nil {
		t.Fatal(err)
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd64, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	dst, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(dst, idx); err != nil {
		t.Fatalf("push index %s: %v", ref, err)
	}
}

// TestPullPlatform: --platform picks that entry of an index (the docker CLI sends it as the platform query
// of /images/create); a platform the index lacks fails with dockerd's error; no --platform is linux/amd64.
func TestPullPlatform(t *testing.T) {
	d := needDaemon(t)
	addr := startRegistry(t, d)
	base := addr + "/plat/base:1"
	setup := clients(t, d)[0]
	setup.ok(t, "tag", "busybox:latest", base)
	setup.ok(t, "push", base)
	setup.ok(t, "rmi", base)
	ref := addr + "/plat/multi:1"
	pushIndex(t, base, ref)

	forEachClient(t, func(t *testing.T, c cli) {
		arch := func() string {
			return strings.TrimSpace(c.ok(t, "image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", ref))
		}
		out := c.ok(t, "pull", "--platform", "linux/arm64", ref)
		if !strings.Contains(out, "Status: Downloaded newer image for "+ref) {
			t.Errorf("pull --platform linux/arm64:\n%s", out)
		}
		if got := arch(); got != "linux/arm64" {
			t.Errorf("after pull --platform linux/arm64: %s", got)
		}
		armID := strings.TrimSpace(c.ok(t, "image", "inspect", "-f", "{{.Id}}", ref))
		c.ok(t, "pull", "--platform", "linux/amd64", ref)
		if got := arch(); got != "linux/amd64" {
			t.Errorf("after pull --platform linux/amd64: %s", got)
		}
		c.ok(t, "rmi", armID) // untagged by the second pull; this test made it
		if got := strings.TrimSpace(c.ok(t, "run", "--rm", ref, "echo", "amd64 ok")); got != "amd64 ok" {
			t.Errorf("run: %q", got)
		}
		c.ok(t, "rmi", ref)
		c.ok(t, "pull", ref)
		if got := arch(); got != "linux/amd64" {
			t.Errorf("after pull without --platform: %s", got)
		}
		c.ok(t, "rmi", ref)

		r := c.run(t, "", "pull", "--platform", "linux/s390x", ref)
		want := "no matching manifest for linux/s390x in the manifest list entries"
		if r.Code != 1 || !strings.Contains(r.Stderr, want) {
			t.Errorf("unavailable platform: want %q\n%s", want, r)
		}
		if r := c.run(t, "", "image", "inspect", ref); r.Code == 0 {
			t.Errorf("image present after a failed pull")
		}
		r = c.run(t, "", "pull", "--platform", "linux/arm64/v7", ref)
		if r.Code != 1 || !strings.Contains(r.Stderr, "no matching manifest for linux/arm64/v7") {
			t.Errorf("unavailable variant: %s", r)
		}
	})
}
