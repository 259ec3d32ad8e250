package snapshot

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type tent struct {
	name     string
	typ      byte
	data     string
	link     string
	mode     int64
	pax      map[string]string
	maj, min int64
}

func mkTar(t testing.TB, ents ...tent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, ModTime: time.Unix(1600000000, 0),
			PAXRecords: e.pax, Devmajor: e.maj, Devminor: e.min}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.data))
	}
	tw.Close()
	return buf.Bytes()
}

// sandbox is outer/{dest/, secret}: extraction goes into dest; anything else appearing in
// outer, or a change to secret, is an escape.
type sandbox struct {
	outer, dest, secret string
}

func newSandbox(t testing.TB) *sandbox {
	outer := t.TempDir()
	sb := &sandbox{outer: outer, dest: filepath.Join(outer, "dest"), secret: filepath.Join(outer, "secret")}
	if err := os.Mkdir(sb.dest, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sb.secret, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	return sb
}

func (sb *sandbox) check(t testing.TB) {
	t.Helper()
	ents, err := os.ReadDir(sb.outer)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "dest,secret" {
		t.Fatalf("something was written outside dest: %v", names)
	}
	var st unix.Stat_t
	if err := unix.Lstat(sb.secret, &st); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(sb.secret)
	if string(b) != "secret" || st.Nlink != 1 || st.Mode&0o777 != 0o600 || st.Uid != uint32(os.Getuid()) {
		t.Fatalf("secret changed: %q nlink=%d mode=%o uid=%d", b, st.Nlink, st.Mode&0o777, st.Uid)
	}
}

func wantInvalid(t *testing.T, err error, reason string) {
	t.Helper()
	var ie *InvalidEntryError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), reason) {
		t.Fatalf("got error %v, want an invalid tar entry error containing %q", err, reason)
	}
	t.Logf("error: %v", err)
}

func needRoot(t testing.TB) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// modes runs f for docker cp extraction and (as root) for layer extraction.
func modes(t *testing.T, f func(t *testing.T, extract func(data []byte, sb *sandbox) error, layer bool)) {
	t.Run("cp", func(t *testing.T) {
		f(t, func(data []byte, sb *sandbox) error {
			return ExtractTar(bytes.NewReader(data), sb.dest, ExtractOptions{Root: sb.dest})
		}, false)
	})
	t.Run("layer", func(t *testing.T) {
		needRoot(t)
		f(t, func(data []byte, sb *sandbox) error { return extractLayer(bytes.NewReader(data), sb.dest) }, true)
	})
}

func TestExtractDotDot(t *testing.T) {
	modes(t, func(t *testing.T, extract func([]byte, *sandbox) error, _ bool) {
		for _, name := range []string{"../x", "a/../../x", "..", "./../secret"} {
			sb := newSandbox(t)
			err := extract(mkTar(t, tent{name: "ok", data: "fine"}, tent{name: name, data: "evil"}), sb)
			wantInvalid(t, err, "path escapes the layer")
			sb.check(t)
		}
	})
}

func TestExtractAbsolute(t *testing.T) {
	modes(t, func(t *testing.T, extract func([]byte, *sandbox) error, _ bool) {
		sb := newSandbox(t)
		abs := filepath.Join(sb.outer, "secret") // an absolute host path: made relative to dest
		if err := extract(mkTar(t, tent{name: abs, data: "evil"}, tent{name: "/etc/x", data: "x"}), sb); err != nil {
			t.Fatal(err)
		}
		sb.check(t)
		if b, err := os.ReadFile(filepath.Join(sb.dest, abs)); err != nil || string(b) != "evil" {
			t.Fatalf("absolute entry not made relative: %v", err)
		}
		if _, err := os.Stat(filepath.Join(sb.dest, "etc/x")); err != nil {
			t.Fatal(err)
		}
	})
}

// A symlink pointing out may be created, but nothing may be written through it.
func TestExtractSymlinkEscape(t *testing.T) {
	modes(t, func(t *testing.T, extract func([]byte, *sandbox) error, layer bool) {
		for _, target := range []string{"..", "../", "/", "../../../..", "SB_OUTER"} {
			sb := newSandbox(t)
			if target == "SB_OUTER" {
				target = sb.outer
			}
			data := mkTar(t,
				tent{name: "link", typ: tar.TypeSymlink, link: target},
				tent{name: "link/secret", data: "evil"},
				tent{name: "link/newdir/f", data: "evil"})
			err := extract(data, sb)
			if layer {
				wantInvalid(t, err, `path goes through symlink "link"`)
			} else if err != nil && target != sb.outer {
				// cp mode resolves the symlink inside the root, like Docker's chrooted extraction
				// (a link to a path that does not exist inside the root fails, as in Docker).
				t.Fatalf("cp mode: %v", err)
			}
			sb.check(t)
			if l, err := os.Readlink(filepath.Join(sb.dest, "link")); err != nil || l != target {
				t.Fatalf("symlink not created as is: %q %v", l, err)
			}
		}
	})
}

// An entry replacing a symlink replaces the link, never what it points to.
func TestExtractOverSymlink(t *testing.T) {
	modes(t, func(t *testing.T, extract func([]byte, *sandbox) error, _ bool) {
		sb := newSandbox(t)
		data := mkTar(t,
			tent{name: "s", typ: tar.TypeSymlink, link: sb.secret},
			tent{name: "s", data: "new content"},
			tent{name: "d", typ: tar.TypeSymlink, link: sb.outer},
			tent{name: "d", typ: tar.TypeDir})
		if err := extract(data, sb); err != nil {
			t.Fatal(err)
		}
		sb.check(t)
		if b, _ := os.ReadFile(filepath.Join(sb.dest, "s")); string(b) != "new content" {
			t.Fatalf("got %q", b)
		}
	})
}

func TestExtractHardlinkOut(t *testing.T) {
	modes(t, func(t *testing.T, extract func([]byte, *sandbox) error, layer bool) {
		sb := newSandbox(t)
		err := extract(mkTar(t, tent{name: "hl", typ: tar.TypeLink, link: "../secret"}), sb)
		wantInvalid(t, err, `hardlink target "../secret" escapes the layer`)
		sb.check(t)

		sb = newSandbox(t)
		err = extract(mkTar(t,
			tent{name: "s", typ: tar.TypeSymlink, link: sb.outer},
			tent{name: "hl", typ: tar.TypeLink, link: "s/secret"}), sb)
		if layer {
			wantInvalid(t, err, `hardlink target "s/secret": path goes through symlink "s"`)
		} else {
			wantInvalid(t, err, "not found") // resolved inside the root: there is no such file
		}
		sb.check(t)

		// Absolute targets are inside dest, like names; a link within dest works.
		sb = newSandbox(t)
		if err := extract(mkTar(t, tent{name: "f", data: "x"}, tent{name: "g", typ: tar.TypeLink, link: "/f"}), sb); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		unix.Stat(filepath.Join(sb.dest, "g"), &st)
		if st.Nlink != 2 {
			t.Fatalf("hardlink not made: nlink %d", st.Nlink)
		}
		sb.check(t)
	})
}

func TestExtractDeviceNode(t *testing.T) {
	sb := newSandbox(t)
	err := ExtractTar(bytes.NewReader(mkTar(t, tent{name: "sda", typ: tar.TypeBlock, maj: 8, min: 0, mode: 0o666})), sb.dest, ExtractOptions{})
	wantInvalid(t, err, "device nodes are not allowed")
	err = ExtractTar(bytes.NewReader(mkTar(t, tent{name: "mem", typ: tar.TypeChar, maj: 1, min: 1})), sb.dest, ExtractOptions{})
	wantInvalid(t, err, "device nodes are not allowed")
	sb.check(t)
	if ents, _ := os.ReadDir(sb.dest); len(ents) != 0 {
		t.Fatalf("device node written: %v", ents)
	}
	// Layers may carry device nodes (as root), like Docker's.
	needRoot(t)
	if err := extractLayer(bytes.NewReader(mkTar(t, tent{name: "dev/null", typ: tar.TypeChar, maj: 1, min: 3, mode: 0o666})), sb.dest); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(sb.dest, "dev/null"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) || st.Mode&0o777 != 0o666 {
		t.Fatalf("device node: %v %o", err, st.Mode)
	}
}

func TestExtractOversized(t *testing.T) {
	modes(t, func(t *testing.T, extract func([]byte, *sandbox) error, _ bool) {
		sb := newSandbox(t)
		err := extract(mkTar(t, tent{name: strings.Repeat("a/", 2500) + "x", data: "x"}), sb)
		wantInvalid(t, err, "name too long")
		err = extract(mkTar(t, tent{name: strings.Repeat("b", 300), data: "x"}), sb)
		wantInvalid(t, err, "path component too long")
		err = extract(mkTar(t, tent{name: "l", typ: tar.TypeSymlink, link: strings.Repeat("c", 5000)}), sb)
		wantInvalid(t, err, "link target too long")
		sb.check(t)
		if ents, _ := os.ReadDir(sb.dest); len(ents) != 0 {
			t.Fatalf("oversized entries written: %v", ents)
		}
	})
	// A PAX header beyond what archive/tar accepts (1 MiB) is refused by the reader.
	sb := newSandbox(t)
	if err := ExtractTar(bytes.NewReader(hugePAX(t)), sb.dest, ExtractOptions{}); err == nil || !strings.Contains(err.Error(), "invalid tar archive") {
		t.Fatalf("oversized header: %v", err)
	}
	sb.check(t)
}

// hugePAX hand-crafts a tar whose first entry is a 2 MiB PAX extended header (archive/tar's
// writer refuses to produce one).
func hugePAX(t testing.TB) []byte {
	rec := "path=" + strings.Repeat("p", 2<<20) + "\n"
	n := len(rec) + 8
	rec = fmt.Sprintf("%d %s", n, rec)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "PaxHeaders/x", Typeflag: tar.TypeReg, Size: int64(len(rec)), Mode: 0o644})
	tw.Write([]byte(rec))
	tw.WriteHeader(&tar.Header{Name: "x", Typeflag: tar.TypeReg, Mode: 0o644})
	tw.Close()
	b := buf.Bytes()
	b[156] = tar.TypeXHeader
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b[:512] {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func TestExtractContent(t *testing.T) {
	needRoot(t)
	sb := newSandbox(t)
	data := mkTar(t,
		tent{name: "./", typ: tar.TypeDir, mode: 0o700},
		tent{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		tent{name: "bin/busybox", data: "#!", mode: 0o4755},
		tent{name: "bin/sh", typ: tar.TypeSymlink, link: "busybox"},
		tent{name: "bin/ln", typ: tar.TypeLink, link: "bin/busybox"},
		tent{name: "etc/passwd", data: "root:x:0:0", pax: map[string]string{"SCHILY.xattr.user.k": "v", "SCHILY.xattr.trusted.overlay.opaque": "y"}},
		tent{name: "run/fifo", typ: tar.TypeFifo, mode: 0o640},
		tent{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
	)
	if err := ExtractTar(bytes.NewReader(data), sb.dest, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	sb.check(t)
	var st unix.Stat_t
	unix.Lstat(filepath.Join(sb.dest, "bin/busybox"), &st)
	if st.Mode&0o7777 != 0o4755 || st.Nlink != 2 || st.Mtim.Sec != 1600000000 {
		t.Fatalf("busybox mode %o nlink %d mtime %d", st.Mode&0o7777, st.Nlink, st.Mtim.Sec)
	}
	unix.Lstat(filepath.Join(sb.dest, "bin"), &st)
	if st.Mtim.Sec != 1600000000 {
		t.Fatalf("dir mtime %d", st.Mtim.Sec)
	}
	unix.Lstat(filepath.Join(sb.dest, "tmp"), &st)
	if st.Mode&0o7777 != 0o1777 {
		t.Fatalf("tmp mode %o", st.Mode&0o7777)
	}
	unix.Lstat(filepath.Join(sb.dest, "run/fifo"), &st)
	if st.Mode&unix.S_IFMT != unix.S_IFIFO || st.Mode&0o777 != 0o640 {
		t.Fatalf("fifo mode %o", st.Mode)
	}
	if l, _ := os.Readlink(filepath.Join(sb.dest, "bin/sh")); l != "busybox" {
		t.Fatalf("symlink %q", l)
	}
	buf := make([]byte, 16)
	if n, err := unix.Lgetxattr(filepath.Join(sb.dest, "etc/passwd"), "user.k", buf); err != nil || string(buf[:n]) != "v" {
		t.Fatalf("xattr %q %v", buf[:n], err)
	}
	if _, err := unix.Lgetxattr(filepath.Join(sb.dest, "etc/passwd"), "trusted.overlay.opaque", buf); err == nil {
		t.Fatal("overlay xattr taken from the tar")
	}
	fi, _ := os.Stat(sb.dest)
	if fi.Mode().Perm() != 0o755 {
		t.Fatalf("the root entry changed dest's mode: %v", fi.Mode())
	}

	// Chown and NoOverwriteDirNonDir.
	if err := ExtractTar(bytes.NewReader(mkTar(t, tent{name: "owned", data: "x"})), sb.dest, ExtractOptions{Chown: &Owner{UID: 1234, GID: 5678}}); err != nil {
		t.Fatal(err)
	}
	unix.Lstat(filepath.Join(sb.dest, "owned"), &st)
	if st.Uid != 1234 || st.Gid != 5678 {
		t.Fatalf("owner %d:%d", st.Uid, st.Gid)
	}
	err := ExtractTar(bytes.NewReader(mkTar(t, tent{name: "bin", data: "x"})), sb.dest, ExtractOptions{NoOverwriteDirNonDir: true})
	if err == nil || !strings.Contains(err.Error(), "cannot overwrite directory") {
		t.Fatalf("NoOverwriteDirNonDir: %v", err)
	}
}

// docker cp into a subdirectory of a container rootfs: symlinks resolve inside the root.
func TestExtractIntoRootSubdir(t *testing.T) {
	sb := newSandbox(t)
	os.MkdirAll(filepath.Join(sb.dest, "usr/lib"), 0o755)
	os.Symlink("usr/lib", filepath.Join(sb.dest, "lib"))
	os.Symlink("/", filepath.Join(sb.dest, "usr/lib/up"))
	data := mkTar(t, tent{name: "lib/up/lib/x.so", data: "elf"})
	if err := ExtractTar(bytes.NewReader(data), filepath.Join(sb.dest, "usr"), ExtractOptions{Root: sb.dest}); err == nil {
		// entries are relative to dest (/usr): usr/lib/up → "/" = the root, so this lands in /lib/x.so
		if _, err := os.Stat(filepath.Join(sb.dest, "usr/lib/x.so")); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Fatal(err)
	}
	sb.check(t)
	if err := ExtractTar(bytes.NewReader(data), sb.outer, ExtractOptions{Root: sb.dest}); err == nil {
		t.Fatal("dest outside root accepted")
	}
}

func TestArchivePath(t *testing.T) {
	sb := newSandbox(t)
	os.MkdirAll(filepath.Join(sb.dest, "etc/sub"), 0o755)
	os.WriteFile(filepath.Join(sb.dest, "etc/hosts"), []byte("127.0.0.1 localhost\n"), 0o644)
	os.Symlink(sb.secret, filepath.Join(sb.dest, "etc/sub/leak")) // points out: archived as a link
	os.Link(filepath.Join(sb.dest, "etc/hosts"), filepath.Join(sb.dest, "etc/sub/hosts2"))
	var buf bytes.Buffer
	if err := ArchivePath(filepath.Join(sb.dest, "etc"), &buf, "etc"); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	var got []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		got = append(got, h.Name+":"+string(h.Typeflag)+":"+h.Linkname)
		if h.Name == "etc/sub/leak" {
			continue
		}
	}
	want := []string{"etc/:5:", "etc/hosts:0:", "etc/sub/:5:", "etc/sub/hosts2:1:etc/hosts", "etc/sub/leak:2:" + sb.secret}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("archive\n got %v\nwant %v", got, want)
	}
	// A symlink as src is archived as the link, renamed.
	buf.Reset()
	if err := ArchivePath(filepath.Join(sb.dest, "etc/sub/leak"), &buf, "x"); err != nil {
		t.Fatal(err)
	}
	h, err := tar.NewReader(&buf).Next()
	if err != nil || h.Name != "x" || h.Typeflag != tar.TypeSymlink {
		t.Fatalf("symlink src: %+v %v", h, err)
	}
	// Round trip through ExtractTar.
	buf.Reset()
	ArchivePath(filepath.Join(sb.dest, "etc"), &buf, "copy")
	if err := ExtractTar(&buf, sb.dest, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(sb.dest, "copy/sub/hosts2")); string(b) != "127.0.0.1 localhost\n" {
		t.Fatalf("round trip: %q", b)
	}
	sb.check(t)
}

func FuzzExtract(f *testing.F) {
	seeds := [][]tent{
		{{name: "../x", data: "x"}},
		{{name: "/abs", data: "x"}},
		{{name: "l", typ: tar.TypeSymlink, link: ".."}, {name: "l/x", data: "x"}},
		{{name: "l", typ: tar.TypeSymlink, link: "/"}, {name: "l/d/", typ: tar.TypeDir}, {name: "l/d/x", data: "x"}},
		{{name: "h", typ: tar.TypeLink, link: "../secret"}},
		{{name: "f", data: "x"}, {name: "f/", typ: tar.TypeDir}, {name: "f/.wh..wh..opq"}, {name: "f/.wh.g"}},
		{{name: "d/", typ: tar.TypeDir}, {name: "d", typ: tar.TypeSymlink, link: "../.."}, {name: "d/y", data: "y"}},
		{{name: "dev", typ: tar.TypeChar, maj: 1, min: 3}},
	}
	for _, s := range seeds {
		f.Add(mkTar(f, s...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sb := newSandbox(t)
		ExtractTar(bytes.NewReader(data), sb.dest, ExtractOptions{Root: sb.dest})
		sb.check(t)
		if os.Geteuid() == 0 {
			layer := filepath.Join(sb.outer, "dest", "layer")
			if os.Mkdir(layer, 0o755) == nil {
				extractLayer(bytes.NewReader(data), layer)
			}
			sb.check(t)
		}
	})
}

func sortedNames(t testing.TB, dir string) []string {
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func tarNames(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err != nil {
			return out
		}
		out = append(out, h.Name)
	}
}

func TestArchivePathInRoot(t *testing.T) {
	sb := newSandbox(t)
	root := sb.dest
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/hosts"), []byte("h"), 0o644)
	os.Symlink("/etc", filepath.Join(root, "link"))
	os.Symlink(sb.outer, filepath.Join(root, "out"))  // absolute host path: means root/<that path>
	os.Symlink("../../..", filepath.Join(root, "up")) // climbs to the root, no further

	var buf bytes.Buffer
	must(t, ArchivePathInRoot(root, "/link/hosts", &buf, ""))
	if got := tarNames(t, buf.Bytes()); strings.Join(got, ",") != "hosts" {
		t.Fatalf("through in-root symlink: %v", got)
	}
	buf.Reset()
	must(t, ArchivePathInRoot(root, "/link", &buf, ""))
	if got := tarNames(t, buf.Bytes()); strings.Join(got, ",") != "link" {
		t.Fatalf("symlink itself: %v", got)
	}
	buf.Reset()
	must(t, ArchivePathInRoot(root, "/link/", &buf, "etc"))
	if got := tarNames(t, buf.Bytes()); strings.Join(got, ",") != "etc/,etc/hosts" {
		t.Fatalf("followed dir: %v", got)
	}
	buf.Reset()
	if err := ArchivePathInRoot(root, "/out/secret", &buf, ""); err == nil {
		t.Fatalf("read through a symlink out of the root: %v", tarNames(t, buf.Bytes()))
	}
	buf.Reset()
	must(t, ArchivePathInRoot(root, "/up/etc/hosts", &buf, ""))
	buf.Reset()
	must(t, ArchivePathInRoot(root, "/up/", &buf, "r"))
	for _, n := range tarNames(t, buf.Bytes()) {
		if strings.Contains(n, "secret") {
			t.Fatalf("archive of the root contains %s", n)
		}
	}
	if p, err := ResolvePath(root, "/up/out", false); err != nil || p != filepath.Join(root, "out") {
		t.Fatalf("ResolvePath: %s %v", p, err)
	}
	if p, err := ResolvePath(root, "/link/hosts", false); err != nil || p != filepath.Join(root, "etc/hosts") {
		t.Fatalf("ResolvePath: %s %v", p, err)
	}
	sb.check(t)
}
