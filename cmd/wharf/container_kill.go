package main

import (
	"context"

	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

type killOptions struct {
	signal     string
	containers []string
}

func (c *cli) newKillCommand() *cobra.Command {
	var o killOptions
	cmd := &cobra.Command{
		Use:   "kill [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Kill one or more running containers",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.containers = args
			return c.runKill(&o)
		},
	}
	cmd.Flags().StringVarP(&o.signal, "signal", "s", "", "Signal to send to the container")
	return cmd
}

func (c *cli) runKill(o *killOptions) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	return c.forEach(o.containers, func(ctx context.Context, id string) error {
		_, err := api.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: o.signal})
		return err
	})
}
