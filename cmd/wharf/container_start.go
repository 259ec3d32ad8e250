package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

type startOptions struct {
	attach     bool
	openStdin  bool
	detachKeys string
	containers []string
}

func (c *cli) newStartCommand() *cobra.Command {
	var o startOptions
	cmd := &cobra.Command{
		Use:   "start [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Start one or more stopped containers",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.containers = args
			return c.runStart(&o)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&o.attach, "attach", "a", false, "Attach STDOUT/STDERR and forward signals")
	flags.BoolVarP(&o.openStdin, "interactive", "i", false, "Attach container's STDIN")
	flags.StringVar(&o.detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	return cmd
}

func (c *cli) runStart(o *startOptions) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	ctx := context.Background()
	if !o.attach && !o.openStdin {
		var failed []string
		for _, ctr := range o.containers {
			if _, err := api.ContainerStart(ctx, ctr, client.ContainerStartOptions{}); err != nil {
				fmt.Fprintln(c.err, daemonErrorText(err))
				failed = append(failed, ctr)
				continue
			}
			fmt.Fprintln(c.out, ctr)
		}
		if len(failed) > 0 {
			return fmt.Errorf("Error: failed to start containers: %s", strings.Join(failed, ", "))
		}
		return nil
	}
	if len(o.containers) > 1 {
		return errors.New("you cannot start and attach multiple containers at once")
	}
	keys, err := parseDetachKeys(orDefault(o.detachKeys, defaultDetachKeys))
	if err != nil {
		return err
	}
	ins, err := api.ContainerInspect(ctx, o.containers[0], client.ContainerInspectOptions{})
	if err != nil {
		return err
	}
	ctr := ins.Container
	if ctr.Config == nil || ctr.HostConfig == nil {
		return fmt.Errorf("Error: container %s has no configuration", o.containers[0])
	}
	if !ctr.Config.Tty {
		stop := forwardSignals(api, ctr.ID)
		defer stop()
	}
	attachCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stdin := o.openStdin && ctr.Config.OpenStdin
	resp, err := api.ContainerAttach(attachCtx, ctr.ID, client.ContainerAttachOptions{
		Stream: true, Stdin: stdin, Stdout: true, Stderr: true, DetachKeys: o.detachKeys,
	})
	if err != nil {
		return err
	}
	defer resp.Close()
	h := &hijackedIO{resp: resp.HijackedResponse, tty: ctr.Config.Tty, out: c.out, errw: c.err, detachKeys: keys}
	if ctr.Config.Tty {
		h.errw = c.out
	}
	if stdin {
		h.in = c.in
	}
	attachErr := make(chan error, 1)
	go func() { attachErr <- h.stream(attachCtx) }()

	statusC := c.waitExitOrRemoved(ctx, api, ctr.ID, ctr.HostConfig.AutoRemove)
	if _, err := api.ContainerStart(ctx, ctr.ID, client.ContainerStartOptions{}); err != nil {
		cancel()
		<-attachErr
		if ctr.HostConfig.AutoRemove {
			<-statusC
		}
		return err
	}
	if ctr.Config.Tty {
		if _, ok := isTerminal(c.out); ok {
			c.monitorTTYSize(attachCtx, api, ctr.ID, false)
		}
	}
	if err := <-attachErr; err != nil {
		if errors.Is(err, errDetached) {
			return nil
		}
		return err
	}
	if status := c.exitStatus(<-statusC); status != 0 {
		return statusError{Code: status}
	}
	return nil
}
