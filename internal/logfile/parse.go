package logfile

import (
	"encoding/json"
	"errors"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// Entry is one decoded json-file line.
type Entry struct {
	Stream string
	Time   time.Time
	Log    []byte // as logged: a complete line ends in "\n"
}

var errSyntax = errors.New("logfile: malformed json-file line")

// ParseLine decodes one json-file line (without or with its final newline).
// Log is appended to dst[:0] (pass a reused buffer to avoid allocating).
// Lines written by this package and by Docker take a fast path; anything
// else that is valid JSON (other field order, extra fields) is decoded
// with encoding/json.
func ParseLine(line []byte, dst []byte) (Entry, error) {
	for len(line) > 0 && (line[len(line)-1] == '\n' || line[len(line)-1] == '\r') {
		line = line[:len(line)-1]
	}
	if e, ok := parseFast(line, dst[:0]); ok {
		return e, nil
	}
	var v struct {
		Log    *string   `json:"log"`
		Stream string    `json:"stream"`
		Time   time.Time `json:"time"`
	}
	if err := json.Unmarshal(line, &v); err != nil {
		return Entry{}, errSyntax
	}
	if v.Log == nil {
		return Entry{}, errSyntax
	}
	return Entry{Stream: internStream([]byte(v.Stream)), Time: v.Time, Log: append(dst[:0], *v.Log...)}, nil
}

// parseFast handles exactly {"log":"…","stream":"…","time":"…"}.
func parseFast(b []byte, dst []byte) (Entry, bool) {
	const p1, p2, p3 = `{"log":`, `,"stream":`, `,"time":`
	if !hasPrefix(b, p1) {
		return Entry{}, false
	}
	b = b[len(p1):]
	log, rest, ok := unquote(b, dst)
	if !ok || !hasPrefix(rest, p2) {
		return Entry{}, false
	}
	b = rest[len(p2):]
	streamStart := len(log)
	withStream, rest, ok := unquote(b, log)
	if !ok || !hasPrefix(rest, p3) {
		return Entry{}, false
	}
	stream := internStream(withStream[streamStart:])
	log = withStream[:streamStart]
	b = rest[len(p3):]
	if len(b) < 2 || b[0] != '"' {
		return Entry{}, false
	}
	end := -1
	for i := 1; i < len(b); i++ {
		c := b[i]
		if c == '"' {
			end = i
			break
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			return Entry{}, false
		}
	}
	if end < 0 || len(b) != end+2 || b[end+1] != '}' {
		return Entry{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(b[1:end]))
	if err != nil {
		return Entry{}, false
	}
	return Entry{Stream: stream, Time: t, Log: log}, true
}

func internStream(s []byte) string {
	switch string(s) {
	case "stdout":
		return "stdout"
	case "stderr":
		return "stderr"
	}
	return string(s)
}

func hasPrefix(b []byte, p string) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == p
}

// unquote decodes the JSON string at the start of b, appending its value to
// dst. It returns the rest of b after the closing quote. Like encoding/json,
// invalid UTF-8 and lone surrogates become U+FFFD.
func unquote(b []byte, dst []byte) ([]byte, []byte, bool) {
	if len(b) == 0 || b[0] != '"' {
		return dst, nil, false
	}
	i := 1
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			return dst, b[i+1:], true
		case c == '\\':
			if i+1 >= len(b) {
				return dst, nil, false
			}
			switch e := b[i+1]; e {
			case '"', '\\', '/':
				dst = append(dst, e)
				i += 2
			case 'b':
				dst = append(dst, '\b')
				i += 2
			case 'f':
				dst = append(dst, '\f')
				i += 2
			case 'n':
				dst = append(dst, '\n')
				i += 2
			case 'r':
				dst = append(dst, '\r')
				i += 2
			case 't':
				dst = append(dst, '\t')
				i += 2
			case 'u':
				r, ok := hex4(b[i+2:])
				if !ok {
					return dst, nil, false
				}
				i += 6
				if utf16.IsSurrogate(r) {
					r2 := utf8.RuneError
					if len(b) >= i+6 && b[i] == '\\' && b[i+1] == 'u' {
						if x, ok := hex4(b[i+2:]); ok {
							if d := utf16.DecodeRune(r, x); d != utf8.RuneError {
								r2 = d
								i += 6
							}
						}
					}
					r = r2
				}
				dst = utf8.AppendRune(dst, r)
			default:
				return dst, nil, false
			}
		case c < 0x20:
			return dst, nil, false
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, "\uFFFD"...)
			} else {
				dst = append(dst, b[i:i+size]...)
			}
			i += size
		}
	}
	return dst, nil, false
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
