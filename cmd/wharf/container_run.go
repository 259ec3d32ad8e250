package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

// runOptions are `wharf run`'s own flags on top of the container options.
type runOptions struct {
	container  containerOptions
	detach     bool
	sigProxy   bool
	detachKeys string
}

func (c *cli) newRunCommand() *cobra.Command { return c.runCommandFor(&runOptions{}) }

// runCommandFor builds `wharf run` filling o (tests parse flags through it).
func (c *cli) runCommandFor(o *runOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create and run a new container from an image",
		Args:  requiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.container.image, o.container.args = args[0], args[1:]
			o.container.noteChanged(cmd.Flags())
			return c.runRun(o)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&o.detach, "detach", "d", false, "Run container in background and print container ID")
	flags.BoolVar(&o.sigProxy, "sig-proxy", true, "Proxy received signals to the process")
	flags.StringVar(&o.detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	addContainerFlags(flags, &o.container)
	return cmd
}

// toStatusError maps a create/start failure to docker's exit codes: 127 when the command was not found, 126
// when it could not be run, else 125; the message gets the program name and the --help hint.
func toStatusError(err error) error {
	msg := err.Error()
	code := 125
	switch {
	case strings.Contains(msg, "executable file not found") || strings.Contains(msg, "no such file or directory") ||
		strings.Contains(msg, "system cannot find the file specified"):
		code = 127
	case strings.Contains(msg, "permission denied") || strings.Contains(msg, "is a directory"):
		code = 126
	}
	return statusError{Status: withHelp(err, "run").Error(), Code: code, Cause: err}
}

func (c *cli) runRun(o *runOptions) error {
	if err := validatePull(o.container.pull); err != nil {
		return statusError{Status: withHelp(err, "run").Error(), Code: 125}
	}
	cc, err := o.container.parse()
	if err != nil {
		return statusError{Status: withHelp(err, "run").Error(), Code: 125}
	}
	cfg := cc.Config
	cfg.ArgsEscaped = false

	if !o.detach {
		if cfg.AttachStdin && cfg.Tty {
			if _, ok := isTerminal(c.in); !ok {
				return errors.New("the input device is not a TTY")
			}
		}
	} else {
		if len(o.container.attach) != 0 {
			return statusError{Status: withHelp(errors.New("conflicting options: cannot specify both --attach and --detach"), "run").Error(), Code: 125}
		}
		cfg.AttachStdin, cfg.AttachStdout, cfg.AttachStderr, cfg.StdinOnce = false, false, false, false
	}
	detachKeys := o.detachKeys
	keys, err := parseDetachKeys(orDefault(detachKeys, defaultDetachKeys))
	if err != nil {
		return statusError{Status: withHelp(err, "run").Error(), Code: 125}
	}

	api, err := c.client()
	if err != nil {
		return statusError{Status: withHelp(err, "run").Error(), Code: 125}
	}
	ctx := context.Background()
	id, err := c.createContainer(ctx, api, cc, &o.container)
	if err != nil {
		return toStatusError(errors.New(daemonErrorText(err)))
	}
	if o.sigProxy {
		stop := forwardSignals(api, id)
		defer stop()
	}

	attach := cfg.AttachStdin || cfg.AttachStdout || cfg.AttachStderr
	attachCtx, cancelAttach := context.WithCancel(ctx)
	defer cancelAttach()
	var attachErr chan error
	if attach {
		resp, err := api.ContainerAttach(attachCtx, id, client.ContainerAttachOptions{
			Stream:     true,
			Stdin:      cfg.AttachStdin,
			Stdout:     cfg.AttachStdout,
			Stderr:     cfg.AttachStderr,
			DetachKeys: detachKeys,
		})
		if err != nil {
			return err
		}
		defer resp.Close()
		attachErr = make(chan error, 1)
		h := &hijackedIO{resp: resp.HijackedResponse, tty: cfg.Tty, detachKeys: keys}
		if cfg.AttachStdin {
			h.in = c.in
		}
		if cfg.AttachStdout {
			h.out = c.out
		}
		if cfg.AttachStderr {
			if cfg.Tty {
				h.errw = c.out
			} else {
				h.errw = c.err
			}
		}
		go func() { attachErr <- h.stream(attachCtx) }()
	}

	statusC := c.waitExitOrRemoved(ctx, api, id, o.container.autoRemove)
	if !attach {
		// Like docker, the ID is out before the start (so it is shown even when the start fails).
		fmt.Fprintln(c.out, id)
	}

	if _, err := api.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		if attach {
			cancelAttach()
			<-attachErr
		}
		if o.container.autoRemove {
			<-statusC
		}
		return toStatusError(err)
	}

	if !attach {
		return nil
	}
	if cfg.Tty {
		if _, ok := isTerminal(c.out); ok {
			c.monitorTTYSize(attachCtx, api, id, false)
		}
	}

	select {
	case err := <-attachErr:
		if err != nil {
			if errors.Is(err, errDetached) {
				return nil
			}
			return err
		}
		if status := c.exitStatus(<-statusC); status != 0 {
			return statusError{Code: status}
		}
	case outcome := <-statusC:
		if !cfg.AttachStdout && !cfg.AttachStderr {
			cancelAttach()
		}
		<-attachErr
		if status := c.exitStatus(outcome); status != 0 {
			return statusError{Code: status}
		}
	}
	return nil
}

// waitOutcome is how a POST /wait ended: the exit status, or a failure to report (status 125).
type waitOutcome struct {
	code int
	msg  string
}

// exitStatus reports a wait failure (only now that the status is used) and returns the status.
func (c *cli) exitStatus(o waitOutcome) int {
	if o.msg != "" {
		fmt.Fprintln(c.err, o.msg)
	}
	return o.code
}

// waitExitOrRemoved starts POST /wait (next-exit, or removed for --rm) and returns its outcome channel.
func (c *cli) waitExitOrRemoved(ctx context.Context, api *client.Client, id string, waitRemove bool) <-chan waitOutcome {
	cond := container.WaitConditionNextExit
	if waitRemove {
		cond = container.WaitConditionRemoved
	}
	res := api.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: cond})
	out := make(chan waitOutcome, 1)
	go func() {
		select {
		case r := <-res.Result:
			if r.Error != nil {
				out <- waitOutcome{code: 125, msg: "Error waiting for container: " + r.Error.Message}
			} else {
				out <- waitOutcome{code: int(r.StatusCode)}
			}
		case err := <-res.Error:
			out <- waitOutcome{code: 125, msg: fmt.Sprintf("error waiting for container: %v", err)}
		}
	}()
	return out
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
