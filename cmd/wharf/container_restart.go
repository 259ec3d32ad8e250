package main

import (
	"context"
	"errors"

	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

func (c *cli) newRestartCommand() *cobra.Command {
	var o stopOptions
	cmd := &cobra.Command{
		Use:   "restart [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Restart one or more containers",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("time") && cmd.Flags().Changed("timeout") {
				return errors.New("conflicting options: cannot specify both --timeout and --time")
			}
			o.containers = args
			o.timeoutChanged = cmd.Flags().Changed("timeout") || cmd.Flags().Changed("time")
			return c.runRestart(&o)
		},
	}
	addStopFlags(cmd, &o)
	return cmd
}

func (c *cli) runRestart(o *stopOptions) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	stop := o.stopRequest()
	req := client.ContainerRestartOptions{Signal: stop.Signal, Timeout: stop.Timeout}
	return c.forEach(o.containers, func(ctx context.Context, id string) error {
		_, err := api.ContainerRestart(ctx, id, req)
		return err
	})
}
