package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// ---- fixtures ----

func layerTar(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(files[n]))
	}
	tw.Close()
	return buf.Bytes()
}

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func configFor(t testing.TB, created string, layers ...[]byte) []byte {
	t.Helper()
	ts, _ := time.Parse(time.RFC3339, created)
	cfg := ocispec.Image{Created: &ts, Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}}
	cfg.Config.Cmd = []string{"sh"}
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = []digest.Digest{}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(l))
	}
	b, err := json.Marshal(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type entry struct {
	name, link string
	data       []byte
	symlink    bool
}

func tarOf(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, ModTime: time.Unix(0, 0)}
		switch {
		case e.symlink:
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		case strings.HasSuffix(e.name, "/"):
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.data)
	}
	tw.Close()
	return buf.Bytes()
}

// legacyArchive builds what `docker save` of Docker ≤24 writes: <v1id>/layer.tar (a symlink for
// a layer already written), <config-hex>.json, manifest.json, repositories.
func legacyArchive(t testing.TB, cfg []byte, layers [][]byte, tags []string) []byte {
	cfgHex := digest.FromBytes(cfg).Encoded()
	var es []entry
	var paths []string
	first := map[digest.Digest]string{}
	for i, l := range layers {
		id := fmt.Sprintf("%064x", i+1)
		es = append(es, entry{name: id + "/"}, entry{name: id + "/VERSION", data: []byte("1.0")}, entry{name: id + "/json", data: []byte(`{"id":"` + id + `"}`)})
		d := digest.FromBytes(l)
		if prev, ok := first[d]; ok {
			es = append(es, entry{name: id + "/layer.tar", symlink: true, link: "../" + prev + "/layer.tar"})
		} else {
			first[d] = id
			es = append(es, entry{name: id + "/layer.tar", data: l})
		}
		paths = append(paths, id+"/layer.tar")
	}
	es = append(es, entry{name: cfgHex + ".json", data: cfg})
	m, _ := json.Marshal([]dockerManifestEntry{{Config: cfgHex + ".json", RepoTags: tags, Layers: paths}})
	es = append(es, entry{name: "manifest.json", data: m}, entry{name: "repositories", data: []byte(`{}`)})
	return tarOf(t, es)
}

// ociArchive builds a pure OCI image layout tar with one (optionally index-wrapped) manifest.
func ociArchive(t testing.TB, cfg []byte, layers [][]byte, refName string, nested bool) []byte {
	es := []entry{{name: "oci-layout", data: []byte(`{"imageLayoutVersion":"1.0.0"}`)}}
	blob := func(b []byte) digest.Digest {
		d := digest.FromBytes(b)
		es = append(es, entry{name: "blobs/sha256/" + d.Encoded(), data: b})
		return d
	}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: blob(cfg), Size: int64(len(cfg))}}
	for _, l := range layers {
		mt := ocispec.MediaTypeImageLayer
		if l[0] == 0x1f {
			mt = ocispec.MediaTypeImageLayerGzip
		}
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: mt, Digest: blob(l), Size: int64(len(l))})
	}
	mb, _ := json.Marshal(&m)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: blob(mb), Size: int64(len(mb))}
	if nested {
		desc.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
		other := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("absent"), Size: 1,
			Platform: &ocispec.Platform{OS: "linux", Architecture: "s390x"}}
		ib, _ := json.Marshal(&ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{other, desc}})
		desc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: blob(ib), Size: int64(len(ib))}
	}
	if refName != "" {
		desc.Annotations = map[string]string{ocispec.AnnotationRefName: refName}
	}
	ib, _ := json.Marshal(&ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, Manifests: []ocispec.Descriptor{desc}})
	es = append(es, entry{name: "index.json", data: ib})
	return tarOf(t, es)
}

func openStore(t testing.TB) (*Store, string) {
	t.Helper()
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, root
}

func blobNames(t testing.TB, root string) []string {
	ents, err := os.ReadDir(filepath.Join(root, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func mustResolve(t testing.TB, s *Store, ref string) *Image {
	t.Helper()
	img, err := s.Resolve(ref)
	if err != nil {
		t.Fatalf("Resolve(%q): %v", ref, err)
	}
	return img
}

// ---- tests ----

func TestCreateResolveTagDelete(t *testing.T) {
	s, root := openStore(t)
	l1 := layerTar(t, map[string]string{"a": "one"})
	l2 := layerTar(t, map[string]string{"b": "two"})
	var cfg ocispec.Image
	cfg.Config.Cmd = []string{"sh"}
	img, err := s.Create(cfg, []io.Reader{bytes.NewReader(l1), bytes.NewReader(l2)}, "x")
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != digest.FromBytes(img.RawConfig) {
		t.Fatalf("ID %s is not the config digest", img.ID)
	}
	if got := img.Config.RootFS.DiffIDs; len(got) != 2 || got[0] != digest.FromBytes(l1) || got[1] != digest.FromBytes(l2) {
		t.Fatalf("diff IDs %v", got)
	}
	if img.Size != int64(len(l1)+len(l2)) {
		t.Fatalf("size %d", img.Size)
	}
	if len(img.RepoTags) != 1 || img.RepoTags[0] != "x:latest" {
		t.Fatalf("RepoTags %v", img.RepoTags)
	}
	hex := img.ID.Encoded()
	for _, ref := range []string{"x", "x:latest", "docker.io/library/x:latest", "library/x", img.ID.String(), hex, hex[:12], "sha256:" + hex[:5]} {
		if got := mustResolve(t, s, ref); got.ID != img.ID {
			t.Fatalf("Resolve(%q) = %s", ref, got.ID)
		}
	}
	_, err = s.Resolve("nope")
	if !IsNotFound(err) || err.Error() != "No such image: nope:latest" {
		t.Fatalf("not found error: %v", err)
	}
	_, err = s.Resolve("Busybox")
	if !IsInvalidArgument(err) || !strings.HasPrefix(err.Error(), "invalid reference format") {
		t.Fatalf("invalid ref error: %v", err)
	}

	if err := s.Tag("x", "localhost:5000/x:1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(hex[:8], "y:2"); err != nil {
		t.Fatal(err)
	}
	got := mustResolve(t, s, "localhost:5000/x:1")
	if want := []string{"localhost:5000/x:1", "x:latest", "y:2"}; strings.Join(got.RepoTags, ",") != strings.Join(want, ",") {
		t.Fatalf("RepoTags %v, want %v", got.RepoTags, want)
	}
	if err := s.Tag("x", "x@sha256:"+hex); !IsInvalidArgument(err) {
		t.Fatalf("tag with digest: %v", err)
	}
	if err := s.AddRepoDigest(img.ID, "localhost:5000/x@sha256:"+strings.Repeat("a", 64)); err != nil {
		t.Fatal(err)
	}
	if got := mustResolve(t, s, "localhost:5000/x@sha256:"+strings.Repeat("a", 64)); got.ID != img.ID || len(got.RepoDigests) != 1 {
		t.Fatalf("by digest: %s %v", got.ID, got.RepoDigests)
	}
	un, err := s.Untag("y:2")
	if err != nil || un.ID != img.ID {
		t.Fatalf("Untag: %v", err)
	}
	if _, err := s.Untag("y:2"); !IsNotFound(err) || err.Error() != "No such image: y:2" {
		t.Fatalf("second Untag: %v", err)
	}

	// A second image sharing layer l1: deleting the first keeps l1's blob.
	img2, err := s.Create(ocispec.Image{}, []io.Reader{bytes.NewReader(l1)}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(img2.RepoTags) != 0 {
		t.Fatalf("untagged image has tags %v", img2.RepoTags)
	}
	list, err := s.List()
	if err != nil || len(list) != 2 {
		t.Fatalf("List: %d %v", len(list), err)
	}
	if err := s.Delete(img.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve("x"); !IsNotFound(err) {
		t.Fatalf("resolve after delete: %v", err)
	}
	want := []string{digest.FromBytes(l1).Encoded(), img2.ID.Encoded()}
	sort.Strings(want)
	if got := blobNames(t, root); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("blobs after delete %v, want %v", got, want)
	}
	if err := s.Delete(img.ID); !IsNotFound(err) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestShortIDAmbiguous(t *testing.T) {
	s, _ := openStore(t)
	byFirst := map[byte][]digest.Digest{}
	for i := 0; i < 17; i++ { // pigeonhole: two IDs share their first hex digit
		img, err := s.Create(ocispec.Image{Config: ocispec.ImageConfig{Env: []string{fmt.Sprint("N=", i)}}}, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		c := img.ID.Encoded()[0]
		byFirst[c] = append(byFirst[c], img.ID)
	}
	for c, ids := range byFirst {
		if len(ids) > 1 {
			if _, err := s.Resolve(string(c)); !IsNotFound(err) {
				t.Fatalf("ambiguous prefix %c resolved: %v", c, err)
			}
			if got := mustResolve(t, s, ids[0].Encoded()[:20]); got.ID != ids[0] {
				t.Fatal("longer prefix did not resolve")
			}
			return
		}
	}
	t.Fatal("no shared prefix")
}

func TestCreateWithParent(t *testing.T) {
	s, _ := openStore(t)
	base, err := s.Create(ocispec.Image{}, []io.Reader{bytes.NewReader(layerTar(t, map[string]string{"a": "1"}))}, "base")
	if err != nil {
		t.Fatal(err)
	}
	top := layerTar(t, map[string]string{"b": "2"})
	child, err := s.CreateImage(CreateOptions{Parent: base.ID, Layers: []io.Reader{bytes.NewReader(top)}, Ref: "child:1"})
	if err != nil {
		t.Fatal(err)
	}
	if child.Parent != base.ID || len(child.Layers) != 2 || child.Layers[0] != base.Layers[0] || child.Layers[1].DiffID != digest.FromBytes(top) {
		t.Fatalf("child %+v", child)
	}
	if got := child.ChainIDs(); len(got) != 2 || got[0] != base.Layers[0].DiffID {
		t.Fatalf("chain IDs %v", got)
	}
}

func TestLoadLegacyDockerArchive(t *testing.T) {
	s, _ := openStore(t)
	l1 := layerTar(t, map[string]string{"bin/sh": "shell"})
	l2 := layerTar(t, map[string]string{"etc/x": "x"})
	cfg := configFor(t, "2024-01-02T03:04:05Z", l1, l2, l1) // l1 twice: written once, then a symlink
	res, err := s.Load(bytes.NewReader(legacyArchive(t, cfg, [][]byte{l1, l2, l1}, []string{"busybox:latest", "localhost:5000/bb:1"})))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Refs, ",") != "busybox:latest,localhost:5000/bb:1" || len(res.IDs) != 0 {
		t.Fatalf("result %+v", res)
	}
	img := mustResolve(t, s, "busybox")
	if img.ID != digest.FromBytes(cfg) || len(img.Layers) != 3 || img.Created.Year() != 2024 {
		t.Fatalf("image %+v", img)
	}
	if img.Size != int64(2*len(l1)+len(l2)) {
		t.Fatalf("size %d", img.Size)
	}
	rc, err := s.OpenBlob(img.Layers[1].Blob)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(b, l2) {
		t.Fatal("layer blob content differs")
	}

	// A gzip-compressed layer and an untagged image; the whole archive gzip'd too.
	gl := gz(t, l2)
	cfg2 := configFor(t, "2024-01-03T00:00:00Z", l2)
	res, err = s.Load(bytes.NewReader(gz(t, legacyArchive(t, cfg2, [][]byte{gl}, nil))))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Refs) != 0 || len(res.IDs) != 1 || res.IDs[0] != digest.FromBytes(cfg2) {
		t.Fatalf("result %+v", res)
	}
	img2 := mustResolve(t, s, res.IDs[0].String())
	if l := img2.Layers[0]; l.DiffID != digest.FromBytes(l2) || l.Blob != digest.FromBytes(gl) || l.MediaType != ocispec.MediaTypeImageLayerGzip || l.Size != int64(len(gl)) {
		t.Fatalf("gzip layer %+v", l)
	}
	if img2.Size != int64(len(l2)) {
		t.Fatalf("size %d, want uncompressed %d", img2.Size, len(l2))
	}
}

func TestLoadOCILayout(t *testing.T) {
	s, _ := openStore(t)
	l1 := layerTar(t, map[string]string{"a": "a"})
	l2 := layerTar(t, map[string]string{"b": "b"})
	cfg := configFor(t, "2024-01-02T03:04:05Z", l1, l2)
	res, err := s.Load(bytes.NewReader(ociArchive(t, cfg, [][]byte{l1, gz(t, l2)}, "example.com/app:v1", true)))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Refs, ",") != "example.com/app:v1" {
		t.Fatalf("result %+v", res)
	}
	if img := mustResolve(t, s, "example.com/app:v1"); img.ID != digest.FromBytes(cfg) {
		t.Fatalf("ID %s", img.ID)
	}
	// A bare tag in ref.name names no repository: loaded by ID.
	cfg2 := configFor(t, "2024-01-05T00:00:00Z", l1)
	res, err = s.Load(bytes.NewReader(ociArchive(t, cfg2, [][]byte{l1}, "latest", false)))
	if err != nil || len(res.IDs) != 1 || len(res.Refs) != 0 {
		t.Fatalf("bare tag: %+v %v", res, err)
	}
}

func TestLoadRejectsBadArchives(t *testing.T) {
	s, root := openStore(t)
	l1 := layerTar(t, map[string]string{"a": "a"})
	l2 := layerTar(t, map[string]string{"b": "b"})
	cfg := configFor(t, "2024-01-02T03:04:05Z", l1)
	_, err := s.Load(bytes.NewReader(legacyArchive(t, cfg, [][]byte{l2}, []string{"bad:1"})))
	if !IsInvalidArgument(err) || !strings.Contains(err.Error(), "invalid diffID for layer 0") {
		t.Fatalf("diffID mismatch: %v", err)
	}
	_, err = s.Load(bytes.NewReader(tarOf(t, []entry{{name: "hello", data: []byte("x")}})))
	if !IsInvalidArgument(err) {
		t.Fatalf("no manifest: %v", err)
	}
	// OCI blob whose content does not match its name.
	bad := ociArchive(t, cfg, [][]byte{l1}, "x:1", false)
	bad = bytes.Replace(bad, l1[512:513], []byte("Z"), 1) // corrupt the layer content (first data byte)
	if _, err = s.Load(bytes.NewReader(bad)); err == nil {
		t.Fatal("corrupt OCI blob accepted")
	}
	if _, err := s.Resolve("bad:1"); !IsNotFound(err) {
		t.Fatalf("failed load left an image: %v", err)
	}
	if got := blobNames(t, root); len(got) != 0 {
		t.Fatalf("failed loads left blobs %v", got)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "tmp")); len(ents) != 0 {
		t.Fatalf("failed loads left temp files")
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	s, _ := openStore(t)
	l1 := layerTar(t, map[string]string{"a": "a"})
	l2 := layerTar(t, map[string]string{"b": "b"})
	cfg := configFor(t, "2024-01-02T03:04:05Z", l1, l2)
	if _, err := s.Load(bytes.NewReader(legacyArchive(t, cfg, [][]byte{l1, gz(t, l2)}, []string{"rt:1", "rt:2", "other:1"}))); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Save(&buf, []string{"rt"}); err != nil { // a name: all its tags
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(bytes.NewReader(buf.Bytes()))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	for _, want := range []string{"manifest.json", "index.json", "oci-layout", "blobs/sha256/" + digest.FromBytes(cfg).Encoded()} {
		if !contains(names, want) {
			t.Fatalf("saved archive lacks %s: %v", want, names)
		}
	}
	s2, _ := openStore(t)
	res, err := s2.Load(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Refs, ",") != "rt:1,rt:2" {
		t.Fatalf("refs %v", res.Refs)
	}
	a, b := mustResolve(t, s, "rt:1"), mustResolve(t, s2, "rt:2")
	if a.ID != b.ID || a.Size != b.Size || len(b.Layers) != 2 || a.Layers[1] != b.Layers[1] {
		t.Fatalf("round trip differs:\n%+v\n%+v", a.Layers, b.Layers)
	}
	// The OCI-only view of the same archive loads too (index.json when manifest.json is absent).
	var oci bytes.Buffer
	tw := tar.NewWriter(&oci)
	tr = tar.NewReader(bytes.NewReader(buf.Bytes()))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if h.Name == "manifest.json" {
			continue
		}
		tw.WriteHeader(h)
		io.Copy(tw, tr)
	}
	tw.Close()
	s3, _ := openStore(t)
	res, err = s3.Load(&oci)
	if err != nil || strings.Join(res.Refs, ",") != "rt:1,rt:2" {
		t.Fatalf("OCI view: %+v %v", res, err)
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// TestOpenRecovers simulates crashes: leftover temp files (spool files, half-written blobs),
// blobs written by a Load whose metadata never committed, a Delete interrupted after its
// metadata commit, and a reference left pointing at a missing image.
func TestOpenRecovers(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	l1 := layerTar(t, map[string]string{"a": "a"})
	keep, err := s.Create(ocispec.Image{}, []io.Reader{bytes.NewReader(l1)}, "keep")
	if err != nil {
		t.Fatal(err)
	}
	gone, err := s.Create(ocispec.Image{Config: ocispec.ImageConfig{Env: []string{"X=1"}}}, []io.Reader{bytes.NewReader(layerTar(t, map[string]string{"g": "g"}))}, "gone")
	if err != nil {
		t.Fatal(err)
	}
	// Interrupted Delete: the record goes, the blobs stay.
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketImages).Delete([]byte(gone.ID)) }); err != nil {
		t.Fatal(err)
	}
	s.Close()

	blobs := filepath.Join(root, "blobs", "sha256")
	orphan := []byte("blob of a load that never committed")
	os.WriteFile(filepath.Join(blobs, digest.FromBytes(orphan).Encoded()), orphan, 0o644)
	os.WriteFile(filepath.Join(blobs, ".tmp-123456"), []byte("half a blo"), 0o644)
	os.MkdirAll(filepath.Join(root, "tmp", "load-999"), 0o700)
	os.WriteFile(filepath.Join(root, "tmp", "load-999", "spool-1"), []byte("partial"), 0o600)
	os.WriteFile(filepath.Join(root, "tmp", "spool-2"), []byte("partial"), 0o600)

	s, err = Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := mustResolve(t, s, "keep"); got.ID != keep.ID {
		t.Fatal("kept image lost")
	}
	if _, err := s.Resolve("gone"); !IsNotFound(err) {
		t.Fatalf("dangling tag still resolves: %v", err)
	}
	want := []string{digest.FromBytes(l1).Encoded(), keep.ID.Encoded()}
	sort.Strings(want)
	if got := blobNames(t, root); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("blobs after recovery %v, want %v", got, want)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "tmp")); len(ents) != 0 {
		t.Fatalf("tmp not cleaned: %d entries", len(ents))
	}
	// The store still works.
	if _, err := s.Load(bytes.NewReader(legacyArchive(t, configFor(t, "2024-01-01T00:00:00Z", l1), [][]byte{l1}, []string{"again:1"}))); err != nil {
		t.Fatal(err)
	}
}
