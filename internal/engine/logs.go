package engine

import (
	"context"
	"io"
	"strconv"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"

	"github.com/wharfhq/wharf/internal/logfile"
)

// Log drivers: json-file (the default), local (json-file here too, with the
// local driver's rotation defaults) and none. Options as dockerd's json-file.
const (
	logDriverJSONFile = "json-file"
	logDriverLocal    = "local"
	logDriverNone     = "none"
)

// logSettings checks a container's --log-driver/--log-opt and returns whether
// it logs at all and how its log rotates. Errors read as dockerd's.
func logSettings(lc container.LogConfig) (bool, logfile.Rotation, error) {
	var rot logfile.Rotation
	switch lc.Type {
	case "", logDriverJSONFile:
	case logDriverLocal:
		rot = logfile.Rotation{MaxSize: 20 << 20, MaxFiles: 5}
	case logDriverNone:
		for k := range lc.Config {
			return false, rot, Invalid("unknown log opt '%s' for %s log driver", k, lc.Type)
		}
		return false, rot, nil
	default:
		return false, rot, Invalid("error looking up logging plugin %s: plugin %q not found", lc.Type, lc.Type)
	}
	driver := lc.Type
	if driver == "" {
		driver = logDriverJSONFile
	}
	for k, v := range lc.Config {
		switch k {
		case "max-size":
			n, err := units.RAMInBytes(v)
			if err != nil {
				return false, rot, Invalid("failed to initialize logging driver: invalid size: '%s'", v)
			}
			rot.MaxSize = n
		case "max-file":
			n, err := strconv.Atoi(v)
			if err != nil {
				return false, rot, Invalid("failed to initialize logging driver: %v", err)
			}
			if n < 1 {
				return false, rot, Invalid("failed to initialize logging driver: max-file cannot be less than 1")
			}
			rot.MaxFiles = n
		case "compress", "labels", "labels-regex", "env", "env-regex", "tag":
			// accepted; rotated files are kept uncompressed
		case "mode", "max-buffer-size":
			// the generic log options; the monitor never blocks the container on the log
		default:
			return false, rot, Invalid("unknown log opt '%s' for %s log driver", k, driver)
		}
	}
	if rot.MaxSize <= 0 {
		rot = logfile.Rotation{} // max-file alone does nothing, as in dockerd
	}
	return true, rot, nil
}

// errLogsNotReadable is what docker logs says of a container logging to "none".
var errLogsNotReadable = Invalid("configured logging driver does not support reading")

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
	noLog := c.HostConfig != nil && c.HostConfig.LogConfig.Type == logDriverNone
	c.mu.Unlock()
	if noLog {
		return errLogsNotReadable
	}
	ro := logfile.ReadOptions{Follow: opts.Follow, Tail: opts.Tail, Since: opts.Since, Until: opts.Until, Done: done}
	return logfile.Read(ctx, path, ro, fn)
}

// LogsReadable reports (as docker logs would) whether the container's log can be read: not with --log-driver none.
func (e *Engine) LogsReadable(ref string) error {
	c, err := e.Container(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.HostConfig != nil && c.HostConfig.LogConfig.Type == logDriverNone {
		return errLogsNotReadable
	}
	return nil
}

// AttachOptions is an attach request. Output is written raw: the caller frames it.
type AttachOptions struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Logs           bool // replay what was logged so far
	Stream         bool // then stream live output until the container's current (or next) run ends
	// Ready is called once the attach is registered: a start after that misses no output.
	Ready func()
}

// Attach connects to a container's streams. For a container not yet started it waits for the start
// (docker run attaches first), and the shim holds the output until this attach reads it, so nothing
// the container writes is missed, including a prompt with no newline.
func (e *Engine) Attach(ctx context.Context, ref string, opts AttachOptions) error {
	c, err := e.Container(ref)
	if err != nil {
		return err
	}
	ready := func() {
		if opts.Ready != nil {
			opts.Ready()
			opts.Ready = nil
		}
	}
	defer ready()
	c.mu.Lock()
	task, started := c.task, c.startDone
	tty, openStdin := c.Config.Tty, c.Config.OpenStdin
	if task == nil && opts.Stream {
		c.pendingAttach++
	}
	c.mu.Unlock()
	ready()
	if opts.Logs {
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
		if err := logfile.Read(ctx, c.LogPath, logfile.ReadOptions{Tail: -1}, write); err != nil {
			return err
		}
	}
	if !opts.Stream {
		return nil
	}
	if task == nil {
		select {
		case <-started:
		case <-ctx.Done():
			c.mu.Lock()
			c.pendingAttach--
			c.mu.Unlock()
			return ctx.Err()
		}
		c.mu.Lock()
		task = c.task
		c.mu.Unlock()
		if task == nil {
			return nil // the start failed: the client hears it from its start call
		}
	}
	stdin := opts.Stdin
	if !openStdin {
		stdin = nil
	}
	stdout, stderr := opts.Stdout, opts.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	if tty {
		stderr = stdout
	}
	return task.Attach(ctx, stdin, stdout, stderr)
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
