package logfile

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

type rec struct {
	Stream string
	Time   time.Time
	Log    string
}

func readAll(t *testing.T, path string, opts ReadOptions) []rec {
	t.Helper()
	var out []rec
	err := Read(context.Background(), path, opts, func(s string, tm time.Time, line []byte) error {
		out = append(out, rec{s, tm, string(line)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWriterFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	w, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	tm := time.Date(2024, 5, 1, 10, 0, 0, 120000000, time.FixedZone("x", 3600))
	so := w.Stream("stdout")
	so.now = func() time.Time { return tm }
	se := w.Stream("stderr")
	se.now = so.now
	so.Write([]byte("hello\nwor"))
	se.Write([]byte("oops <&> \"q\" \\ \t\x01\r\n"))
	so.Write([]byte("ld\n"))
	so.Write([]byte("tail"))
	so.Close()
	se.Close()
	w.Close()
	got, _ := os.ReadFile(path)
	want := `{"log":"hello\n","stream":"stdout","time":"2024-05-01T09:00:00.120000000Z"}
{"log":"oops \u003c\u0026\u003e \"q\" \\ \t\u0001\r\n","stream":"stderr","time":"2024-05-01T09:00:00.120000000Z"}
{"log":"world\n","stream":"stdout","time":"2024-05-01T09:00:00.120000000Z"}
{"log":"tail","stream":"stdout","time":"2024-05-01T09:00:00.120000000Z"}
`
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	// every line is valid JSON that encoding/json reads back
	for _, l := range strings.Split(strings.TrimSpace(string(got)), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
	}
	recs := readAll(t, path, ReadOptions{Tail: -1})
	if len(recs) != 4 || recs[1].Log != "oops <&> \"q\" \\ \t\x01\r\n" || recs[1].Stream != "stderr" || !recs[0].Time.Equal(tm) {
		t.Fatalf("read back %+v", recs)
	}
}

func TestWriterSplitsLongLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	w, _ := Open(path)
	s := w.Stream("stdout")
	long := strings.Repeat("a", MaxLine*2+10) + "\n"
	// written in odd-sized pieces
	for i := 0; i < len(long); i += 1000 {
		j := min(i+1000, len(long))
		s.Write([]byte(long[i:j]))
	}
	exact := strings.Repeat("b", MaxLine-1) + "\n" // fits in one entry
	s.Write([]byte(exact))
	over := strings.Repeat("c", MaxLine) + "\n" // Docker: a full buffer, then the newline alone
	s.Write([]byte(over))
	s.Close()
	w.Close()
	recs := readAll(t, path, ReadOptions{Tail: -1})
	var lens []int
	for _, r := range recs {
		lens = append(lens, len(r.Log))
	}
	want := []int{MaxLine, MaxLine, 11, MaxLine, MaxLine, 1}
	if fmt.Sprint(lens) != fmt.Sprint(want) {
		t.Fatalf("entry sizes %v, want %v", lens, want)
	}
	var all strings.Builder
	for _, r := range recs {
		all.WriteString(r.Log)
	}
	if all.String() != long+exact+over {
		t.Fatal("content changed")
	}
	raw, _ := os.ReadFile(path)
	for _, l := range bytes.Split(raw, []byte("\n")) {
		if len(l) > 2*MaxLine {
			t.Fatalf("line of %d bytes", len(l))
		}
	}
}

func writeEntries(t *testing.T, path string, base time.Time, n int) {
	t.Helper()
	w, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 0; i < n; i++ {
		stream := "stdout"
		if i%3 == 0 {
			stream = "stderr"
		}
		if err := w.WriteEntry(stream, base.Add(time.Duration(i)*time.Second), []byte(fmt.Sprintf("line %d\n", i))); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadTailSinceUntil(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	writeEntries(t, path, base, 5000) // several tail chunks

	if got := readAll(t, path, ReadOptions{Tail: -1}); len(got) != 5000 || got[4999].Log != "line 4999\n" {
		t.Fatalf("all: %d", len(got))
	}
	for _, n := range []int{0, 1, 7, 4999, 5000, 6000} {
		got := readAll(t, path, ReadOptions{Tail: n})
		want := min(n, 5000)
		if len(got) != want {
			t.Fatalf("tail %d: %d entries", n, len(got))
		}
		if want > 0 && got[0].Log != fmt.Sprintf("line %d\n", 5000-want) {
			t.Fatalf("tail %d starts at %q", n, got[0].Log)
		}
	}
	got := readAll(t, path, ReadOptions{Tail: -1, Since: base.Add(10 * time.Second), Until: base.Add(19 * time.Second)})
	if len(got) != 10 || got[0].Log != "line 10\n" || got[9].Log != "line 19\n" {
		t.Fatalf("since/until: %+v", got)
	}
	// an unterminated last line (a write in progress) is not returned and not counted by tail
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"log":"half`)
	f.Close()
	got = readAll(t, path, ReadOptions{Tail: 2})
	if len(got) != 2 || got[1].Log != "line 4999\n" {
		t.Fatalf("tail with partial write: %+v", got)
	}
	// garbage lines are skipped
	f, _ = os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("\nnot json\n")
	f.Close()
	if got := readAll(t, path, ReadOptions{Tail: -1}); len(got) != 5000 {
		t.Fatalf("with garbage: %d", len(got))
	}
}

func TestReadMissingFile(t *testing.T) {
	if got := readAll(t, filepath.Join(t.TempDir(), "nope"), ReadOptions{Tail: -1}); len(got) != 0 {
		t.Fatal(got)
	}
}

func TestFollow(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log")
	w, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s := w.Stream("stdout")
	s.Write([]byte("before\n"))

	done := make(chan struct{})
	lines := make(chan string, 100)
	errc := make(chan error, 1)
	go func() {
		errc <- Read(context.Background(), path, ReadOptions{Follow: true, Tail: -1, Done: done}, func(_ string, _ time.Time, l []byte) error {
			lines <- string(l)
			return nil
		})
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case got := <-lines:
			if got != want {
				t.Fatalf("got %q want %q", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %q", want)
		}
	}
	expect("before\n")
	s.Write([]byte("after 1\n"))
	expect("after 1\n")
	// a JSON line that reaches the file in two writes is read whole
	half := AppendEntry(nil, "stdout", time.Now(), []byte("split\n"))
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.Write(half[:10])
	time.Sleep(50 * time.Millisecond)
	f.Write(half[10:])
	f.Close()
	expect("split\n")
	// written just before Done: still delivered, then Read returns
	s.Write([]byte("last\n"))
	close(done)
	expect("last\n")
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not end after Done")
	}
}

func TestFollowCancelAndCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "later")
	ctx, cancel := context.WithCancel(context.Background())
	lines := make(chan string, 10)
	errc := make(chan error, 1)
	go func() {
		errc <- Read(ctx, path, ReadOptions{Follow: true, Tail: -1}, func(_ string, _ time.Time, l []byte) error {
			lines <- string(l)
			return nil
		})
	}()
	time.Sleep(100 * time.Millisecond)
	w, _ := Open(path)
	w.WriteEntry("stderr", time.Now(), []byte("made\n"))
	w.Close()
	select {
	case l := <-lines:
		if l != "made\n" {
			t.Fatal(l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("entry of a file created later not read")
	}
	cancel()
	select {
	case err := <-errc:
		if err != context.Canceled {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancel did not end the follow")
	}
}

func TestFnErrorStops(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	writeEntries(t, path, time.Now(), 10)
	stop := fmt.Errorf("stop")
	n := 0
	err := Read(context.Background(), path, ReadOptions{Tail: -1}, func(string, time.Time, []byte) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if err != stop || n != 3 {
		t.Fatal(err, n)
	}
}

func TestParseLineFallback(t *testing.T) {
	e, err := ParseLine([]byte(`{ "time":"2024-01-01T00:00:00Z", "stream":"stderr", "log":"x\u00e9\n", "attrs":{"a":"b"}}`), nil)
	if err != nil || e.Stream != "stderr" || string(e.Log) != "xé\n" || e.Time.Year() != 2024 {
		t.Fatal(e, err)
	}
	for _, bad := range []string{``, `{}`, `{"log":1}`, `{"log":"x"`, `null`} {
		if _, err := ParseLine([]byte(bad), nil); err == nil {
			t.Fatalf("%q parsed", bad)
		}
	}
}

// replaceInvalid maps each invalid UTF-8 byte to U+FFFD, as the writer does.
func replaceInvalid(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			sb.WriteString("\uFFFD")
		} else {
			sb.Write(b[:n])
		}
		b = b[n:]
	}
	return sb.String()
}

func FuzzParseLine(f *testing.F) {
	f.Add([]byte(`{"log":"hello\n","stream":"stdout","time":"2024-05-01T09:00:00.120000000Z"}`))
	f.Add([]byte(`{"log":"\ud83d\ude00 \u003c \\ \"","stream":"stderr","time":"2024-05-01T09:00:00Z"}`))
	f.Add([]byte(`{"log":"\ud83d","stream":"x","time":"2024-05-01T09:00:00+02:00"}`))
	f.Add([]byte("{\"log\":\"\xff\xfe\",\"stream\":\"stdout\",\"time\":\"2024-05-01T09:00:00Z\"}"))
	f.Add([]byte(`{"stream":"stdout","log":"a","time":"2024-05-01T09:00:00Z"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := ParseLine(line, nil)
		if err == nil {
			// whatever we accept, encoding/json must read the same way
			var v struct {
				Log    string    `json:"log"`
				Stream string    `json:"stream"`
				Time   time.Time `json:"time"`
			}
			trimmed := bytes.TrimRight(line, "\r\n")
			if jerr := json.Unmarshal(trimmed, &v); jerr != nil {
				t.Fatalf("accepted %q that encoding/json rejects: %v", line, jerr)
			}
			if v.Log != string(e.Log) || v.Stream != e.Stream || !v.Time.Equal(e.Time) {
				t.Fatalf("%q: got %q %q %v, encoding/json %q %q %v", line, e.Log, e.Stream, e.Time, v.Log, v.Stream, v.Time)
			}
		}
		// and anything written reads back the same (invalid UTF-8 → U+FFFD)
		tm := time.Unix(1700000000, 123456789)
		enc := AppendEntry(nil, "stdout", tm, line)
		if bytes.Count(enc, []byte("\n")) != 1 {
			t.Fatalf("entry for %q spans lines", line)
		}
		back, err := ParseLine(enc, nil)
		if err != nil {
			t.Fatalf("own entry %q: %v", enc, err)
		}
		if string(back.Log) != replaceInvalid(line) || back.Stream != "stdout" || !back.Time.Equal(tm) {
			t.Fatalf("round trip of %q gave %q", line, back.Log)
		}
		var v map[string]any
		if err := json.Unmarshal(enc, &v); err != nil || v["log"] != replaceInvalid(line) {
			t.Fatalf("encoding/json reads %q as %v (%v)", enc, v["log"], err)
		}
	})
}

func BenchmarkWrite(b *testing.B) {
	w, _ := Open(filepath.Join(b.TempDir(), "log"))
	defer w.Close()
	s := w.Stream("stdout")
	chunk := []byte(strings.Repeat("some log output here\n", 200))
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		s.Write(chunk)
	}
}

func BenchmarkRead(b *testing.B) {
	path := filepath.Join(b.TempDir(), "log")
	w, _ := Open(path)
	s := w.Stream("stdout")
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(s, "log line number %d with some text\n", i)
	}
	w.Close()
	st, _ := os.Stat(path)
	b.SetBytes(st.Size())
	for b.Loop() {
		Read(context.Background(), path, ReadOptions{Tail: -1}, func(string, time.Time, []byte) error { return nil })
	}
}
