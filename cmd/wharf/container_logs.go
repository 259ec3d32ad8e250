package main

import (
	"io"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

type logsOptions struct {
	follow     bool
	since      string
	until      string
	timestamps bool
	details    bool
	tail       string
	container  string
}

func (c *cli) newLogsCommand() *cobra.Command {
	var o logsOptions
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] CONTAINER",
		Short: "Fetch the logs of a container",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.container = args[0]
			return c.runLogs(&o)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&o.follow, "follow", "f", false, "Follow log output")
	flags.StringVar(&o.since, "since", "", `Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)`)
	flags.StringVar(&o.until, "until", "", `Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)`)
	flags.BoolVarP(&o.timestamps, "timestamps", "t", false, "Show timestamps")
	flags.BoolVar(&o.details, "details", false, "Show extra details provided to logs")
	flags.StringVarP(&o.tail, "tail", "n", "all", "Number of lines to show from the end of the logs")
	return cmd
}

func (o *logsOptions) request() client.ContainerLogsOptions {
	return client.ContainerLogsOptions{
		ShowStdout: true, ShowStderr: true, Since: o.since, Until: o.until,
		Timestamps: o.timestamps, Follow: o.follow, Tail: o.tail, Details: o.details,
	}
}

func (c *cli) runLogs(o *logsOptions) error {
	ctx, cancel := c.signalContext()
	defer cancel()
	api, err := c.client()
	if err != nil {
		return err
	}
	ins, err := api.ContainerInspect(ctx, o.container, client.ContainerInspectOptions{})
	if err != nil {
		return err
	}
	body, err := api.ContainerLogs(ctx, ins.Container.ID, o.request())
	if err != nil {
		return err
	}
	defer body.Close()
	tty := ins.Container.Config != nil && ins.Container.Config.Tty
	if tty {
		_, err = io.Copy(c.out, body)
	} else {
		_, err = stdcopy.StdCopy(c.out, c.err, body)
	}
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
