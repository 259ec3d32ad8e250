package engine

import (
	"sync"
	"time"
)

// Event is one engine event (Docker's /events).
type Event struct {
	Type     string // container, image, volume, network
	Action   string
	ID       string
	Attrs    map[string]string
	TimeNano int64
}

// events is an in-memory broadcaster with a bounded history for --since.
type events struct {
	mu      sync.Mutex
	history []Event
	subs    map[chan Event]struct{}
}

const eventHistory = 1024

func newEvents() *events { return &events{subs: map[chan Event]struct{}{}} }

func (e *events) publish(ev Event) {
	if ev.TimeNano == 0 {
		ev.TimeNano = time.Now().UnixNano()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.history = append(e.history, ev)
	if len(e.history) > eventHistory {
		e.history = append(e.history[:0:0], e.history[len(e.history)-eventHistory:]...)
	}
	for ch := range e.subs {
		select {
		case ch <- ev:
		default: // a slow reader loses events rather than stalling the engine
		}
	}
}

// Subscribe returns past events at or after since (zero: none) and a live channel; call cancel when done.
func (e *Engine) Subscribe(since time.Time) (past []Event, live <-chan Event, cancel func()) {
	ch := make(chan Event, 256)
	e.ev.mu.Lock()
	if !since.IsZero() {
		for _, ev := range e.ev.history {
			if ev.TimeNano >= since.UnixNano() {
				past = append(past, ev)
			}
		}
	}
	e.ev.subs[ch] = struct{}{}
	e.ev.mu.Unlock()
	return past, ch, func() {
		e.ev.mu.Lock()
		delete(e.ev.subs, ch)
		e.ev.mu.Unlock()
	}
}

func (e *Engine) containerEvent(c *Container, action string, extra map[string]string) {
	attrs := map[string]string{"name": trimSlash(c.Name), "image": c.ImageRef}
	if c.Config != nil {
		for k, v := range c.Config.Labels {
			attrs[k] = v
		}
	}
	for k, v := range extra {
		attrs[k] = v
	}
	e.ev.publish(Event{Type: "container", Action: action, ID: c.ID, Attrs: attrs})
}

func trimSlash(s string) string {
	if len(s) > 0 && s[0] == '/' {
		return s[1:]
	}
	return s
}
