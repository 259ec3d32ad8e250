package monitor

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"
)

// The shim socket protocol (<root>/<id>/shim.sock). A client sends one JSON
// request line; then:
//
//	wait:   the monitor answers one JSON line (ExitRecord, or {"error":…}) once the container has exited.
//	resize: the monitor answers {"error":""} at once.
//	attach: both sides exchange frames: a type byte, a big-endian uint32 length, the payload.
//	        monitor → client: FrameAck once registered, FrameStdout/FrameStderr output,
//	        FrameExit (payload: ExitRecord JSON) last.
//	        client → monitor: FrameStdin data, FrameStdinEOF (close the container's stdin).
const (
	FrameStdin    = 0
	FrameStdout   = 1
	FrameStderr   = 2
	FrameAck      = 'a'
	FrameExit     = 'x'
	FrameStdinEOF = 'e'

	maxFrame = 1 << 20
)

// Request is the first line a client sends.
type Request struct {
	Op     string `json:"op"` // "attach", "wait", "resize"
	Stdin  bool   `json:"stdin,omitempty"`
	Width  uint16 `json:"width,omitempty"`
	Height uint16 `json:"height,omitempty"`
}

// ExitRecord is exit.json and the answer to wait.
type ExitRecord struct {
	Code      int       `json:"code"`
	ExitedAt  time.Time `json:"exitedAt"`
	OOMKilled bool      `json:"oomKilled"`
	Error     string    `json:"error,omitempty"`
}

// WriteFrame writes one frame in a single write.
func WriteFrame(w io.Writer, typ byte, p []byte) error {
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(p)))
	if len(p) == 0 {
		_, err := w.Write(hdr[:])
		return err
	}
	bufs := net.Buffers{hdr[:], p} // one writev
	_, err := bufs.WriteTo(w)
	return err
}

// ReadFrame reads one frame into buf (grown as needed).
func ReadFrame(r *bufio.Reader, buf []byte) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, buf, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, buf, errors.New("shim protocol: frame too large")
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, buf, err
	}
	return hdr[0], buf, nil
}

// WriteJSONLine writes v as one JSON line.
func WriteJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteStateFile replaces path with data atomically (temporary file, then
// rename), without fsync. Files in the runtime's state root (the exec root:
// shim.json, exit.json) describe live processes: a crash of the daemon or of a
// monitor keeps the page cache, so readers see the old or the new file whole;
// a power loss ends every container anyway, and readers treat a missing or
// torn file as "the container is gone" (as runc does with its state.json).
// Syncing here cost ≈ 1 ms of every container start and exit on a disk.
func WriteStateFile(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
