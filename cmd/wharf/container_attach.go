package main

import (
	"context"
	"errors"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

type attachOptions struct {
	noStdin    bool
	proxy      bool
	detachKeys string
}

func (c *cli) newAttachCommand() *cobra.Command {
	var o attachOptions
	cmd := &cobra.Command{
		Use:   "attach [OPTIONS] CONTAINER",
		Short: "Attach local standard input, output, and error streams to a running container",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runAttach(args[0], &o)
		},
	}
	flags := cmd.Flags()
	flags.BoolVar(&o.noStdin, "no-stdin", false, "Do not attach STDIN")
	flags.BoolVar(&o.proxy, "sig-proxy", true, "Proxy all received signals to the process")
	flags.StringVar(&o.detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	return cmd
}

func inspectRunning(ctx context.Context, api *client.Client, ref string) (container.InspectResponse, error) {
	res, err := api.ContainerInspect(ctx, ref, client.ContainerInspectOptions{})
	if err != nil {
		return res.Container, err
	}
	st := res.Container.State
	switch {
	case st == nil || !st.Running:
		return res.Container, errors.New("You cannot attach to a stopped container, start it first")
	case st.Paused:
		return res.Container, errors.New("You cannot attach to a paused container, unpause it first")
	case st.Restarting:
		return res.Container, errors.New("You cannot attach to a restarting container, wait until it is running")
	}
	return res.Container, nil
}

func (c *cli) runAttach(ref string, o *attachOptions) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	ctx := context.Background()
	wait := api.ContainerWait(ctx, ref, client.ContainerWaitOptions{})
	ctr, err := inspectRunning(ctx, api, ref)
	if err != nil {
		return err
	}
	tty := ctr.Config != nil && ctr.Config.Tty
	if !o.noStdin && tty {
		if _, ok := isTerminal(c.in); !ok {
			return errors.New("the input device is not a TTY")
		}
	}
	keys, err := parseDetachKeys(orDefault(o.detachKeys, defaultDetachKeys))
	if err != nil {
		return err
	}
	stdin := !o.noStdin && ctr.Config != nil && ctr.Config.OpenStdin
	if o.proxy && !tty {
		stop := forwardSignals(api, ctr.ID)
		defer stop()
	}
	resp, err := api.ContainerAttach(ctx, ref, client.ContainerAttachOptions{
		Stream: true, Stdin: stdin, Stdout: true, Stderr: true, DetachKeys: o.detachKeys,
	})
	if err != nil {
		return err
	}
	defer resp.Close()
	if _, err := inspectRunning(ctx, api, ref); err != nil {
		return err
	}
	attachCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if tty {
		if _, ok := isTerminal(c.out); ok {
			c.monitorTTYSize(attachCtx, api, ctr.ID, false)
		}
	}
	h := &hijackedIO{resp: resp.HijackedResponse, tty: tty, out: c.out, errw: c.err, detachKeys: keys}
	if tty {
		h.errw = c.out
	}
	if stdin {
		h.in = c.in
	}
	if err := h.stream(attachCtx); err != nil {
		if errors.Is(err, errDetached) {
			return nil
		}
		if !errors.Is(err, context.Canceled) {
			return err
		}
	}
	select {
	case r := <-wait.Result:
		if r.Error != nil {
			return errors.New(r.Error.Message)
		}
		if r.StatusCode != 0 {
			return statusError{Code: int(r.StatusCode)}
		}
	case err := <-wait.Error:
		return err
	}
	return nil
}
