package main

import (
	"io"
	"os"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

type importOptions struct {
	source    string
	reference string
	changes   []string
	message   string
	platform  string
}

func (c *cli) newImportCommand() *cobra.Command {
	var o importOptions
	cmd := &cobra.Command{
		Use:   "import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
		Short: "Import the contents from a tarball to create a filesystem image",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.source = args[0]
			if len(args) > 1 {
				o.reference = args[1]
			}
			return c.runImport(&o)
		},
	}
	flags := cmd.Flags()
	flags.SetInterspersed(false)
	listVarP(flags, &o.changes, "change", "c", "Apply Dockerfile instruction to the created image")
	flags.StringVarP(&o.message, "message", "m", "", "Set commit message for imported image")
	flags.StringVar(&o.platform, "platform", "", "Set platform if server is multi-platform capable")
	return cmd
}

// importSource says where the image content comes from: stdin ("-"), a URL (the daemon fetches it), or a file.
func (o *importOptions) importSource(stdin io.Reader) (client.ImageImportSource, io.Closer, error) {
	switch {
	case o.source == "-":
		return client.ImageImportSource{Source: stdin, SourceName: "-"}, nil, nil
	case strings.HasPrefix(o.source, "https://") || strings.HasPrefix(o.source, "http://"):
		return client.ImageImportSource{SourceName: o.source}, nil, nil
	default:
		f, err := os.Open(o.source)
		if err != nil {
			return client.ImageImportSource{}, nil, err
		}
		return client.ImageImportSource{Source: f, SourceName: "-"}, f, nil
	}
}

func (c *cli) runImport(o *importOptions) error {
	if o.reference != "" {
		if _, err := reference.ParseNormalizedNamed(o.reference); err != nil {
			return err
		}
	}
	src, closer, err := o.importSource(c.in)
	if err != nil {
		return err
	}
	if closer != nil {
		defer closer.Close()
	}
	opts := client.ImageImportOptions{Message: o.message, Changes: o.changes}
	if o.platform != "" {
		p, err := parsePlatform(o.platform)
		if err != nil {
			return err
		}
		opts.Platform = p
	}
	ctx, cancel := c.signalContext()
	defer cancel()
	api, err := c.client()
	if err != nil {
		return err
	}
	body, err := api.ImageImport(ctx, src, o.reference, opts)
	if err != nil {
		return err
	}
	defer body.Close()
	_, isTerm := isTerminal(c.out)
	return c.displayMaybeJSON(body, c.out, isTerm)
}
