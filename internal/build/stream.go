package build

import (
	"encoding/json"
	"io"
	"net/http"
	"sync"
)

// stream writes Docker's JSON-lines build output; safe for concurrent use (RUN output arrives
// on the attach goroutine).
type stream struct {
	mu    sync.Mutex
	w     io.Writer
	quiet bool
}

type jsonMessage struct {
	Stream      string          `json:"stream,omitempty"`
	Status      string          `json:"status,omitempty"`
	ID          string          `json:"id,omitempty"`
	Aux         json.RawMessage `json:"aux,omitempty"`
	Error       string          `json:"error,omitempty"`
	ErrorDetail *errorDetail    `json:"errorDetail,omitempty"`
}

type errorDetail struct {
	Code    int    `json:"code,omitempty"`
	Message string `json:"message"`
}

func (s *stream) write(m jsonMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	s.w.Write(append(b, '\n'))
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
}

// printf sends progress text (not in quiet mode).
func (s *stream) print(text string) {
	if s.quiet || text == "" {
		return
	}
	s.write(jsonMessage{Stream: text})
}

func (s *stream) aux(v any) {
	b, _ := json.Marshal(v)
	s.write(jsonMessage{Aux: b})
}

func (s *stream) fail(msg string, code int) {
	if code == 0 {
		code = 1
	}
	s.write(jsonMessage{Error: msg, ErrorDetail: &errorDetail{Code: code, Message: msg}})
}

// outWriter streams a RUN's stdout; errWriter its stderr, in red as Docker does.
type outWriter struct {
	s   *stream
	err bool
}

func (w outWriter) Write(p []byte) (int, error) {
	if w.s.quiet {
		return len(p), nil
	}
	t := string(p)
	if w.err {
		t = "\x1b[91m" + t + "\x1b[0m"
	}
	w.s.write(jsonMessage{Stream: t})
	return len(p), nil
}
