package main

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

type eventsOptions struct {
	since  string
	until  string
	filter filterOpt
	format string
}

func (c *cli) newEventsCommand() *cobra.Command {
	var o eventsOptions
	cmd := &cobra.Command{
		Use:   "events [OPTIONS]",
		Short: "Get real time events from the server",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runEvents(&o)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&o.since, "since", "", "Show all events created since timestamp")
	flags.StringVar(&o.until, "until", "", "Stream events until this timestamp")
	flags.VarP(&o.filter, "filter", "f", "Filter output based on conditions provided")
	flags.StringVar(&o.format, "format", "", "Format output using a custom template:\n'json':             Print in JSON format\n'TEMPLATE':         Print output using the given Go template")
	return cmd
}

func makeEventsTemplate(format string) (*template.Template, error) {
	switch format {
	case "":
		return nil, nil
	case jsonFormatKey:
		format = "{{json .}}"
	}
	t, err := template.New("").Funcs(templateFuncs).Parse(format)
	if err != nil {
		return nil, err
	}
	return t, t.Execute(io.Discard, &events.Message{})
}

func (c *cli) runEvents(o *eventsOptions) error {
	tmpl, err := makeEventsTemplate(o.format)
	if err != nil {
		return statusError{Status: "Error parsing format: " + err.Error(), Code: 64}
	}
	ctx, cancel := c.signalContext()
	defer cancel()
	api, err := c.client()
	if err != nil {
		return err
	}
	res := api.Events(ctx, client.EventsListOptions{Since: o.since, Until: o.until, Filters: o.filter.Value()})
	for {
		select {
		case ev := <-res.Messages:
			if tmpl == nil {
				printEvent(c.out, ev)
				continue
			}
			if err := tmpl.Execute(c.out, ev); err != nil {
				return err
			}
			fmt.Fprintln(c.out)
		case err := <-res.Err:
			if err == nil || errors.Is(err, io.EOF) {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
	}
}

const rfc3339NanoFixed = "2006-01-02T15:04:05.000000000Z07:00"

// printEvent prints an event like docker: "<time> <type> <action> <id> (k=v, …)".
func printEvent(out io.Writer, ev events.Message) {
	if ev.TimeNano != 0 {
		fmt.Fprintf(out, "%s ", time.Unix(0, ev.TimeNano).Format(rfc3339NanoFixed))
	} else if ev.Time != 0 {
		fmt.Fprintf(out, "%s ", time.Unix(ev.Time, 0).Format(rfc3339NanoFixed))
	}
	fmt.Fprintf(out, "%s %s %s", ev.Type, ev.Action, ev.Actor.ID)
	if len(ev.Actor.Attributes) > 0 {
		keys := make([]string, 0, len(ev.Actor.Attributes))
		for k := range ev.Actor.Attributes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		attrs := make([]string, 0, len(keys))
		for _, k := range keys {
			attrs = append(attrs, k+"="+ev.Actor.Attributes[k])
		}
		fmt.Fprintf(out, " (%s)", strings.Join(attrs, ", "))
	}
	fmt.Fprint(out, "\n")
}
