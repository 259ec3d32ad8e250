package logfile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func logsOf(recs []rec) string {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(r.Log)
	}
	return b.String()
}

// TestRotation: max-size cuts the log into files of at most that size, max-file keeps that many, and
// reading sees what is kept in order, with tail reaching back across files.
func TestRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	w, err := OpenRotating(path, Rotation{MaxSize: 300, MaxFiles: 3})
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for i := 0; i < 40; i++ {
		line := fmt.Sprintf("line %02d\n", i)
		all = append(all, line)
		if err := w.WriteEntry("stdout", time.Now(), []byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	for _, p := range []string{path, path + ".1", path + ".2"} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > 300 {
			t.Errorf("%s is %d bytes, over max-size", p, st.Size())
		}
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Errorf("max-file 3 kept a fourth file: %v", err)
	}
	got := logsOf(readAll(t, path, ReadOptions{Tail: -1}))
	// what is kept is the newest lines, complete and in order
	want := strings.Join(all, "")
	if !strings.HasSuffix(want, got) || len(got) == 0 || strings.Count(got, "\n") < 6 {
		t.Fatalf("read %q: not the newest lines of %q", got, want)
	}
	kept := strings.Count(got, "\n")
	for _, n := range []int{0, 1, 3, kept - 1, kept, kept + 5} {
		tail := logsOf(readAll(t, path, ReadOptions{Tail: n}))
		wantN := min(n, kept)
		if strings.Count(tail, "\n") != wantN || !strings.HasSuffix(got, tail) {
			t.Errorf("tail %d: %q", n, tail)
		}
	}
}

// TestRotationMaxFileOne drops the old content, as Docker's json-file does with max-file=1.
func TestRotationMaxFileOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	w, err := OpenRotating(path, Rotation{MaxSize: 200, MaxFiles: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		w.WriteEntry("stdout", time.Now(), []byte(fmt.Sprintf("line %02d\n", i)))
	}
	w.Close()
	if _, err := os.Stat(path + ".1"); !os.IsNotExist(err) {
		t.Fatalf("max-file 1 kept a rotated file: %v", err)
	}
	got := logsOf(readAll(t, path, ReadOptions{Tail: -1}))
	if !strings.HasSuffix(got, "line 19\n") || strings.Contains(got, "line 00") {
		t.Fatalf("after rotation: %q", got)
	}
}

// TestFollowAcrossRotation: a follower sees every line, also those written around a rotation.
func TestFollowAcrossRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	w, err := OpenRotating(path, Rotation{MaxSize: 400, MaxFiles: 50}) // none deleted: a slow reader still finds every file
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var mu = make(chan struct{}, 1)
	var got strings.Builder
	errc := make(chan error, 1)
	go func() {
		errc <- Read(context.Background(), path, ReadOptions{Follow: true, Tail: -1, Done: done}, func(_ string, _ time.Time, line []byte) error {
			mu <- struct{}{}
			got.Write(line)
			<-mu
			return nil
		})
	}()
	var want strings.Builder
	for i := 0; i < 30; i++ { // 30 lines of ~80 bytes: several rotations
		line := fmt.Sprintf("line %02d\n", i)
		want.WriteString(line)
		w.WriteEntry("stdout", time.Now(), []byte(line))
		time.Sleep(20 * time.Millisecond)
	}
	w.Close()
	close(done)
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("follow did not end after Done")
	}
	if got.String() != want.String() {
		t.Fatalf("followed %q\nwant %q", got.String(), want.String())
	}
}

// TestRotationWithinOneWrite: output arriving in one read (many lines) is still cut at max-size, between
// entries; an entry larger than max-size gets a file of its own.
func TestRotationWithinOneWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	w, err := OpenRotating(path, Rotation{MaxSize: 500, MaxFiles: 20})
	if err != nil {
		t.Fatal(err)
	}
	var in strings.Builder
	for i := 0; i < 60; i++ {
		fmt.Fprintf(&in, "line %02d\n", i)
	}
	s := w.Stream("stdout")
	s.Write([]byte(in.String()))
	s.Write([]byte(strings.Repeat("x", 900) + "\n"))
	s.Close()
	w.Close()
	files, _ := filepath.Glob(path + ".*")
	files = append(files, path)
	if len(files) < 8 {
		t.Fatalf("only %d files", len(files))
	}
	for _, p := range files {
		st, _ := os.Stat(p)
		b, _ := os.ReadFile(p)
		if st.Size() > 500 && strings.Count(string(b), "\n") != 1 {
			t.Errorf("%s: %d bytes in %d entries", p, st.Size(), strings.Count(string(b), "\n"))
		}
	}
	if got := logsOf(readAll(t, path, ReadOptions{Tail: -1})); got != in.String()+strings.Repeat("x", 900)+"\n" {
		t.Fatalf("read back %q", got)
	}
}
