package build

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testTime = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

// FuzzContextTar feeds arbitrary bytes to the context reader: it may fail, but nothing may land
// outside the destination.
func FuzzContextTar(f *testing.F) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "Dockerfile", Typeflag: tar.TypeReg, Mode: 0o644, Size: 13})
	tw.Write([]byte("FROM busybox\n"))
	tw.WriteHeader(&tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "../../etc"})
	tw.WriteHeader(&tar.Header{Name: "link/x", Typeflag: tar.TypeReg, Mode: 0o644})
	tw.Close()
	f.Add(buf.Bytes())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		dest := filepath.Join(base, "ctx")
		os.Mkdir(dest, 0o755)
		_ = extractContext(bytes.NewReader(data), dest)
		ents, _ := os.ReadDir(base)
		if len(ents) != 1 {
			t.Fatalf("extraction wrote outside the context: %v", ents)
		}
		_, _, _ = readDockerfile(dest, "Dockerfile")
	})
}

// FuzzIgnore checks that pattern parsing and matching never panic and that the Dockerfile and
// .dockerignore survive applyIgnore.
func FuzzIgnore(f *testing.F) {
	f.Add("*.log\n!keep.log\n**/x\n", "a/b.log")
	f.Add("[", "x")
	f.Add("/../..\n", "../x")
	f.Fuzz(func(t *testing.T, patterns, p string) {
		pats, err := ParseIgnore([]byte(patterns))
		if err != nil {
			return
		}
		pm, err := ignoreMatcher(pats, "Dockerfile")
		if err != nil || pm == nil {
			return
		}
		_ = Excluded(pm, p)
	})
}

// FuzzExpand runs ARG/ENV expansion on arbitrary words and values.
func FuzzExpand(f *testing.F) {
	f.Add("${A:-x}$B${C:+y}", "A=1", "B=$A")
	f.Add("${", "", "")
	f.Add(`\$A '$A' "$A"`, "A=a b", "")
	f.Fuzz(func(t *testing.T, word, e1, e2 string) {
		env := []string{}
		for _, e := range []string{e1, e2} {
			if strings.Contains(e, "=") {
				env = append(env, e)
			}
		}
		_, _ = Expand(word, env, '\\')
		_, _ = Expand(word, env, '`')
	})
}

// FuzzDockerfile parses arbitrary Dockerfiles.
func FuzzDockerfile(f *testing.F) {
	f.Add("FROM busybox\nRUN echo hi\n")
	f.Add("# escape=`\nFROM x\nRUN a `\n b\n")
	f.Add("FROM x\nRUN <<EOF\nhi\nEOF\n")
	f.Fuzz(func(t *testing.T, df string) {
		_, _ = ParseDockerfile([]byte(df))
	})
}
