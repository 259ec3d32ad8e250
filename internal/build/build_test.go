package build

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseDockerfileErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"FROM busybox\nFOO bar\n", "dockerfile parse error line 2: unknown instruction: FOO"},
		{"RUN echo\n", "no build stage in current context"},
		{"", "cannot be empty"},
		{"FROM busybox\nCOPY\n", "dockerfile parse error line 2:"},
	} {
		_, err := ParseDockerfile([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.in, err, tc.want)
		}
	}
	d, err := ParseDockerfile([]byte("ARG V=1\nFROM busybox:$V AS a\nRUN echo \\\n  hi\nFROM a\nCOPY --from=a /x /y\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.MetaArgs) != 1 || len(d.Stages) != 2 || d.Stages[0].Name != "a" || len(d.Stages[0].Commands) != 1 {
		t.Fatalf("parsed: %+v", d)
	}
}

func TestArgScope(t *testing.T) {
	two := "two"
	a := newArgScope(map[string]*string{"V": &two, "UNUSED": &two, "HTTP_PROXY": &two})
	one := "one"
	a.declare("V", &one, true)
	a.declare("G", &one, true)
	if got := strings.Join(a.metaEnv(), ","); got != "G=one,V=two" {
		t.Errorf("meta env %q", got)
	}
	a.newStage()
	a.declare("V", nil, false) // takes the global (overridden) value
	a.declare("D", &one, false)
	if got := strings.Join(a.env(), ","); got != "V=two,D=one,HTTP_PROXY=two" {
		t.Errorf("env %q", got)
	}
	if got := strings.Join(a.historyArgs(), ","); got != "D=one,V=two" {
		t.Errorf("history %q", got)
	}
	if got := a.unused(); len(got) != 1 || got[0] != "UNUSED" {
		t.Errorf("unused %v", got)
	}
	x, err := Expand("${V}-${NOPE:-dflt}-$D", a.env(), '\\')
	if err != nil || x != "two-dflt-one" {
		t.Errorf("expand: %q %v", x, err)
	}
}

func TestExcluded(t *testing.T) {
	pats, _ := ParseIgnore([]byte("# comment\n*.log\nbuild/\n!build/keep.txt\n**/secret\n"))
	pm, err := ignoreMatcher(pats, "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{"a.log": true, "x/a.log": false, "build/x": true, "build/keep.txt": false,
		"a/b/secret": true, "secret": true, "src/main.go": false, "../a.log": true} {
		if got := Excluded(pm, p); got != want {
			t.Errorf("%s: got %v want %v", p, got, want)
		}
	}
}

// copyTar runs writeCopyTar against a context and returns the entry names.
func copyTar(t *testing.T, ctx string, srcs []string, dest, workdir string, existing map[string]bool) ([]string, error) {
	t.Helper()
	res, err := resolveSources(ctx, srcs, true)
	if err != nil {
		return nil, err
	}
	d, dirSyntax := destPath(dest, workdir)
	var buf bytes.Buffer
	if err := writeCopyTar(&buf, res, d, dirSyntax, func(p string) bool { return existing[p] }, copyOptions{}); err != nil {
		return nil, err
	}
	var names []string
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	return names, nil
}

func TestCopySemantics(t *testing.T) {
	ctx := t.TempDir()
	os.MkdirAll(filepath.Join(ctx, "dir/sub"), 0o755)
	os.WriteFile(filepath.Join(ctx, "a.txt"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(ctx, "b.txt"), []byte("b"), 0o644)
	os.WriteFile(filepath.Join(ctx, "dir/sub/c"), []byte("c"), 0o644)
	os.Symlink("/etc/passwd", filepath.Join(ctx, "evil"))
	ex := map[string]bool{"/": true, "/app": true, "/etc": true}
	for _, tc := range []struct {
		srcs          []string
		dest, workdir string
		want          string
	}{
		{[]string{"a.txt"}, "/x", "", "x"},
		{[]string{"a.txt"}, "/new/", "", "new/,new/a.txt"},
		{[]string{"a.txt"}, "/app", "", "app/a.txt"},
		{[]string{"a.txt"}, ".", "/app", "app/a.txt"},
		{[]string{"a.txt"}, "rel", "/app", "app/rel"},
		{[]string{"*.txt"}, "/app/", "", "app/a.txt,app/b.txt"},
		{[]string{"dir"}, "/d", "", "d/,d/sub/,d/sub/c"},
		{[]string{"./dir/"}, "/app", "", "app/sub/,app/sub/c"},
		{[]string{"/a.txt"}, "/etc/a", "", "etc/a"},
	} {
		got, err := copyTar(t, ctx, tc.srcs, tc.dest, tc.workdir, ex)
		if err != nil || strings.Join(got, ",") != tc.want {
			t.Errorf("COPY %v %s (workdir %q): got %v %v, want %s", tc.srcs, tc.dest, tc.workdir, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		srcs []string
		dest string
		want string
	}{
		{[]string{"../x"}, "/", "forbidden path outside the build context: ../x ()"},
		{[]string{"dir/../../x"}, "/", "forbidden path outside the build context"},
		{[]string{"a.txt", "b.txt"}, "/app", "the destination must be a directory and end with a /"},
		{[]string{"nothere"}, "/", "file not found in build context"},
		{[]string{"*.none"}, "/", "no source files were specified"},
		{[]string{"evil"}, "/x", "file not found in build context"}, // the link resolves inside the context
	} {
		_, err := copyTar(t, ctx, tc.srcs, tc.dest, "", ex)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("COPY %v %s: got %v, want %q", tc.srcs, tc.dest, err, tc.want)
		}
	}
}

func TestSourceDigestIgnoresTimes(t *testing.T) {
	ctx := t.TempDir()
	p := filepath.Join(ctx, "f")
	os.WriteFile(p, []byte("x"), 0o644)
	res, _ := resolveSources(ctx, []string{"f"}, true)
	d1, _ := sourceDigest(res)
	os.Chtimes(p, testTime, testTime)
	res, _ = resolveSources(ctx, []string{"f"}, true)
	d2, _ := sourceDigest(res)
	os.WriteFile(p, []byte("y"), 0o644)
	res, _ = resolveSources(ctx, []string{"f"}, true)
	d3, _ := sourceDigest(res)
	if d1 != d2 || d1 == d3 || !strings.HasPrefix(d1, "file:") {
		t.Errorf("digests %s %s %s", d1, d2, d3)
	}
}

func TestParseChown(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\nwww:x:33:34::/:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nstaff:x:50:\n"), 0o644)
	for in, want := range map[string][2]int{"10": {10, 10}, "10:20": {10, 20}, "www": {33, 34}, "www:staff": {33, 50}, "0:staff": {0, 50}} {
		u, g, err := parseChown(in, root)
		if err != nil || u != want[0] || g != want[1] {
			t.Errorf("%s: %d:%d %v", in, u, g, err)
		}
	}
	if _, _, err := parseChown("nobody", root); err == nil || !strings.Contains(err.Error(), "no such user: nobody") {
		t.Errorf("unknown user: %v", err)
	}
}

func TestExtractContextRejectsHostileTar(t *testing.T) {
	for _, h := range []*tar.Header{
		{Name: "../escape", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "dev", Typeflag: tar.TypeChar, Mode: 0o644, Devmajor: 1, Devminor: 3},
	} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(h)
		tw.Close()
		dir := t.TempDir()
		os.Mkdir(filepath.Join(dir, "ctx"), 0o755)
		if err := extractContext(&buf, filepath.Join(dir, "ctx")); err == nil {
			t.Errorf("%s accepted", h.Name)
		}
		if _, err := os.Stat(filepath.Join(dir, "escape")); err == nil {
			t.Errorf("%s escaped", h.Name)
		}
	}
}
