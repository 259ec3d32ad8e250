package docker

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"sync"
)

// muxWriter frames one stream of the multiplexed attach/logs protocol: an 8-byte header
// (stream id, 3 zero bytes, big-endian length) before each payload. Writers sharing a
// connection share mu.
type muxWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	stream byte
	flush  func()
}

func (m *muxWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var hdr [8]byte
	hdr[0] = m.stream
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(p)))
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.w.Write(hdr[:]); err != nil {
		return 0, err
	}
	n, err := m.w.Write(p)
	if m.flush != nil {
		m.flush()
	}
	return n, err
}

// lockedWriter serialises raw writes (tty streams) and flushes after each.
type lockedWriter struct {
	mu    *sync.Mutex
	w     io.Writer
	flush func()
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.w.Write(p)
	if l.flush != nil {
		l.flush()
	}
	return n, err
}

// outputs returns stdout and stderr writers for w, multiplexed unless tty.
func outputs(w io.Writer, tty bool, flush func()) (stdout, stderr io.Writer) {
	mu := &sync.Mutex{}
	if tty {
		lw := &lockedWriter{mu: mu, w: w, flush: flush}
		return lw, lw
	}
	return &muxWriter{mu: mu, w: w, stream: 1, flush: flush}, &muxWriter{mu: mu, w: w, stream: 2, flush: flush}
}

// hijack takes over the connection for attach/exec and writes the 101 (or 200) answer.
func hijack(r *request, tty bool) (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := r.w.(http.Hijacker)
	if !ok {
		return nil, nil, io.ErrUnexpectedEOF
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	ct := "application/vnd.docker.multiplexed-stream"
	if tty {
		ct = "application/vnd.docker.raw-stream"
	}
	if r.Header.Get("Upgrade") != "" {
		brw.WriteString("HTTP/1.1 101 UPGRADED\r\nContent-Type: " + ct + "\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
	} else {
		brw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: " + ct + "\r\n\r\n")
	}
	brw.Flush()
	return conn, brw, nil
}

// stdinReader reads the client's stdin from a hijacked connection (buffered bytes first).
type stdinReader struct {
	br *bufio.Reader
}

func (s stdinReader) Read(p []byte) (int, error) { return s.br.Read(p) }

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}
