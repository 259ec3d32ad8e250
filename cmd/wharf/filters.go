package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/moby/moby/client"
	"github.com/spf13/pflag"
)

// filterOpt is a repeatable --filter key=value flag.
type filterOpt struct{ f client.Filters }

func (o *filterOpt) String() string {
	if len(o.f) == 0 {
		return ""
	}
	var parts []string
	for k, vs := range o.f {
		for v := range vs {
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, ",")
}

func (o *filterOpt) Set(value string) error {
	if value == "" {
		return nil
	}
	k, v, ok := strings.Cut(value, "=")
	if !ok {
		return errors.New("bad format of filter (expected name=value)")
	}
	k = strings.ToLower(strings.TrimSpace(k))
	v = strings.TrimSpace(v)
	if o.f == nil {
		o.f = client.Filters{}
	}
	o.f.Add(k, v)
	return nil
}

func (o *filterOpt) Type() string { return "filter" }

// Value returns the filters (never nil).
func (o *filterOpt) Value() client.Filters {
	if o.f == nil {
		return client.Filters{}
	}
	return o.f
}

// confirm asks a yes/no question on out and reads the answer from in ("y" or "Y" is yes).
func confirm(ctx context.Context, in io.Reader, out io.Writer, message string) (bool, error) {
	fmt.Fprintf(out, "%s [y/N] ", message)
	answer := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(in).ReadString('\n')
		answer <- strings.TrimSpace(line)
	}()
	select {
	case a := <-answer:
		return strings.EqualFold(a, "y"), nil
	case <-ctx.Done():
		fmt.Fprintln(out)
		return false, ctx.Err()
	}
}

// listValue is a repeatable string flag shown as "list" in help, like docker's ListOpts.
type listValue struct{ p *[]string }

func (l listValue) String() string {
	if l.p == nil || len(*l.p) == 0 {
		return ""
	}
	return "[" + strings.Join(*l.p, " ") + "]"
}
func (l listValue) Set(v string) error { *l.p = append(*l.p, v); return nil }
func (l listValue) Type() string       { return "list" }

// listVarP registers a repeatable string flag (values are not split on commas).
func listVarP(flags *pflag.FlagSet, p *[]string, name, short, usage string) {
	flags.VarP(listValue{p}, name, short, usage)
}
