package engine

import (
	"context"
	"io"
	"time"

	"github.com/wharfhq/wharf/internal/logfile"
)

// LogOptions are docker logs' options.
type LogOptions struct {
	Follow       bool
	Tail         int // -1 = all
	Since, Until time.Time
}

// Logs calls fn for each log line; with Follow it continues until the container stops or ctx ends.
func (e *Engine) Logs(ctx context.Context, ref string, opts LogOptions, fn func(stream string, t time.Time, line []byte) error) error {
	c, err := e.Container(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	done := c.exited
	path := c.LogPath
	c.mu.Unlock()
	ro := logfile.ReadOptions{Follow: opts.Follow, Tail: opts.Tail, Since: opts.Since, Until: opts.Until, Done: done}
	return logfile.Read(ctx, path, ro, fn)
}

// AttachOptions is an attach request. Output is written raw: the caller frames it.
type AttachOptions struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Logs           bool // replay what was logged so far
	Stream         bool // then follow live output until the container's current (or next) run ends
	// From, when set, is when the client asked to attach: output logged from then on is streamed even if
	// the container started (and wrote) before this call got to read its log.
	From time.Time
}

// Attach connects to a container's streams. For a container not yet started, it waits for the start
// (docker run attaches before it starts), so nothing the container writes is missed.
func (e *Engine) Attach(ctx context.Context, ref string, opts AttachOptions) error {
	c, err := e.Container(ref)
	if err != nil {
		return err
	}
	write := func(stream string, _ time.Time, line []byte) error {
		w := opts.Stdout
		if stream == "stderr" {
			w = opts.Stderr
		}
		if w == nil {
			return nil
		}
		_, err := w.Write(line)
		return err
	}
	if opts.Logs {
		if err := logfile.Read(ctx, c.LogPath, logfile.ReadOptions{Tail: -1}, write); err != nil {
			return err
		}
	}
	if !opts.Stream {
		return nil
	}
	c.mu.Lock()
	var done <-chan struct{}
	if c.Running() {
		done = c.exited
	} else {
		ch := make(chan int, 1)
		c.waitNext = append(c.waitNext, ch)
		d := make(chan struct{})
		go func() {
			select {
			case <-ch:
			case <-ctx.Done():
			}
			close(d)
		}()
		done = d
	}
	stdinWanted := opts.Stdin != nil && c.Config.OpenStdin
	c.mu.Unlock()
	if stdinWanted {
		go e.feedStdin(ctx, c, done, opts.Stdin)
	}
	ro := logfile.ReadOptions{Follow: true, Tail: 0, Done: done}
	if !opts.From.IsZero() {
		ro.Tail, ro.Since = -1, opts.From
	}
	return logfile.Read(ctx, c.LogPath, ro, write)
}

// feedStdin waits for the container's task and forwards stdin to it.
func (e *Engine) feedStdin(ctx context.Context, c *Container, done <-chan struct{}, stdin io.Reader) {
	for {
		c.mu.Lock()
		task := c.task
		c.mu.Unlock()
		if task != nil {
			task.Attach(ctx, stdin, nil, nil)
			return
		}
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Resize sets the tty size of a running container.
func (e *Engine) Resize(ref string, w, h uint16) error {
	c, err := e.Container(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	task := c.task
	c.mu.Unlock()
	if task == nil {
		return Conflict("cannot resize container %s: container is not running", ref)
	}
	return task.Resize(w, h)
}
