package build

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeLayer resolves parents inside the rootfs (symlinks followed), records the image's existing
// parents with their metadata, and refuses what needs extraction.
func TestWriteLayer(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"run", "srv/app", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(root, "tmp"), 0o777|os.ModeSticky)
	os.Chmod(filepath.Join(root, "srv"), 0o711)
	os.MkdirAll(filepath.Join(root, "var"), 0o755)
	os.Symlink("/run", filepath.Join(root, "var", "run"))
	os.Symlink("../../etc", filepath.Join(root, "srv", "escape")) // resolves inside the root

	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	add := func(h *tar.Header, body string) {
		h.Size = int64(len(body))
		h.ModTime = time.Unix(1700000000, 0)
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	add(&tar.Header{Name: "tmp/x.txt", Typeflag: tar.TypeReg, Mode: 0o644}, "x")
	add(&tar.Header{Name: "var/run/pid", Typeflag: tar.TypeReg, Mode: 0o600}, "1")
	add(&tar.Header{Name: "srv/app/new/", Typeflag: tar.TypeDir, Mode: 0o750}, "")
	add(&tar.Header{Name: "srv/app/new/f", Typeflag: tar.TypeReg, Mode: 0o644}, "f")
	add(&tar.Header{Name: "data/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(&tar.Header{Name: "data/l", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd", Mode: 0o777}, "")
	tw.Close()

	var out bytes.Buffer
	if err := writeLayer(&in, &out, root); err != nil {
		t.Fatal(err)
	}
	var got []string
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, h.Name+" "+os.FileMode(h.Mode).Perm().String()+map[bool]string{true: "t", false: ""}[h.Mode&0o1000 != 0])
	}
	want := []string{
		"tmp/ -rwxrwxrwxt", "tmp/x.txt -rw-r--r--",
		"var/ -rwxr-xr-x", "run/ -rwxr-xr-x", "run/pid -rw-------",
		"srv/ -rwx--x--x", "srv/app/ -rwxr-xr-x", "srv/app/new/ -rwxr-x---", "srv/app/new/f -rw-r--r--",
		"data/ -rwxr-xr-x", "data/l -rwxrwxrwx",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("layer entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Hard links and whiteout-like names need the extraction path.
	for _, h := range []*tar.Header{
		{Name: "a", Typeflag: tar.TypeLink, Linkname: "tmp/x.txt"},
		{Name: "tmp/.wh.x", Typeflag: tar.TypeReg},
		{Name: "tmp/x.txt/y", Typeflag: tar.TypeReg}, // a file where a directory is needed
	} {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		tw.WriteHeader(&tar.Header{Name: "tmp/x.txt", Typeflag: tar.TypeReg, Mode: 0o644})
		tw.WriteHeader(h)
		tw.Close()
		os.WriteFile(filepath.Join(root, "tmp", "x.txt"), nil, 0o644)
		if err := writeLayer(&b, io.Discard, root); !errors.Is(err, errNeedExtract) {
			t.Errorf("%s: %v, want errNeedExtract", h.Name, err)
		}
	}
}
