package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

type stopOptions struct {
	signal         string
	timeout        int
	timeoutChanged bool
	containers     []string
}

func (c *cli) newStopCommand() *cobra.Command {
	var o stopOptions
	cmd := &cobra.Command{
		Use:   "stop [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Stop one or more running containers",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("time") && cmd.Flags().Changed("timeout") {
				return errors.New("conflicting options: cannot specify both --timeout and --time")
			}
			o.containers = args
			o.timeoutChanged = cmd.Flags().Changed("timeout") || cmd.Flags().Changed("time")
			return c.runStop(&o)
		},
	}
	addStopFlags(cmd, &o)
	return cmd
}

func addStopFlags(cmd *cobra.Command, o *stopOptions) {
	flags := cmd.Flags()
	flags.StringVarP(&o.signal, "signal", "s", "", "Signal to send to the container")
	flags.IntVarP(&o.timeout, "timeout", "t", 0, "Seconds to wait before killing the container")
	flags.IntVar(&o.timeout, "time", 0, "Seconds to wait before killing the container (deprecated: use --timeout)")
	_ = flags.MarkDeprecated("time", "use --timeout instead")
}

// stopRequest converts the flags to the API options (a timeout only when given).
func (o *stopOptions) stopRequest() client.ContainerStopOptions {
	req := client.ContainerStopOptions{Signal: o.signal}
	if o.timeoutChanged {
		t := o.timeout
		req.Timeout = &t
	}
	return req
}

func (c *cli) runStop(o *stopOptions) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	req := o.stopRequest()
	return c.forEach(o.containers, func(ctx context.Context, id string) error {
		_, err := api.ContainerStop(ctx, id, req)
		return err
	})
}

// forEach runs op on each name, printing the name on success; it returns all errors joined (exit 1).
func (c *cli) forEach(names []string, op func(ctx context.Context, name string) error) error {
	ctx := context.Background()
	var errs []error
	for _, n := range names {
		if err := op(ctx, n); err != nil {
			errs = append(errs, errors.New(daemonErrorText(err)))
			continue
		}
		fmt.Fprintln(c.out, n)
	}
	return errors.Join(errs...)
}
