package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
)

func (c *cli) newCreateCommand() *cobra.Command {
	var o containerOptions
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a new container",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.image, o.args = args[0], args[1:]
			o.noteChanged(cmd.Flags())
			return c.runCreate(&o)
		},
	}
	addContainerFlags(cmd.Flags(), &o)
	return cmd
}

// withHelp decorates an error with the program name and a pointer to --help, like docker's run/create.
func withHelp(err error, command string) error {
	return fmt.Errorf("wharf: %w\n\nRun 'wharf %s --help' for more information", err, command)
}

func validatePull(v string) error {
	switch v {
	case "always", "missing", "never", "":
		return nil
	}
	return fmt.Errorf("invalid pull option: '%s': must be one of \"always\", \"missing\" or \"never\"", v)
}

func (c *cli) runCreate(o *containerOptions) error {
	if err := validatePull(o.pull); err != nil {
		return statusError{Status: withHelp(err, "create").Error(), Code: 125}
	}
	cc, err := o.parse()
	if err != nil {
		return statusError{Status: withHelp(err, "create").Error(), Code: 125}
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	id, err := c.createContainer(context.Background(), api, cc, o)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.out, id)
	return nil
}

// createContainer creates the container, pulling the image first when the daemon does not have it
// (--pull=missing) and printing docker's "Unable to find image" line.
func (c *cli) createContainer(ctx context.Context, api *client.Client, cc *containerConfig, o *containerOptions) (string, error) {
	var cid *os.File
	cidWritten := false
	if o.cidFile != "" {
		if _, err := os.Stat(o.cidFile); err == nil {
			return "", fmt.Errorf("container ID file found, make sure the other container isn't running or delete %s", o.cidFile)
		}
		f, err := os.Create(o.cidFile)
		if err != nil {
			return "", fmt.Errorf("failed to create the container ID file: %w", err)
		}
		cid = f
		defer func() {
			f.Close()
			if !cidWritten {
				os.Remove(o.cidFile)
			}
		}()
	}

	var named reference.Named
	if ref, err := reference.ParseAnyReference(cc.Config.Image); err == nil {
		if n, ok := ref.(reference.Named); ok {
			named = reference.TagNameOnly(n)
		}
	} else {
		return "", err
	}

	var platform *ocispec.Platform
	if o.platform != "" {
		p, err := parsePlatform(o.platform)
		if err != nil {
			return "", fmt.Errorf("error parsing specified platform: %w", err)
		}
		platform = &p
	}

	pull := func() error {
		return c.pullImage(ctx, api, cc.Config.Image, o.platform, o.quiet)
	}
	if o.pull == "always" {
		if err := pull(); err != nil {
			return "", err
		}
	}

	h, w := ttySize(c.out)
	cc.HostConfig.ConsoleSize = [2]uint{h, w}

	create := func() (client.ContainerCreateResult, error) {
		return api.ContainerCreate(ctx, client.ContainerCreateOptions{
			Config:           cc.Config,
			HostConfig:       cc.HostConfig,
			NetworkingConfig: cc.NetworkingConfig,
			Platform:         platform,
			Name:             o.name,
		})
	}
	resp, err := create()
	if err != nil {
		if isNotFound(err) && named != nil && (o.pull == "missing" || o.pull == "") && strings.Contains(strings.ToLower(err.Error()), "image") {
			if !o.quiet {
				fmt.Fprintf(c.err, "Unable to find image '%s' locally\n", reference.FamiliarString(named))
			}
			if err := pull(); err != nil {
				return "", err
			}
			if resp, err = create(); err != nil {
				return "", err
			}
		} else {
			return "", err
		}
	}
	for _, w := range resp.Warnings {
		fmt.Fprintln(c.err, "WARNING:", w)
	}
	if cid != nil {
		if _, err := cid.WriteString(resp.ID); err != nil {
			return resp.ID, fmt.Errorf("failed to write the container ID to the file: %w", err)
		}
		cidWritten = true
	}
	return resp.ID, nil
}

func parsePlatform(s string) (ocispec.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 1 || len(parts) > 3 || parts[0] == "" {
		return ocispec.Platform{}, fmt.Errorf("%q: unknown operating system or architecture", s)
	}
	p := ocispec.Platform{OS: parts[0]}
	if len(parts) > 1 {
		p.Architecture = parts[1]
	}
	if len(parts) > 2 {
		p.Variant = parts[2]
	}
	return p, nil
}

// pullImage pulls img (POST /images/create), showing progress on stderr unless quiet.
func (c *cli) pullImage(ctx context.Context, api *client.Client, img, platform string, quiet bool) error {
	opts := client.ImagePullOptions{RegistryAuth: registryAuthFor(img)}
	if platform != "" {
		p, err := parsePlatform(platform)
		if err != nil {
			return err
		}
		opts.Platforms = []ocispec.Platform{p}
	}
	resp, err := api.ImagePull(ctx, img, opts)
	if err != nil {
		return err
	}
	defer resp.Close()
	var out io.Writer = c.err
	if quiet {
		out = io.Discard
	}
	_, isTerm := isTerminal(c.err)
	if err := displayJSONStream(resp, out, isTerm && !quiet, nil); err != nil {
		var se streamError
		if errors.As(err, &se) {
			return errors.New(se.Message)
		}
		return err
	}
	return nil
}
