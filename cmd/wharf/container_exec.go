package main

import (
	"context"
	"errors"

	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

type execOptions struct {
	detachKeys  string
	interactive bool
	tty         bool
	detach      bool
	user        string
	privileged  bool
	env         []string
	envFile     []string
	workdir     string
	command     []string
}

func (c *cli) newExecCommand() *cobra.Command {
	var o execOptions
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short: "Execute a command in a running container",
		Args:  requiresMinArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.command = args[1:]
			return c.runExec(args[0], &o)
		},
	}
	flags := cmd.Flags()
	flags.SetInterspersed(false)
	flags.StringVar(&o.detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	flags.BoolVarP(&o.interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	flags.BoolVarP(&o.tty, "tty", "t", false, "Allocate a pseudo-TTY")
	flags.BoolVarP(&o.detach, "detach", "d", false, "Detached mode: run command in the background")
	flags.StringVarP(&o.user, "user", "u", "", `Username or UID (format: "<name|uid>[:<group|gid>]")`)
	flags.BoolVar(&o.privileged, "privileged", false, "Give extended privileges to the command")
	listVarP(flags, &o.env, "env", "e", "Set environment variables")
	listVarP(flags, &o.envFile, "env-file", "", "Read in a file of environment variables")
	flags.StringVarP(&o.workdir, "workdir", "w", "", "Working directory inside the container")
	return cmd
}

// createRequest converts the flags to the exec-create request.
func (o *execOptions) createRequest() (client.ExecCreateOptions, error) {
	req := client.ExecCreateOptions{
		User: o.user, Privileged: o.privileged, TTY: o.tty, Cmd: o.command, WorkingDir: o.workdir,
		DetachKeys: o.detachKeys,
	}
	env, err := readKVEnvStrings(o.envFile, o.env)
	if err != nil {
		return req, err
	}
	req.Env = env
	if !o.detach {
		req.AttachStdout, req.AttachStderr = true, true
		req.AttachStdin = o.interactive
	}
	return req, nil
}

func (c *cli) runExec(ref string, o *execOptions) error {
	req, err := o.createRequest()
	if err != nil {
		return err
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	ctx := context.Background()
	if _, err := api.ContainerInspect(ctx, ref, client.ContainerInspectOptions{}); err != nil {
		return err
	}
	if !o.detach && req.AttachStdin && req.TTY {
		if _, ok := isTerminal(c.in); !ok {
			return errors.New("the input device is not a TTY")
		}
	}
	var size client.ConsoleSize
	if req.TTY {
		h, w := ttySize(c.out)
		size = client.ConsoleSize{Height: h, Width: w}
		req.ConsoleSize = size
	}
	created, err := api.ExecCreate(ctx, ref, req)
	if err != nil {
		return err
	}
	if created.ID == "" {
		return errors.New("exec ID empty")
	}
	if o.detach {
		_, err := api.ExecStart(ctx, created.ID, client.ExecStartOptions{Detach: true, TTY: req.TTY, ConsoleSize: size})
		return err
	}
	keys, err := parseDetachKeys(orDefault(o.detachKeys, defaultDetachKeys))
	if err != nil {
		return err
	}
	resp, err := api.ExecAttach(ctx, created.ID, client.ExecAttachOptions{TTY: req.TTY, ConsoleSize: size})
	if err != nil {
		return err
	}
	defer resp.Close()
	attachCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	h := &hijackedIO{resp: resp.HijackedResponse, tty: req.TTY, out: c.out, errw: c.err, detachKeys: keys}
	if req.TTY {
		h.errw = c.out
	}
	if req.AttachStdin {
		h.in = c.in
	}
	errCh := make(chan error, 1)
	go func() { errCh <- h.stream(attachCtx) }()
	if req.TTY {
		if _, ok := isTerminal(c.in); ok {
			c.monitorTTYSize(attachCtx, api, created.ID, true)
		}
	}
	if err := <-errCh; err != nil {
		if errors.Is(err, errDetached) {
			return nil
		}
		return err
	}
	ins, err := api.ExecInspect(ctx, created.ID, client.ExecInspectOptions{})
	if err != nil {
		return err
	}
	if ins.ExitCode != 0 {
		return statusError{Code: ins.ExitCode}
	}
	return nil
}
