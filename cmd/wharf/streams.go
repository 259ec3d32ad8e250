package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// errDetached is returned when the user typed the detach key sequence.
var errDetached = errors.New("read escape sequence")

// hijackedIO pumps the local streams through an attach or exec connection: stdin raw (in a raw terminal when
// tty), output raw when tty, else demultiplexed with stdcopy.
type hijackedIO struct {
	in         io.Reader // nil: stdin not attached
	out, errw  io.Writer // nil: not attached
	resp       client.HijackedResponse
	tty        bool
	detachKeys []byte
}

// stream runs until the output ends (or stdin ends with no output attached, or ctx is done).
func (h *hijackedIO) stream(ctx context.Context) error {
	restore := func() {}
	if h.in != nil && h.tty {
		if fd, ok := isTerminal(h.in); ok {
			if st, err := term.MakeRaw(int(fd)); err == nil {
				var once sync.Once
				restore = func() { once.Do(func() { _ = term.Restore(int(fd), st) }) }
			}
		}
	}
	defer restore()

	outputDone := make(chan error, 1)
	if h.out != nil || h.errw != nil {
		go func() {
			var err error
			out, errw := orDiscard(h.out), orDiscard(h.errw)
			if h.tty {
				_, err = io.Copy(out, h.resp.Reader)
				restore()
			} else {
				_, err = stdcopy.StdCopy(out, errw, h.resp.Reader)
			}
			if err != nil && isClosedConnErr(err) {
				err = nil
			}
			outputDone <- err
		}()
	} else {
		close(outputDone)
	}

	inputDone := make(chan struct{})
	detached := make(chan error, 1)
	if h.in != nil {
		go func() {
			defer close(inputDone)
			in := h.in
			if h.tty && len(h.detachKeys) > 0 {
				in = &escapeProxy{r: in, keys: h.detachKeys}
			}
			_, err := io.Copy(h.resp.Conn, in)
			restore()
			if errors.Is(err, errDetached) {
				detached <- err
				return
			}
			_ = h.resp.CloseWrite()
		}()
	} else {
		close(inputDone)
	}

	select {
	case err, ok := <-outputDone:
		if !ok {
			// Nothing to read: wait for stdin to end.
			select {
			case <-inputDone:
			case err := <-detached:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return err
	case <-inputDone:
		if h.out != nil || h.errw != nil {
			select {
			case err := <-outputDone:
				return err
			case err := <-detached:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	case err := <-detached:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

func isClosedConnErr(err error) bool {
	return errors.Is(err, io.EOF) || strings.Contains(err.Error(), "use of closed network connection")
}

// escapeProxy passes bytes through until the detach sequence is typed; then it returns errDetached. Bytes that
// start the sequence but do not complete it are passed on.
type escapeProxy struct {
	r       io.Reader
	keys    []byte
	matched int
	pending []byte
}

func (e *escapeProxy) Read(p []byte) (int, error) {
	if len(e.pending) > 0 {
		n := copy(p, e.pending)
		e.pending = e.pending[n:]
		return n, nil
	}
	buf := make([]byte, len(p))
	n, err := e.r.Read(buf)
	out := p[:0]
	for i := 0; i < n; i++ {
		b := buf[i]
		if b == e.keys[e.matched] {
			e.matched++
			if e.matched == len(e.keys) {
				return copy(p, out), errDetached
			}
			continue
		}
		if e.matched > 0 {
			out = append(out, e.keys[:e.matched]...)
			e.matched = 0
		}
		if b == e.keys[0] {
			e.matched = 1
			continue
		}
		out = append(out, b)
	}
	if len(out) > len(p) {
		e.pending = append(e.pending, out[len(p):]...)
		out = out[:len(p)]
	}
	return len(out), err
}

// parseDetachKeys parses "ctrl-p,ctrl-q" style sequences.
func parseDetachKeys(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	var out []byte
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		switch {
		case len(k) == 1:
			out = append(out, k[0])
		case strings.HasPrefix(k, "ctrl-") && len(k) == 6:
			c := k[5]
			switch {
			case c >= 'a' && c <= 'z':
				out = append(out, c-'a'+1)
			case c == '@':
				out = append(out, 0)
			case c == '[':
				out = append(out, 27)
			case c == '\\':
				out = append(out, 28)
			case c == ']':
				out = append(out, 29)
			case c == '^':
				out = append(out, 30)
			case c == '_':
				out = append(out, 31)
			default:
				return nil, fmt.Errorf("Unknown character: '%s'", k)
			}
		default:
			return nil, fmt.Errorf("Unknown character: '%s'", k)
		}
	}
	return out, nil
}

const defaultDetachKeys = "ctrl-p,ctrl-q"

// --- tty size ------------------------------------------------------------------------------------------------------

// ttySize returns the size of the terminal on w (0,0 when not a terminal).
func ttySize(w any) (height, width uint) {
	fd, ok := isTerminal(w)
	if !ok {
		return 0, 0
	}
	wd, ht, err := term.GetSize(int(fd))
	if err != nil {
		return 0, 0
	}
	return uint(ht), uint(wd)
}

// monitorTTYSize resizes the container's (or exec's) tty now and on every SIGWINCH until ctx is done.
func (c *cli) monitorTTYSize(ctx context.Context, api *client.Client, id string, isExec bool) {
	resize := func() error {
		h, w := ttySize(c.out)
		if h == 0 && w == 0 {
			return nil
		}
		var err error
		if isExec {
			_, err = api.ExecResize(ctx, id, client.ExecResizeOptions{Height: h, Width: w})
		} else {
			_, err = api.ContainerResize(ctx, id, client.ContainerResizeOptions{Height: h, Width: w})
		}
		return err
	}
	if err := resize(); err != nil {
		go func() {
			var err error
			for retry := 0; retry < 10; retry++ {
				time.Sleep(time.Duration(retry+1) * 10 * time.Millisecond)
				if err = resize(); err == nil {
					return
				}
			}
			fmt.Fprintln(c.err, "failed to resize tty, using default size")
		}()
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGWINCH)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ch:
				_ = resize()
			case <-ctx.Done():
				return
			}
		}
	}()
}

// --- signal proxy ----------------------------------------------------------------------------------------------------

// forwardSignals sends every signal this process gets to the container as POST /kill, until stop is called.
func forwardSignals(api *client.Client, id string) (stop func()) {
	ch := make(chan os.Signal, 128)
	signal.Notify(ch)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-ch:
				sig, ok := s.(syscall.Signal)
				if !ok {
					continue
				}
				switch sig {
				case syscall.SIGCHLD, syscall.SIGPIPE, syscall.SIGURG, syscall.SIGWINCH:
					continue
				}
				name := strings.TrimPrefix(unix.SignalName(sig), "SIG")
				if name == "" {
					continue
				}
				_, _ = api.ContainerKill(context.Background(), id, client.ContainerKillOptions{Signal: name})
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

// readAllTrim reads a small body into a trimmed string (used for errors in streams).
func readAllTrim(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 64<<10))
	return string(bytes.TrimSpace(b))
}
