package registry

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	units "github.com/docker/go-units"
)

// Progress receives Docker's JSON progress messages (one object per line). Its zero value
// discards everything. It is safe for concurrent use.
type Progress struct {
	mu      sync.Mutex
	w       io.Writer
	flush   func()
	started func() // called once before the first message (the API writes its headers then)
	wrote   bool
}

// NewProgress writes messages to w; flush (optional) is called after each; started (optional)
// once before the first.
func NewProgress(w io.Writer, flush func(), started func()) *Progress {
	return &Progress{w: w, flush: flush, started: started}
}

// Wrote reports whether any message was written (an error can then only go into the stream).
func (p *Progress) Wrote() bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.wrote
}

// Message is one line of the stream.
type Message struct {
	Status         string          `json:"status,omitempty"`
	ProgressDetail *ProgressDetail `json:"progressDetail,omitempty"`
	Progress       string          `json:"progress,omitempty"`
	ID             string          `json:"id,omitempty"`
	Aux            any             `json:"aux,omitempty"`
	ErrorDetail    *ErrorDetail    `json:"errorDetail,omitempty"`
	Error          string          `json:"error,omitempty"`
}

// ProgressDetail is the numeric part of a progress message.
type ProgressDetail struct {
	Current int64 `json:"current,omitempty"`
	Total   int64 `json:"total,omitempty"`
}

// ErrorDetail is an error in the stream.
type ErrorDetail struct {
	Code    int    `json:"code,omitempty"`
	Message string `json:"message"`
}

func (p *Progress) send(m Message) {
	if p == nil || p.w == nil {
		return
	}
	b, _ := json.Marshal(m)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.wrote {
		p.wrote = true
		if p.started != nil {
			p.started()
		}
	}
	p.w.Write(append(b, '\r', '\n'))
	if p.flush != nil {
		p.flush()
	}
}

// Status sends a plain status line ("Digest: sha256:…").
func (p *Progress) Status(format string, a ...any) {
	p.send(Message{Status: fmt.Sprintf(format, a...)})
}

// Item sends a status for one item (a layer): "Pulling fs layer", "Pull complete".
func (p *Progress) Item(id, status string) {
	p.send(Message{Status: status, ID: id, ProgressDetail: &ProgressDetail{}})
}

// Aux sends an aux object (push's {Tag, Digest, Size}).
func (p *Progress) Aux(v any) { p.send(Message{Aux: v, ProgressDetail: &ProgressDetail{}}) }

// Err sends an error into the stream, as dockerd does once the stream has started.
func (p *Progress) Err(err error) {
	p.send(Message{ErrorDetail: &ErrorDetail{Message: err.Error()}, Error: err.Error()})
}

// Bar renders Docker's progress bar text: "[=====>      ]  1.2MB/2.4MB".
func Bar(current, total int64) string {
	if total <= 0 {
		return units.HumanSize(float64(current))
	}
	const width = 50
	n := int(float64(width) * float64(current) / float64(total))
	if n > width {
		n = width
	}
	bar := strings.Repeat("=", n)
	if n < width {
		bar += ">" + strings.Repeat(" ", width-n-1)
	}
	return fmt.Sprintf("[%s]  %s/%s", bar, units.HumanSize(float64(current)), units.HumanSize(float64(total)))
}

// counter counts bytes read and reports them at most every 100 ms.
type counter struct {
	r      io.Reader
	p      *Progress
	id     string
	status string
	total  int64
	n      int64
	last   time.Time
}

func (c *counter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	if now := time.Now(); now.Sub(c.last) > 100*time.Millisecond || (err == io.EOF && c.n > 0) {
		c.last = now
		c.p.send(Message{Status: c.status, ID: c.id, ProgressDetail: &ProgressDetail{Current: c.n, Total: c.total}, Progress: Bar(c.n, c.total)})
	}
	return n, err
}

// shortID is the 12-hex form Docker uses as the id of a layer line.
func shortID(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 {
		d = d[i+1:]
	}
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}
