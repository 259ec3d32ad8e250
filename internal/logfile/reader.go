package logfile

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// ReadOptions selects what Read returns.
type ReadOptions struct {
	// Follow keeps reading as the file grows, until ctx ends, Done is closed
	// (then what was written up to then is read first), Until passes, or fn
	// returns an error.
	Follow bool
	// Tail is how many of the last entries to start with: -1 = all, 0 = none.
	Tail int
	// Since and Until bound the entries' times (zero = unbounded). Since is
	// inclusive; reading stops at the first entry after Until.
	Since, Until time.Time
	// Done, if not nil, ends a follow once closed (the container exited and its
	// log is complete), after draining the file.
	Done <-chan struct{}
}

// pollInterval is how often a follow looks at the file when no inotify event came.
const pollInterval = 500 * time.Millisecond

// Read calls fn for every selected entry of the json-file log at path, in
// order. line is only valid during the call. Lines that are not valid
// json-file entries are skipped. A missing file reads as empty (a follow
// waits for it to appear).
//
// Rotated files (<path>.1, <path>.2, …: see Rotation) are read first, oldest
// first; a follow carries on into the new file when the log rotates.
func Read(ctx context.Context, path string, opts ReadOptions, fn func(stream string, t time.Time, line []byte) error) error {
	r := &reader{opts: opts, fn: fn, buf: make([]byte, 0, 64*1024)}
	olds, f, err := openLog(path, nil) // oldest first, and the current file (nil if none yet)
	if err != nil {
		return err
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		for _, of := range olds {
			of.Close()
		}
	}()
	// Where to start: the tail may reach back into rotated files.
	start, startOff := 0, int64(0)
	if opts.Tail >= 0 {
		start, startOff = len(olds), int64(0)
		need := opts.Tail
		for i := len(olds); i >= 0; i-- {
			tf := f
			if i < len(olds) {
				tf = olds[i]
			}
			var off int64
			var n int
			if tf != nil {
				if off, n, err = tailOffsetCount(tf, need); err != nil {
					return err
				}
			}
			start, startOff = i, off
			need -= n
			if need <= 0 {
				break
			}
		}
	}
	for i := start; i < len(olds); i++ {
		r.off, r.buf = 0, r.buf[:0]
		if i == start {
			r.off = startOff
		}
		if done, err := r.drain(olds[i]); done || err != nil {
			return err
		}
	}
	if f != nil {
		r.off, r.buf = 0, r.buf[:0]
		if start == len(olds) {
			r.off = startOff
		}
		if done, err := r.drain(f); done || err != nil {
			return err
		}
	}
	if !opts.Follow {
		return nil
	}

	var w *watcher
	defer func() {
		if w != nil {
			w.close()
		}
	}()
	if f != nil {
		w = newWatcher(path)
	}
	var until <-chan time.Time
	if !opts.Until.IsZero() {
		tm := time.NewTimer(time.Until(opts.Until))
		defer tm.Stop()
		until = tm.C
	}
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	finished := opts.Done
	for {
		var ev <-chan struct{}
		if w != nil {
			ev = w.events
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-until:
			return nil
		case <-finished:
			finished = nil
		case <-ev:
		case <-poll.C:
		}
		for again := true; again; {
			again = false
			if f == nil {
				nf, err := os.Open(path)
				if err != nil {
					if !errors.Is(err, os.ErrNotExist) {
						return err
					}
					if opts.Done != nil && finished == nil {
						return nil
					}
					break
				}
				f = nf
				r.off, r.buf = 0, r.buf[:0]
				w = newWatcher(path)
			}
			// A truncated file (rotated by hand, or recreated) is read from its start.
			if st, err := f.Stat(); err == nil && st.Size() < r.off {
				r.off, r.buf = 0, r.buf[:0]
			}
			if done, err := r.drain(f); done || err != nil {
				return err
			}
			if rotated(path, f) {
				// The file we read is complete (renamed or removed): finish it, then
				// the files rotated after it while we were not looking, then the new one.
				if done, err := r.drain(f); done || err != nil {
					return err
				}
				newer, cur, err := openLog(path, f)
				if err != nil {
					return err
				}
				for _, of := range newer {
					r.off, r.buf = 0, r.buf[:0]
					done, err := r.drain(of)
					of.Close()
					if done || err != nil {
						return err
					}
				}
				f.Close()
				f = cur
				r.off, r.buf = 0, r.buf[:0]
				if w != nil {
					w.close()
					w = nil
				}
				if f != nil {
					w = newWatcher(path)
				}
				again = true
				continue
			}
			if opts.Done != nil && finished == nil {
				return nil // drained after Done
			}
		}
	}
}

// openLog opens, under a shared lock of the folder (so never in the middle
// of a rotation), the rotated files of the log at path, oldest first, and the
// current file (nil if there is none yet). With newerThan, only the rotated
// files that came after that one (itself rotated by now) are opened; none if
// it is gone. The open files stay readable whatever renames follow.
func openLog(path string, newerThan *os.File) (olds []*os.File, cur *os.File, err error) {
	unlock := lockDir(path, unix.LOCK_SH)
	defer unlock()
	var after os.FileInfo
	if newerThan != nil {
		if after, err = newerThan.Stat(); err != nil {
			return nil, nil, err
		}
	}
	var names []string // newest first
	for i := 1; ; i++ {
		p := RotatedName(path, i)
		if _, err := os.Lstat(p); err != nil {
			break
		}
		names = append(names, p)
	}
	for _, p := range names {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if after != nil {
			if st, err := f.Stat(); err == nil && os.SameFile(st, after) {
				f.Close()
				break // older ones were read already
			}
		}
		olds = append(olds, f)
	}
	slices.Reverse(olds)
	cur, err = os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return olds, nil, nil
		}
		for _, f := range olds {
			f.Close()
		}
		return nil, nil, err
	}
	return olds, cur, nil
}

// rotated reports whether path no longer names the file f.
func rotated(path string, f *os.File) bool {
	unlock := lockDir(path, unix.LOCK_SH)
	defer unlock()
	fi, err := os.Stat(path)
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	st, err := f.Stat()
	return err == nil && !os.SameFile(fi, st)
}

type reader struct {
	opts  ReadOptions
	fn    func(string, time.Time, []byte) error
	off   int64  // file offset of the next byte to read
	buf   []byte // unparsed bytes (an incomplete last line)
	entry []byte
}

// drain reads from r.off to EOF and hands out complete lines. done reports
// that reading is over (past Until).
func (r *reader) drain(f *os.File) (done bool, err error) {
	for {
		if len(r.buf) == cap(r.buf) {
			nb := make([]byte, len(r.buf), 2*cap(r.buf))
			copy(nb, r.buf)
			r.buf = nb
		}
		n, err := f.ReadAt(r.buf[len(r.buf):cap(r.buf)], r.off)
		r.off += int64(n)
		r.buf = r.buf[:len(r.buf)+n]
		if n > 0 {
			rest := r.buf
			for {
				i := bytes.IndexByte(rest, '\n')
				if i < 0 {
					break
				}
				line := rest[:i]
				rest = rest[i+1:]
				if d, err := r.emit(line); d || err != nil {
					return d, err
				}
			}
			r.buf = r.buf[:copy(r.buf, rest)]
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
}

func (r *reader) emit(line []byte) (bool, error) {
	e, err := ParseLine(line, r.entry)
	if err != nil {
		return false, nil
	}
	r.entry = e.Log[:0]
	if !r.opts.Since.IsZero() && e.Time.Before(r.opts.Since) {
		return false, nil
	}
	if !r.opts.Until.IsZero() && e.Time.After(r.opts.Until) {
		return true, nil
	}
	return false, r.fn(e.Stream, e.Time, e.Log)
}

// tailOffset returns the offset of the start of the n-th last complete line.
func tailOffset(f *os.File, n int) (int64, error) {
	off, _, err := tailOffsetCount(f, n)
	return off, err
}

// tailOffsetCount is tailOffset that also says how many complete lines
// (at most n) follow that offset: fewer when the file has fewer.
func tailOffsetCount(f *os.File, n int) (int64, int, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	end := st.Size()
	if n == 0 {
		return end, 0, nil
	}
	const chunk = 32 * 1024
	buf := make([]byte, chunk)
	pos := end
	seen := 0
	// The start of the n-th last complete line is just after the (n+1)-th last
	// newline (an unterminated tail is not a complete line).
	for pos > 0 {
		sz := int64(chunk)
		if pos < sz {
			sz = pos
		}
		pos -= sz
		b := buf[:sz]
		if _, err := f.ReadAt(b, pos); err != nil && err != io.EOF {
			return 0, 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] == '\n' {
				seen++
				if seen == n+1 {
					return pos + int64(i) + 1, n, nil
				}
			}
		}
	}
	return 0, seen, nil // every newline ends one complete line
}

// watcher turns inotify events on one file into a channel; if inotify is not
// to be had, the channel stays silent and Read polls.
type watcher struct {
	events chan struct{}
	f      *os.File
}

func newWatcher(path string) *watcher {
	w := &watcher{events: make(chan struct{}, 1)}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return w
	}
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_MODIFY|unix.IN_ATTRIB|unix.IN_CLOSE_WRITE|unix.IN_MOVE_SELF|unix.IN_DELETE_SELF); err != nil {
		unix.Close(fd)
		return w
	}
	w.f = os.NewFile(uintptr(fd), "inotify") // non-blocking: served by the runtime poller, Close unblocks Read
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := w.f.Read(buf); err != nil {
				return
			}
			select {
			case w.events <- struct{}{}:
			default:
			}
		}
	}()
	return w
}

func (w *watcher) close() {
	if w.f != nil {
		w.f.Close()
	}
}
