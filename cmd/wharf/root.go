package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// defaultHost is where the wharf daemon listens unless DOCKER_HOST or -H says otherwise.
const defaultHost = "unix:///run/wharf/wharf.sock"

// Set at build time with -ldflags "-X main.version=… -X main.gitCommit=… -X main.buildTime=…".
var (
	version   = "0.1.0-dev"
	gitCommit = "unknown"
	buildTime = ""
)

// statusError carries an exit code, and optionally the whole text to print, like docker's cli.StatusError.
type statusError struct {
	Status string
	Code   int
	Cause  error
}

func (e statusError) Error() string {
	if e.Status != "" {
		return e.Status
	}
	if e.Cause != nil {
		return e.Cause.Error()
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

func (e statusError) Unwrap() error { return e.Cause }

// globalOptions are the flags that come before the command.
type globalOptions struct {
	hosts    []string
	debug    bool
	logLevel string
	config   string
	context  string
	version  bool
}

// cli holds the streams and the (lazily made) API client every command uses.
type cli struct {
	in       io.Reader
	out, err io.Writer
	opts     globalOptions
	api      *client.Client
	// ctx is cancelled by SIGINT/SIGTERM for commands that do not forward signals themselves; sig is the
	// signal that did it (the exit status is then 128+sig, like docker's).
	ctx context.Context
	sig atomic.Value
}

func newCLI(in io.Reader, out, errw io.Writer) *cli {
	return &cli{in: in, out: out, err: errw, ctx: context.Background()}
}

// execute runs the CLI and returns the exit code.
func execute(args []string) int {
	c := newCLI(os.Stdin, os.Stdout, os.Stderr)
	return c.run(args)
}

func (c *cli) run(args []string) int {
	root := c.newRootCommand()
	root.SetArgs(args)
	root.SetIn(c.in)
	root.SetOut(c.out)
	root.SetErr(c.err)
	err := root.Execute()
	if c.api != nil {
		_ = c.api.Close()
	}
	return c.exitCode(err)
}

// exitCode prints err the way docker does and maps it to the exit code.
func (c *cli) exitCode(err error) int {
	if err == nil {
		return 0
	}
	var se statusError
	if errors.As(err, &se) {
		if se.Status != "" {
			fmt.Fprintln(c.err, se.Status)
		}
		if se.Code == 0 {
			return 1
		}
		return se.Code
	}
	if errors.Is(err, context.Canceled) && c.ctx.Err() != nil {
		if s, ok := c.sig.Load().(syscall.Signal); ok {
			return 128 + int(s)
		}
		return 130
	}
	fmt.Fprintln(c.err, daemonErrorText(err))
	return 1
}

// daemonErrorText rewords the client library's connection error for wharf.
func daemonErrorText(err error) string {
	if client.IsErrConnectionFailed(err) {
		return strings.NewReplacer("Docker daemon", "Wharf daemon", "docker daemon", "wharf daemon",
			"docker API", "wharf API").Replace(err.Error())
	}
	return err.Error()
}

// host returns the daemon address: -H, else DOCKER_HOST, else wharf's socket.
func (c *cli) host() string {
	if len(c.opts.hosts) > 0 {
		return c.opts.hosts[len(c.opts.hosts)-1]
	}
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return h
	}
	return defaultHost
}

// client returns the API client, making it on first use (so --help and flag errors never touch the daemon).
func (c *cli) client() (*client.Client, error) {
	if c.api != nil {
		return c.api, nil
	}
	host := c.host()
	if !strings.Contains(host, "://") {
		if strings.HasPrefix(host, "/") {
			host = "unix://" + host
		} else {
			host = "tcp://" + host
		}
	}
	api, err := client.New(client.FromEnv, client.WithHost(host), client.WithUserAgent("wharf-cli/"+version))
	if err != nil {
		return nil, err
	}
	c.api = api
	return api, nil
}

// signalContext returns a context cancelled on SIGINT/SIGTERM (for long-running read commands).
func (c *cli) signalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case s := <-ch:
			c.sig.Store(s)
			cancel()
		case <-ctx.Done():
		}
		signal.Stop(ch)
	}()
	c.ctx = ctx
	return ctx, func() {
		signal.Stop(ch)
		cancel()
	}
}

// isNotFound tells a 404 from the daemon.
func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) }

// isTerminal reports whether v is a terminal, and its fd.
func isTerminal(v any) (uintptr, bool) {
	type fder interface{ Fd() uintptr }
	f, ok := v.(fder)
	if !ok {
		return 0, false
	}
	fd := f.Fd()
	return fd, term.IsTerminal(int(fd))
}

const usageTemplate = `Usage:
{{- if not .HasSubCommands}}  {{.UseLine}}{{end}}
{{- if .HasSubCommands}}  {{ .CommandPath}}{{- if .HasAvailableFlags}} [OPTIONS]{{end}} COMMAND{{end}}

{{if ne .Long ""}}{{ .Long | trim }}{{ else }}{{ .Short | trim }}{{end}}
{{- if gt .Aliases 0}}

Aliases:
  {{.NameAndAliases}}
{{- end}}
{{- if .HasAvailableSubCommands}}

Commands:
{{- range .Commands}}{{if .IsAvailableCommand}}
  {{rpad .Name .NamePadding }} {{.Short}}
{{- end}}{{end}}
{{- end}}
{{- if .HasAvailableLocalFlags}}

Options:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}
{{- end}}
{{- if .HasAvailableSubCommands }}

Run '{{.CommandPath}} COMMAND --help' for more information on a command.
{{- end}}
`

func (c *cli) newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:              "wharf [OPTIONS] COMMAND [ARG...]",
		Short:            "A self-sufficient runtime for containers",
		SilenceUsage:     true,
		SilenceErrors:    true,
		TraverseChildren: true,
		Args:             noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if c.opts.version {
				fmt.Fprintf(c.out, "Wharf version %s, build %s\n", version, gitCommit)
				return nil
			}
			cmd.SetOut(c.out)
			return cmd.Help()
		},
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: true},
	}
	root.SetUsageTemplate(usageTemplate)
	root.SetHelpTemplate(`{{if or .Runnable .HasSubCommands}}{{.UsageString}}{{end}}`)
	root.SetFlagErrorFunc(flagErrorFunc)
	root.SetHelpCommand(&cobra.Command{Use: "help [command]", Hidden: true, Run: func(cmd *cobra.Command, args []string) {
		target, _, err := root.Find(args)
		if err != nil || target == nil {
			target = root
		}
		target.SetOut(c.out)
		_ = target.Help()
	}})
	flags := root.Flags()
	flags.SetInterspersed(false)
	listVarP(flags, &c.opts.hosts, "host", "H", "Daemon socket to connect to")
	flags.BoolVarP(&c.opts.debug, "debug", "D", false, "Enable debug mode")
	flags.StringVarP(&c.opts.logLevel, "log-level", "l", "info", `Set the logging level ("debug", "info", "warn", "error", "fatal")`)
	flags.StringVar(&c.opts.config, "config", "", "Location of client config files")
	flags.StringVarP(&c.opts.context, "context", "c", "", "Name of the context to use (only the default context exists)")
	flags.BoolVarP(&c.opts.version, "version", "v", false, "Print version information and quit")
	root.PersistentFlags().BoolP("help", "h", false, "Print usage")
	_ = root.PersistentFlags().MarkHidden("help")

	containerCmds := []func() *cobra.Command{
		c.newRunCommand, c.newCreateCommand, c.newStartCommand, c.newStopCommand, c.newKillCommand,
		c.newRestartCommand, c.newRmCommand, c.newLogsCommand, c.newAttachCommand, c.newExecCommand,
		c.newWaitCommand, c.newTopCommand, c.newCpCommand, c.newStatsCommand, c.newPauseCommand,
		c.newUnpauseCommand, c.newRenameCommand, c.newPortCommand,
	}
	for _, mk := range containerCmds {
		root.AddCommand(mk())
	}
	root.AddCommand(c.newPsCommand(), c.newImagesCommand(), c.newRmiCommand(), c.newTagCommand(),
		c.newHistoryCommand(), c.newLoadCommand(), c.newSaveCommand(), c.newImportCommand(), c.newBuildCommand(),
		c.newPullCommand(), c.newPushCommand(), c.newLoginCommand(), c.newLogoutCommand(),
		c.newInspectCommand(), c.newVersionCommand(), c.newInfoCommand(), c.newEventsCommand(),
		c.newContainerCommand(), c.newImageCommand(), c.newVolumeCommand(), c.newNetworkCommand(),
		c.newSystemCommand(), newDaemonCommand(), newKubeconfigCommand())
	root.AddCommand(newRegistryCommand())
	disableFlagsInUseLine(root)
	return root
}

// groupCommand makes a management command ("wharf container") that shows its help when called alone.
func (c *cli) groupCommand(name, short string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   name,
		Short: short,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SetOut(c.err)
			return cmd.Help()
		},
	}
	cmd.AddCommand(subs...)
	return cmd
}

func (c *cli) newContainerCommand() *cobra.Command {
	ls := c.newPsCommand()
	ls.Use = "ls [OPTIONS]"
	ls.Aliases = []string{"ps", "list"}
	inspect := c.newContainerInspectCommand()
	return c.groupCommand("container", "Manage containers",
		c.newAttachCommand(), c.newCpCommand(), c.newCreateCommand(), c.newExecCommand(), inspect,
		c.newKillCommand(), c.newLogsCommand(), ls, c.newPauseCommand(), c.newPortCommand(),
		c.newContainerPruneCommand(), c.newRenameCommand(), c.newRestartCommand(), c.newRmCommand(),
		c.newRunCommand(), c.newStartCommand(), c.newStatsCommand(), c.newStopCommand(), c.newTopCommand(),
		c.newUnpauseCommand(), c.newWaitCommand())
}

func (c *cli) newImageCommand() *cobra.Command {
	ls := c.newImagesCommand()
	ls.Use = "ls [OPTIONS] [REPOSITORY[:TAG]]"
	ls.Aliases = []string{"list"}
	rm := c.newRmiCommand()
	rm.Use = "rm [OPTIONS] IMAGE [IMAGE...]"
	rm.Aliases = []string{"rmi", "remove"}
	return c.groupCommand("image", "Manage images",
		c.newBuildCommand(), c.newHistoryCommand(), c.newImportCommand(), c.newImageInspectCommand(),
		c.newLoadCommand(), ls, c.newImagePruneCommand(), c.newPullCommand(), c.newPushCommand(), rm,
		c.newSaveCommand(), c.newTagCommand())
}

func (c *cli) newSystemCommand() *cobra.Command {
	return c.groupCommand("system", "Manage Wharf", c.newEventsCommand(), c.newInfoCommand())
}

func disableFlagsInUseLine(cmd *cobra.Command) {
	cmd.DisableFlagsInUseLine = true
	for _, sub := range cmd.Commands() {
		disableFlagsInUseLine(sub)
	}
}

// flagErrorFunc words flag errors like docker (exit 125).
func flagErrorFunc(cmd *cobra.Command, err error) error {
	if err == nil {
		return nil
	}
	return statusError{
		Status: fmt.Sprintf("%s\n\nUsage:  %s\n\nRun '%s --help' for more information", err, cmd.UseLine(), cmd.CommandPath()),
		Code:   125,
	}
}

// --- argument validators (docker's wording) -------------------------------------------------------------------

func binName(cmd *cobra.Command) string { return cmd.Root().Name() }

func pluralize(word string, n int) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.HasSubCommands() {
		return fmt.Errorf("%[1]s: unknown command: %[2]s %[3]s\n\nUsage:  %[4]s\n\nRun '%[2]s --help' for more information",
			binName(cmd), cmd.CommandPath(), args[0], cmd.UseLine())
	}
	return fmt.Errorf("%[1]s: '%[2]s' accepts no arguments\n\nUsage:  %[3]s\n\nRun '%[2]s --help' for more information",
		binName(cmd), cmd.CommandPath(), cmd.UseLine())
}

func requiresMinArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= n {
			return nil
		}
		return fmt.Errorf("%[1]s: '%[2]s' requires at least %[3]d %[4]s\n\nUsage:  %[5]s\n\nSee '%[2]s --help' for more information",
			binName(cmd), cmd.CommandPath(), n, pluralize("argument", n), cmd.UseLine())
	}
}

func requiresMaxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) <= n {
			return nil
		}
		return fmt.Errorf("%[1]s: '%[2]s' requires at most %[3]d %[4]s\n\nUsage:  %[5]s\n\nRun '%[2]s --help' for more information",
			binName(cmd), cmd.CommandPath(), n, pluralize("argument", n), cmd.UseLine())
	}
}

func requiresRangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= lo && len(args) <= hi {
			return nil
		}
		return fmt.Errorf("%[1]s: '%[2]s' requires at least %[3]d and at most %[4]d %[5]s\n\nUsage:  %[6]s\n\nRun '%[2]s --help' for more information",
			binName(cmd), cmd.CommandPath(), lo, hi, pluralize("argument", hi), cmd.UseLine())
	}
}

func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		return fmt.Errorf("%[1]s: '%[2]s' requires %[3]d %[4]s\n\nUsage:  %[5]s\n\nRun '%[2]s --help' for more information",
			binName(cmd), cmd.CommandPath(), n, pluralize("argument", n), cmd.UseLine())
	}
}
