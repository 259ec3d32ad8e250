package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/distribution/reference"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
)

type pullOptions struct {
	remote   string
	all      bool
	quiet    bool
	platform string
}

func (c *cli) newPullCommand() *cobra.Command {
	var o pullOptions
	cmd := &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Download an image from a registry",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.remote = args[0]
			return c.runPull(&o)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&o.all, "all-tags", "a", false, "Download all tagged images in the repository")
	flags.BoolVarP(&o.quiet, "quiet", "q", false, "Suppress verbose output")
	flags.StringVar(&o.platform, "platform", "", "Set platform if server is multi-platform capable")
	flags.Bool("disable-content-trust", true, "Skip image verification")
	return cmd
}

func (c *cli) runPull(o *pullOptions) error {
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
			fmt.Fprintln(c.out, "Using default tag:", t.Tag())
		}
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	opts := client.ImagePullOptions{All: o.all, RegistryAuth: registryAuthFor(ref.String())}
	if o.platform != "" {
		p, err := parsePlatform(o.platform)
		if err != nil {
			return err
		}
		opts.Platforms = []ocispec.Platform{p}
	}
	resp, err := api.ImagePull(ctx, reference.FamiliarString(ref), opts)
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
	fmt.Fprintln(c.out, ref.String())
	return nil
}
