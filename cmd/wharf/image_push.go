package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/distribution/reference"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

type pushOptions struct {
	remote string
	all    bool
	quiet  bool
}

func (c *cli) newPushCommand() *cobra.Command {
	var o pushOptions
	cmd := &cobra.Command{
		Use:   "push [OPTIONS] NAME[:TAG]",
		Short: "Upload an image to a registry",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.remote = args[0]
			return c.runPush(&o)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&o.all, "all-tags", "a", false, "Push all tags of an image to the repository")
	flags.BoolVarP(&o.quiet, "quiet", "q", false, "Suppress verbose output")
	flags.Bool("disable-content-trust", true, "Skip image signing")
	return cmd
}

func (c *cli) runPush(o *pushOptions) error {
	ctx, cancel := c.signalContext()
	defer cancel()
	ref, err := reference.ParseNormalizedNamed(o.remote)
	switch {
	case err != nil:
		return err
	case o.all && !reference.IsNameOnly(ref):
		return errors.New("tag can't be used with --all-tags/-a")
	case !o.all && reference.IsNameOnly(ref):
		ref = reference.TagNameOnly(ref)
		if t, ok := ref.(reference.Tagged); ok && !o.quiet {
			fmt.Fprintf(c.out, "Using default tag: %s\n", t.Tag())
		}
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	resp, err := api.ImagePush(ctx, reference.FamiliarString(ref), client.ImagePushOptions{All: o.all, RegistryAuth: registryAuthFor(ref.String())})
	if err != nil {
		return err
	}
	defer resp.Close()
	var out io.Writer = c.out
	if o.quiet {
		out = io.Discard
	}
	_, isTerm := isTerminal(c.out)
	if err := displayJSONStream(resp, out, isTerm && !o.quiet, nil); err != nil {
		return err
	}
	if o.quiet {
		fmt.Fprintln(c.out, ref.String())
	}
	return nil
}
