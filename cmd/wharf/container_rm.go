package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

type rmOptions struct {
	volumes    bool
	link       bool
	force      bool
	containers []string
}

func (c *cli) newRmCommand() *cobra.Command {
	var o rmOptions
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] CONTAINER [CONTAINER...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more containers",
		Args:    requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.containers = args
			return c.runRm(&o)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&o.volumes, "volumes", "v", false, "Remove anonymous volumes associated with the container")
	flags.BoolVarP(&o.link, "link", "l", false, "Remove the specified link")
	flags.BoolVarP(&o.force, "force", "f", false, "Force the removal of a running container (uses SIGKILL)")
	return cmd
}

func (c *cli) runRm(o *rmOptions) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	ctx := context.Background()
	var errs []error
	for _, name := range o.containers {
		id := strings.Trim(name, "/")
		if id == "" {
			errs = append(errs, errors.New("container name cannot be empty"))
			continue
		}
		_, err := api.ContainerRemove(ctx, id, client.ContainerRemoveOptions{RemoveVolumes: o.volumes, RemoveLinks: o.link, Force: o.force})
		if err != nil {
			if o.force && isNotFound(err) {
				fmt.Fprintln(c.err, err)
				continue
			}
			errs = append(errs, errors.New(daemonErrorText(err)))
			continue
		}
		fmt.Fprintln(c.out, name)
	}
	return errors.Join(errs...)
}
