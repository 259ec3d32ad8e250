package runtime

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// The shim socket protocol. A client sends one JSON request line; then:
//
//	wait:   the shim answers one JSON line (exitRecord, or {"error":…}) once the container has exited.
//	resize: the shim answers {"error":""} at once.
//	attach: both sides exchange frames: a type byte, a big-endian uint32 length, the payload.
//	        shim → client: frameAck once registered, frameStdout/frameStderr output,
//	        frameExit (payload: exitRecord JSON) last.
//	        client → shim: frameStdin data, frameStdinEOF (close the container's stdin).
const (
	frameStdin    = 0
	frameStdout   = 1
	frameStderr   = 2
	frameAck      = 'a'
	frameExit     = 'x'
	frameStdinEOF = 'e'

	maxFrame = 1 << 20
)

type request struct {
	Op     string `json:"op"` // "attach", "wait", "resize"
	Stdin  bool   `json:"stdin,omitempty"`
	Width  uint16 `json:"width,omitempty"`
	Height uint16 `json:"height,omitempty"`
}

// exitRecord is exit.json and the answer to wait.
type exitRecord struct {
	Code      int       `json:"code"`
	ExitedAt  time.Time `json:"exitedAt"`
	OOMKilled bool      `json:"oomKilled"`
	Error     string    `json:"error,omitempty"`
}

func (e exitRecord) status() ExitStatus {
	return ExitStatus{Code: e.Code, ExitedAt: e.ExitedAt, OOMKilled: e.OOMKilled}
}

// startReport is what the shim tells its parent once the container runs (or failed to).
type startReport struct {
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
	Code  int    `json:"code,omitempty"` // StartError code when Error is set
}

func writeFrame(w io.Writer, typ byte, p []byte) error {
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

// readFrame reads one frame into buf (grown as needed).
func readFrame(r *bufio.Reader, buf []byte) (byte, []byte, error) {
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

// writeFileAtomic writes data to path through a temporary file, fsync and rename.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
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
	if err == nil {
		err = f.Sync()
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
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// recvFd receives one file descriptor sent with SCM_RIGHTS over a unix socket.
func recvFd(sock *os.File) (*os.File, error) {
	buf := make([]byte, 256)
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, os.NewSyscallError("recvmsg", err)
		}
		if n == 0 && oobn == 0 {
			return nil, errors.New("console socket closed without a file descriptor")
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			fds, err := unix.ParseUnixRights(&m)
			if err != nil {
				continue
			}
			for _, fd := range fds[1:] {
				unix.Close(fd)
			}
			if len(fds) > 0 {
				return os.NewFile(uintptr(fds[0]), string(buf[:n])), nil
			}
		}
		return nil, errors.New("console socket: no file descriptor received")
	}
}

// socketpair returns a connected pair of unix stream sockets as files (close-on-exec).
func socketpair() (*os.File, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	return os.NewFile(uintptr(fds[0]), "console-parent"), os.NewFile(uintptr(fds[1]), "console-child"), nil
}

func setWinsize(f *os.File, width, height uint16) error {
	return unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: width, Row: height})
}

// maxSunPath is the room for a socket path in sockaddr_un (108 with the final NUL).
const maxSunPath = 107

// sockName returns a name for the unix socket at path that fits in
// sockaddr_un: path itself, or, when too long, the same file reached through
// an O_PATH descriptor of its folder (/proc/self/fd/N/name). release closes
// that descriptor (the name is then useless).
func sockName(path string) (name string, release func(), err error) {
	if len(path) <= maxSunPath {
		return path, func() {}, nil
	}
	fd, err := unix.Open(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, &os.PathError{Op: "open", Path: filepath.Dir(path), Err: err}
	}
	return fmt.Sprintf("/proc/self/fd/%d/%s", fd, filepath.Base(path)), func() { unix.Close(fd) }, nil
}
