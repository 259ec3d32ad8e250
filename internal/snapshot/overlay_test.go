package snapshot

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	needRoot(t)
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// prepare mounts and registers the unmount + removal with t.Cleanup (runs before TempDir's removal).
func prepare(t *testing.T, s *Store, key string, lowers ...digest.Digest) string {
	t.Helper()
	rootfs, err := s.Prepare(key, lowers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Remove(key); err != nil {
			t.Errorf("cleanup: %v", err)
			unix.Unmount(rootfs, unix.MNT_DETACH)
		}
	})
	return rootfs
}

func opener(b []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

func chain(parent digest.Digest, layer []byte) digest.Digest {
	d := digest.FromBytes(layer)
	if parent == "" {
		return d
	}
	return digest.FromString(parent.String() + " " + d.String())
}

func unpack(t *testing.T, s *Store, parent digest.Digest, layer []byte) digest.Digest {
	t.Helper()
	id := chain(parent, layer)
	if err := s.Unpack(id, opener(layer)); err != nil {
		t.Fatal(err)
	}
	return id
}

func readTar(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h.Name)
	}
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

func TestOverlayTwoLayers(t *testing.T) {
	s := newStore(t)
	l1 := mkTar(t,
		tent{name: "etc/", typ: tar.TypeDir},
		tent{name: "etc/passwd", data: "root:x:0:0\n"},
		tent{name: "a.txt", data: "a1"},
		tent{name: "gone.txt", data: "bye"},
		tent{name: "d/", typ: tar.TypeDir},
		tent{name: "d/one", data: "1"},
		tent{name: "d/two", data: "2"},
		tent{name: "opq/", typ: tar.TypeDir},
		tent{name: "opq/old", data: "old"})
	l2 := mkTar(t,
		tent{name: "b.txt", data: "b2"},
		tent{name: ".wh.gone.txt"},
		tent{name: "opq/", typ: tar.TypeDir},
		tent{name: "opq/.wh..wh..opq"},
		tent{name: "opq/new", data: "new"})
	var gzl2 bytes.Buffer
	zw := gzip.NewWriter(&gzl2)
	zw.Write(l2)
	zw.Close()
	c1 := unpack(t, s, "", l1)
	c2 := chain(c1, l2)
	if err := s.Unpack(c2, opener(gzl2.Bytes())); err != nil { // gzip'd layer
		t.Fatal(err)
	}
	if !s.HasLayer(c1) || !s.HasLayer(c2) {
		t.Fatal("layers not unpacked")
	}
	// Unpack again: open must not be called.
	if err := s.Unpack(c1, func() (io.ReadCloser, error) { t.Fatal("open called for an unpacked layer"); return nil, nil }); err != nil {
		t.Fatal(err)
	}

	rootfs := prepare(t, s, "ctr1", c1, c2)
	if again, err := s.Prepare("ctr1", []digest.Digest{c1, c2}); err != nil || again != rootfs {
		t.Fatalf("second Prepare: %s %v", again, err)
	}
	for p, want := range map[string]bool{"etc/passwd": true, "a.txt": true, "b.txt": true, "gone.txt": false,
		"d/one": true, "opq/old": false, "opq/new": true} {
		if exists(filepath.Join(rootfs, p)) != want {
			t.Fatalf("merged view: %s exists=%v, want %v", p, !want, want)
		}
	}

	// The container writes.
	must(t, os.WriteFile(filepath.Join(rootfs, "new.txt"), []byte("new"), 0o644))
	must(t, os.WriteFile(filepath.Join(rootfs, "a.txt"), []byte("a changed"), 0o644))
	must(t, os.Remove(filepath.Join(rootfs, "d/one")))
	must(t, os.RemoveAll(filepath.Join(rootfs, "opq")))
	must(t, os.Mkdir(filepath.Join(rootfs, "opq"), 0o755))
	must(t, os.WriteFile(filepath.Join(rootfs, "opq/fresh"), nil, 0o644))

	var diff bytes.Buffer
	if err := s.Diff("ctr1", &diff); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(readTar(t, diff.Bytes()), " ")
	want := "a.txt d/ d/.wh.one new.txt opq/ opq/.wh..wh..opq opq/fresh"
	if got != want {
		t.Fatalf("diff entries\n got %s\nwant %s", got, want)
	}
	var diff2 bytes.Buffer
	must(t, s.Diff("ctr1", &diff2))
	if !bytes.Equal(diff.Bytes(), diff2.Bytes()) {
		t.Fatal("Diff of an unchanged upper dir is not deterministic")
	}

	// The diff as a third layer reproduces the container's view.
	c3 := unpack(t, s, c2, diff.Bytes())
	rootfs2 := prepare(t, s, "ctr2", c1, c2, c3)
	for p, want := range map[string]bool{"a.txt": true, "new.txt": true, "d/one": false, "d/two": true, "gone.txt": false,
		"opq/new": false, "opq/fresh": true} {
		if exists(filepath.Join(rootfs2, p)) != want {
			t.Fatalf("committed view: %s exists=%v, want %v", p, !want, want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(rootfs2, "a.txt")); string(b) != "a changed" {
		t.Fatalf("a.txt = %q", b)
	}

	// Unmount keeps the upper dir; Prepare mounts it again.
	must(t, s.Unmount("ctr1"))
	if mounted(rootfs) {
		t.Fatal("still mounted")
	}
	if !exists(filepath.Join(s.UpperDir("ctr1"), "new.txt")) {
		t.Fatal("upper dir lost on unmount")
	}
	if _, err := s.Prepare("ctr1", []digest.Digest{c1}); err == nil {
		t.Fatal("Prepare with other layers accepted")
	}
	rootfs, err := s.Prepare("ctr1", []digest.Digest{c1, c2})
	if err != nil || !exists(filepath.Join(rootfs, "new.txt")) {
		t.Fatalf("remount: %v", err)
	}

	if err := s.RemoveLayer(c3); err == nil || !strings.Contains(err.Error(), "in use by container ctr2") {
		t.Fatalf("RemoveLayer of a used layer: %v", err)
	}
	must(t, s.Remove("ctr2"))
	if exists(filepath.Join(s.Root(), "containers", "ctr2")) {
		t.Fatal("Remove left the container dir")
	}
	must(t, s.RemoveLayer(c3))
	if s.HasLayer(c3) {
		t.Fatal("layer still there")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestOverlayScratch(t *testing.T) {
	s := newStore(t)
	rootfs := prepare(t, s, "scratch")
	must(t, os.WriteFile(filepath.Join(rootfs, "hello"), []byte("hi"), 0o644))
	ents, _ := os.ReadDir(s.emptyDir())
	if len(ents) != 0 {
		t.Fatal("write went into the shared empty lower dir")
	}
	var diff bytes.Buffer
	must(t, s.Diff("scratch", &diff))
	if got := readTar(t, diff.Bytes()); len(got) != 1 || got[0] != "hello" {
		t.Fatalf("diff %v", got)
	}
}

// More lower dirs than fit in one page of mount options.
func TestOverlayManyLayers(t *testing.T) {
	s := newStore(t)
	var ids []digest.Digest
	var parent digest.Digest
	for i := 0; i < 120; i++ {
		parent = unpack(t, s, parent, mkTar(t, tent{name: fmt.Sprintf("f%03d", i), data: fmt.Sprint(i)}, tent{name: "top", data: fmt.Sprint(i)}))
		ids = append(ids, parent)
	}
	rootfs, err := s.Prepare("many", ids)
	if err != nil {
		if strings.Contains(err.Error(), "Linux 6.8+") {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Remove("many") })
	if !exists(filepath.Join(rootfs, "f000")) || !exists(filepath.Join(rootfs, "f119")) {
		t.Fatal("merged view lacks layers")
	}
	if b, _ := os.ReadFile(filepath.Join(rootfs, "top")); string(b) != "119" {
		t.Fatalf("top = %q: layer order wrong", b)
	}
}

// A crash while unpacking leaves a temp dir: it is invisible and New removes it.
func TestUnpackCrashLeftovers(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	s, err := New(root)
	must(t, err)
	layer := mkTar(t, tent{name: "x", data: "x"})
	id := chain("", layer)
	half := filepath.Join(root, "layers", ".tmp-"+id.Encoded()[:12]+"-123")
	must(t, os.MkdirAll(filepath.Join(half, "fs", "partial"), 0o755))
	if s.HasLayer(id) {
		t.Fatal("half-unpacked layer visible")
	}
	// A failed unpack (bad tar entry) leaves nothing either.
	bad := chain("", []byte("bad"))
	if err := s.Unpack(bad, opener(mkTar(t, tent{name: "../evil", data: "x"}))); err == nil {
		t.Fatal("bad layer unpacked")
	}
	if s.HasLayer(bad) {
		t.Fatal("failed layer visible")
	}
	s, err = New(root)
	must(t, err)
	if exists(half) {
		t.Fatal("New kept the temp dir")
	}
	ents, _ := os.ReadDir(filepath.Join(root, "layers"))
	if len(ents) != 0 {
		t.Fatalf("leftovers: %v", ents)
	}
	must(t, s.Unpack(id, opener(layer)))
	if !s.HasLayer(id) {
		t.Fatal("unpack after recovery failed")
	}
}

// The lowers file is not fsync'd: after a power loss it may be empty. Such a snapshot is still
// prepared (the file written again), and its writable layer keeps what it had; a wrong one is refused.
func TestPrepareAfterTornLowers(t *testing.T) {
	s := newStore(t)
	rootfs := prepare(t, s, "torn")
	must(t, os.WriteFile(filepath.Join(rootfs, "kept"), []byte("x"), 0o644))
	must(t, s.Unmount("torn"))
	must(t, os.WriteFile(filepath.Join(s.containersDir(), "torn", "lowers"), nil, 0o644))
	rootfs, err := s.Prepare("torn", nil)
	must(t, err)
	if b, err := os.ReadFile(filepath.Join(rootfs, "kept")); err != nil || string(b) != "x" {
		t.Fatalf("writable layer after re-prepare: %q %v", b, err)
	}
	if b, _ := os.ReadFile(filepath.Join(s.containersDir(), "torn", "lowers")); len(b) == 0 {
		t.Fatal("lowers not written again")
	}
	must(t, s.Unmount("torn"))
	must(t, os.WriteFile(filepath.Join(s.containersDir(), "torn", "lowers"), []byte("sha256:0000\n"), 0o644))
	if _, err := s.Prepare("torn", nil); err == nil {
		t.Fatal("a snapshot with different lowers was prepared")
	}
}
