package main

import (
	"bufio"
	"errors"
	"io"
	"os"

	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

type loadOptions struct {
	input string
	quiet bool
}

func (c *cli) newLoadCommand() *cobra.Command {
	var o loadOptions
	cmd := &cobra.Command{
		Use:   "load [OPTIONS]",
		Short: "Load an image from a tar archive or STDIN",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runLoad(&o)
		},
	}
	cmd.Flags().StringVarP(&o.input, "input", "i", "", "Read from tar archive file, instead of STDIN")
	cmd.Flags().BoolVarP(&o.quiet, "quiet", "q", false, "Suppress the load output")
	return cmd
}

func (c *cli) runLoad(o *loadOptions) error {
	var in io.Reader = c.in
	if o.input != "" {
		f, err := os.Open(o.input)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	} else if _, ok := isTerminal(c.in); ok {
		return errors.New("requested load from stdin, but stdin is empty")
	}
	_, outIsTerm := isTerminal(c.out)
	quiet := o.quiet || !outIsTerm
	ctx, cancel := c.signalContext()
	defer cancel()
	api, err := c.client()
	if err != nil {
		return err
	}
	res, err := api.ImageLoad(ctx, in, client.ImageLoadWithQuiet(quiet))
	if err != nil {
		return err
	}
	defer res.Close()
	return c.displayMaybeJSON(res, c.out, outIsTerm)
}

// displayMaybeJSON shows a JSON progress stream, or copies the body when it is not JSON.
func (c *cli) displayMaybeJSON(r io.Reader, out io.Writer, isTerm bool) error {
	br := bufio.NewReader(r)
	for {
		b, err := br.Peek(1)
		if err != nil {
			return nil
		}
		if b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t' {
			_, _ = br.ReadByte()
			continue
		}
		if b[0] != '{' {
			_, err := io.Copy(out, br)
			return err
		}
		return displayJSONStream(br, out, isTerm, nil)
	}
}
