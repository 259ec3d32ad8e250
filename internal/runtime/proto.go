package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/wharfhq/wharf/internal/runtime/monitor"
)

// startReport is what the shim tells its parent once the container runs (or failed to).
type startReport struct {
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
	Code  int    `json:"code,omitempty"` // StartError code when Error is set
}

// The protocol itself is package monitor's (it serves the socket).
type (
	exitRecord = monitor.ExitRecord
	request    = monitor.Request
)

var (
	writeFrame     = monitor.WriteFrame
	readFrame      = monitor.ReadFrame
	writeJSONLine  = monitor.WriteJSONLine
	writeStateFile = monitor.WriteStateFile
	setWinsize     = monitor.SetWinsize
)

const (
	frameStdin    = monitor.FrameStdin
	frameStdout   = monitor.FrameStdout
	frameStderr   = monitor.FrameStderr
	frameAck      = monitor.FrameAck
	frameExit     = monitor.FrameExit
	frameStdinEOF = monitor.FrameStdinEOF
)

func exitStatusOf(e exitRecord) ExitStatus {
	return ExitStatus{Code: e.Code, ExitedAt: e.ExitedAt, OOMKilled: e.OOMKilled}
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
