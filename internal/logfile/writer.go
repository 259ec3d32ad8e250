// Package logfile writes and reads container logs in Docker's json-file
// format: one JSON object per line,
//
//	{"log":"hello\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}
//
// A line longer than MaxLine bytes is split into entries of MaxLine bytes
// whose "log" has no trailing newline ("partial" entries), as Docker does; the
// last piece carries the newline. Output still pending when a stream ends is
// written as a partial entry too.
package logfile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// MaxLine is the largest "log" payload of one entry (Docker's copier buffer size).
const MaxLine = 16 * 1024

// Writer appends entries to a json-file log. It is safe for concurrent use; the
// entries of one Write/WriteEntry call reach the file in one write(2).
type Writer struct {
	mu   sync.Mutex
	f    *os.File
	buf  []byte
	err  error
	path string
	rot  Rotation
	size int64 // of the current file
}

// Rotation is json-file's max-size and max-file: once the log would grow past
// MaxSize bytes it is renamed to <path>.1 (older ones shift to .2, …, up to
// MaxFiles-1 kept) and a new one is started. MaxSize 0: never rotate.
type Rotation struct {
	MaxSize  int64
	MaxFiles int
}

// Open opens (creating if needed, mode 0640) the log at path for appending.
func Open(path string) (*Writer, error) { return OpenRotating(path, Rotation{}) }

// OpenRotating is Open with rotation.
func OpenRotating(path string, rot Rotation) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	w := &Writer{f: f, path: path, rot: rot}
	if st, err := f.Stat(); err == nil {
		w.size = st.Size()
	}
	if w.rot.MaxFiles < 1 {
		w.rot.MaxFiles = 1
	}
	return w, nil
}

// lockDir takes a flock (how: LOCK_EX or LOCK_SH) on the folder of path; the returned func releases it.
// Without a lock (an unusual file system) rotation and reading still work, only less exactly.
func lockDir(path string, how int) func() {
	fd, err := unix.Open(filepath.Dir(path), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return func() {}
	}
	for {
		err = unix.Flock(fd, how)
		if err != unix.EINTR {
			break
		}
	}
	return func() { unix.Close(fd) }
}

// RotatedName is the name of the n-th older file of the log at path (n ≥ 1).
func RotatedName(path string, n int) string { return path + "." + strconv.Itoa(n) }

// rotateLocked moves the current file aside and starts a new one. With
// MaxFiles 1 the old content is dropped, as Docker does.
func (w *Writer) rotateLocked() (err error) {
	// Readers list the rotated files under a shared lock of the folder: they never see the renames half done.
	unlock := lockDir(w.path, unix.LOCK_EX)
	defer unlock()
	if err := w.f.Close(); err != nil {
		return err
	}
	w.f = nil
	defer func() {
		if w.f == nil { // a failed rotation keeps appending to the current file
			if f, oerr := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640); oerr == nil {
				w.f = f
				if st, serr := f.Stat(); serr == nil {
					w.size = st.Size()
				}
			}
		}
	}()
	if w.rot.MaxFiles > 1 {
		for i := w.rot.MaxFiles - 1; i > 1; i-- {
			if err := os.Rename(RotatedName(w.path, i-1), RotatedName(w.path, i)); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("rotating the log: %w", err)
			}
		}
		if err := os.Rename(w.path, RotatedName(w.path, 1)); err != nil {
			return fmt.Errorf("rotating the log: %w", err)
		}
	} else if err := os.Remove(w.path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("rotating the log: %w", err)
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	w.f, w.size = f, 0
	return nil
}

// WriteEntry appends one entry. log is written as given: a complete line ends in "\n".
func (w *Writer) WriteEntry(stream string, t time.Time, log []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = AppendEntry(w.buf[:0], stream, t, log)
	return w.flushLocked()
}

func (w *Writer) flushLocked() error {
	if len(w.buf) == 0 {
		return nil
	}
	if w.f == nil {
		return os.ErrClosed
	}
	var err error
	for buf := w.buf; len(buf) > 0 && err == nil; {
		chunk := buf
		if w.rot.MaxSize > 0 && w.size+int64(len(chunk)) > w.rot.MaxSize {
			// as many whole entries as fit; rotate when none does
			cut := 0
			if room := w.rot.MaxSize - w.size; room > 0 {
				cut = bytes.LastIndexByte(chunk[:room], '\n') + 1
			}
			if cut == 0 && w.size > 0 {
				if rerr := w.rotateLocked(); rerr != nil {
					if w.err == nil {
						w.err = rerr
					}
					if w.f == nil {
						return rerr
					}
				}
				if w.size > 0 { // the rotation failed: go on appending
					cut = len(chunk)
				} else {
					continue
				}
			}
			if cut == 0 { // one entry larger than max-size: it gets a file of its own
				if cut = bytes.IndexByte(chunk, '\n') + 1; cut == 0 {
					cut = len(chunk)
				}
			}
			chunk = chunk[:cut]
		}
		var n int
		n, err = w.f.Write(chunk)
		w.size += int64(n)
		buf = buf[len(chunk):]
	}
	if cap(w.buf) > 256*1024 { // do not keep a huge buffer around (the shim is meant to be small)
		w.buf = nil
	} else {
		w.buf = w.buf[:0]
	}
	if err != nil && w.err == nil {
		w.err = err
	}
	return err
}

// Close closes the file. Pending partial lines of Stream writers are not flushed: call their Close first.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// Stream returns a writer that cuts what is written to it into lines and logs
// each as an entry of the given stream ("stdout" or "stderr"), stamped with the
// time the bytes arrived. Close logs what is left as a partial entry.
func (w *Writer) Stream(stream string) *StreamWriter {
	return &StreamWriter{w: w, stream: stream}
}

// StreamWriter is one stream of a Writer. Not safe for concurrent use by itself
// (one goroutine copies one stream), but several StreamWriters may share a Writer.
type StreamWriter struct {
	w       *Writer
	stream  string
	pending []byte
	now     func() time.Time // for tests
}

// Write logs every complete line in p (and the pending bytes before it); an
// unterminated tail is kept until its newline comes, or until MaxLine bytes
// are pending, then it is logged as a partial entry.
func (s *StreamWriter) Write(p []byte) (int, error) {
	n := len(p)
	t := time.Now()
	if s.now != nil {
		t = s.now()
	}
	var tsb [40]byte
	ts := t.UTC().AppendFormat(tsb[:0], timeLayout)
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = w.buf[:0]
	for len(p) > 0 {
		// how much of p fits before the pending buffer is full
		room := MaxLine - len(s.pending)
		chunk := p
		if len(chunk) > room {
			chunk = chunk[:room]
		}
		if i := indexNL(chunk); i >= 0 {
			line := chunk[:i+1]
			if len(s.pending) > 0 {
				s.pending = append(s.pending, line...)
				w.buf = appendEntry(w.buf, s.stream, ts, s.pending)
				s.pending = s.pending[:0]
			} else {
				w.buf = appendEntry(w.buf, s.stream, ts, line)
			}
			p = p[i+1:]
			continue
		}
		if len(s.pending)+len(chunk) == MaxLine {
			// a full buffer without newline: a partial entry
			if len(s.pending) > 0 {
				s.pending = append(s.pending, chunk...)
				w.buf = appendEntry(w.buf, s.stream, ts, s.pending)
				s.pending = s.pending[:0]
			} else {
				w.buf = appendEntry(w.buf, s.stream, ts, chunk)
			}
			p = p[len(chunk):]
			continue
		}
		s.pending = append(s.pending, chunk...)
		p = p[len(chunk):]
	}
	if cap(s.pending) > MaxLine && len(s.pending) == 0 {
		s.pending = nil
	}
	if err := w.flushLocked(); err != nil {
		return 0, err
	}
	return n, nil
}

// Close logs the pending unterminated bytes, if any, as a partial entry. The
// underlying Writer stays open.
func (s *StreamWriter) Close() error {
	if len(s.pending) == 0 {
		return nil
	}
	t := time.Now()
	if s.now != nil {
		t = s.now()
	}
	err := s.w.WriteEntry(s.stream, t, s.pending)
	s.pending = nil
	return err
}

func indexNL(b []byte) int {
	for i, c := range b {
		if c == '\n' {
			return i
		}
	}
	return -1
}

// timeLayout is Docker's RFC3339NanoFixed: always nine fractional digits.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// AppendEntry appends one json-file line (with its final "\n") to dst.
func AppendEntry(dst []byte, stream string, t time.Time, log []byte) []byte {
	var ts [40]byte
	return appendEntry(dst, stream, t.UTC().AppendFormat(ts[:0], timeLayout), log)
}

// appendEntry is AppendEntry with the time already formatted.
func appendEntry(dst []byte, stream string, ts []byte, log []byte) []byte {
	dst = append(dst, `{"log":`...)
	dst = appendString(dst, log)
	dst = append(dst, `,"stream":`...)
	dst = appendString(dst, []byte(stream))
	dst = append(dst, `,"time":"`...)
	dst = append(dst, ts...)
	dst = append(dst, "\"}\n"...)
	return dst
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way Docker's json-file driver
// does: \n \r \t \" \\ short escapes, other control characters and <, >, &
// as \u00XX, U+2028/U+2029 escaped, invalid UTF-8 replaced by U+FFFD.
func appendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
