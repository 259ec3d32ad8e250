package build

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The context is unpacked (into a tmpfs of its own when running as root) with the digests of its
// files taken from the stream; a file changed after extraction is not trusted to the index.
func TestPrepareContextIndex(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := time.Unix(1700000000, 123456789)
	add := func(h *tar.Header, body string) {
		h.Size, h.ModTime, h.Format = int64(len(body)), mt, tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	add(&tar.Header{Name: "Dockerfile", Typeflag: tar.TypeReg, Mode: 0o644}, "FROM scratch\n")
	add(&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(&tar.Header{Name: "d/a.txt", Typeflag: tar.TypeReg, Mode: 0o600}, "aaa")
	add(&tar.Header{Name: "dup", Typeflag: tar.TypeReg, Mode: 0o644}, "one")
	add(&tar.Header{Name: "dup", Typeflag: tar.TypeReg, Mode: 0o644}, "two")
	add(&tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "d/a.txt"}, "")
	tw.Close()

	tmp := t.TempDir()
	dir, idx, release, err := prepareContext(&buf, tmp)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		release()
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("context dir left behind: %v", err)
		}
	}()
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	a := filepath.Join(dir, "d", "a.txt")
	fi, err := os.Lstat(a)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := idx.lookup(a, fi); !ok || got != sum("aaa") {
		t.Errorf("index of d/a.txt: %q %v (mtime on disk %v)", got, ok, fi.ModTime())
	}
	if _, ok := idx[filepath.Join(dir, "dup")]; ok {
		t.Error("a name seen twice is indexed")
	}
	if _, ok := idx[filepath.Join(dir, "l")]; ok {
		t.Error("a symlink is indexed")
	}
	// Changed after extraction: not from the index.
	os.WriteFile(a, []byte("bbbb"), 0o600)
	fi, _ = os.Lstat(a)
	if _, ok := idx.lookup(a, fi); ok {
		t.Error("index used for a changed file")
	}
	// The digest of a COPY source is the same with and without the index.
	res, err := resolveSources(dir, []string{"d"}, true)
	if err != nil {
		t.Fatal(err)
	}
	d1, err := sourceDigest(res, idx)
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := sourceDigest(res)
	if d1 != d2 {
		t.Errorf("digest with index %s, without %s", d1, d2)
	}
}
