package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	units "github.com/docker/go-units"
)

// jsonMessage is one line of the daemon's JSON progress streams (pull, push, load, import, build).
type jsonMessage struct {
	Stream         string          `json:"stream,omitempty"`
	Status         string          `json:"status,omitempty"`
	Progress       string          `json:"progress,omitempty"`
	ProgressDetail *progressDetail `json:"progressDetail,omitempty"`
	ID             string          `json:"id,omitempty"`
	Error          *jsonError      `json:"errorDetail,omitempty"`
	ErrorMessage   string          `json:"error,omitempty"`
	Aux            json.RawMessage `json:"aux,omitempty"`
}

type progressDetail struct {
	Current int64 `json:"current,omitempty"`
	Total   int64 `json:"total,omitempty"`
}

type jsonError struct {
	Code    int    `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

func (e *jsonError) Error() string { return e.Message }

// streamError is an error the daemon reported inside a stream (its code becomes the exit status for build).
type streamError struct {
	Code    int
	Message string
}

func (e streamError) Error() string { return e.Message }

// displayJSONStream prints a progress stream like docker does: "stream" text as is, "status" lines prefixed
// with their id; on a terminal, lines with an id are updated in place. It returns the first error in the
// stream. aux (if non-nil) gets every "aux" payload.
func displayJSONStream(in io.Reader, out io.Writer, isTerm bool, aux func(json.RawMessage)) error {
	dec := json.NewDecoder(in)
	ids := map[string]uint{}
	var lines uint
	for {
		var jm jsonMessage
		if err := dec.Decode(&jm); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if jm.Aux != nil {
			if aux != nil {
				aux(jm.Aux)
			}
			continue
		}
		if jm.Error != nil {
			return streamError{Code: jm.Error.Code, Message: jm.Error.Message}
		}
		if jm.ErrorMessage != "" {
			return streamError{Code: 1, Message: jm.ErrorMessage}
		}
		var diff uint
		if isTerm && jm.ID != "" && (jm.Progress != "" || jm.ProgressDetail != nil || jm.Status != "") {
			line, ok := ids[jm.ID]
			if !ok {
				// A new id gets a new line at the bottom.
				line = lines
				ids[jm.ID] = line
				lines++
				fmt.Fprintf(out, "\n")
			}
			diff = lines - line
			fmt.Fprintf(out, "\x1b[%dA", diff) // cursor up
		} else if jm.Stream == "" && jm.Status != "" {
			// A line without an id: the block of id lines above stays where it is.
			ids = map[string]uint{}
			lines = 0
		}
		displayOne(out, &jm, isTerm)
		if diff > 0 {
			fmt.Fprintf(out, "\x1b[%dB", diff) // cursor down
		}
	}
}

func displayOne(out io.Writer, jm *jsonMessage, isTerm bool) {
	endl := "\n"
	if isTerm && jm.Stream == "" && jm.ID != "" {
		fmt.Fprint(out, "\x1b[2K\r") // clear line
		endl = "\r"
	}
	if jm.ID != "" {
		fmt.Fprintf(out, "%s: ", jm.ID)
	}
	switch {
	case jm.Progress != "" && isTerm:
		fmt.Fprintf(out, "%s %s%s", jm.Status, jm.Progress, endl)
	case jm.ProgressDetail != nil && jm.ProgressDetail.Total > 0 && isTerm:
		fmt.Fprintf(out, "%s %s/%s%s", jm.Status, units.HumanSize(float64(jm.ProgressDetail.Current)),
			units.HumanSize(float64(jm.ProgressDetail.Total)), endl)
	case jm.Stream != "":
		fmt.Fprintf(out, "%s", jm.Stream)
	default:
		if isTerm && jm.ID != "" {
			fmt.Fprintf(out, "%s%s", jm.Status, endl)
		} else {
			fmt.Fprintf(out, "%s\n", strings.TrimRight(jm.Status, "\n"))
		}
	}
}
