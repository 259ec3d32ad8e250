package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

type clientInfo struct {
	Version  string
	Context  string
	Debug    bool
	Plugins  []any
	Warnings []string `json:",omitempty"`
}

type infoData struct {
	*system.Info
	ClientInfo   *clientInfo `json:",omitempty"`
	ClientErrors []string    `json:",omitempty"`
	ServerErrors []string    `json:",omitempty"`
}

func (c *cli) newInfoCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "info [OPTIONS]",
		Short: "Display system-wide information",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runInfo(format)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", formatHelp)
	return cmd
}

func (c *cli) runInfo(format string) error {
	data := infoData{ClientInfo: &clientInfo{Version: version, Context: "default", Debug: c.opts.debug, Plugins: []any{}}}
	api, err := c.client()
	if err == nil {
		r, ierr := api.Info(context.Background(), client.InfoOptions{})
		if ierr != nil {
			err = ierr
		} else {
			info := r.Info
			data.Info = &info
		}
	}
	if err != nil {
		data.ServerErrors = append(data.ServerErrors, daemonErrorText(err))
	}
	if format == "" {
		c.prettyPrintInfo(c.out, data)
		if len(data.ServerErrors) > 0 {
			return statusError{Status: "errors pretty printing info", Code: 1}
		}
		return nil
	}
	if format == jsonFormatKey {
		format = "{{json .}}"
	}
	t, perr := parseTemplate(format)
	if perr != nil {
		return statusError{Status: perr.Error(), Code: 64}
	}
	if xerr := t.Execute(c.out, data); xerr != nil {
		return xerr
	}
	fmt.Fprintln(c.out)
	if len(data.ServerErrors) > 0 {
		return statusError{Status: strings.Join(data.ServerErrors, "\n"), Code: 1}
	}
	return nil
}

func (c *cli) prettyPrintInfo(out io.Writer, d infoData) {
	fmt.Fprintln(out, "Client:")
	fmt.Fprintln(out, " Version:   ", d.ClientInfo.Version)
	fmt.Fprintln(out, " Context:   ", d.ClientInfo.Context)
	fmt.Fprintln(out, " Debug Mode:", d.ClientInfo.Debug)
	fmt.Fprintln(out)
	fmt.Fprintln(out, "Server:")
	if d.Info == nil {
		for _, e := range d.ServerErrors {
			fmt.Fprintln(out, "ERROR:", e)
		}
		return
	}
	info := d.Info
	nonEmpty := func(label, v string) {
		if v != "" {
			fmt.Fprintln(out, label, v)
		}
	}
	fmt.Fprintln(out, " Containers:", info.Containers)
	fmt.Fprintln(out, "  Running:", info.ContainersRunning)
	fmt.Fprintln(out, "  Paused:", info.ContainersPaused)
	fmt.Fprintln(out, "  Stopped:", info.ContainersStopped)
	fmt.Fprintln(out, " Images:", info.Images)
	nonEmpty(" Server Version:", info.ServerVersion)
	nonEmpty(" Storage Driver:", info.Driver)
	for _, pair := range info.DriverStatus {
		fmt.Fprintf(out, "  %s: %s\n", pair[0], pair[1])
	}
	nonEmpty(" Logging Driver:", info.LoggingDriver)
	nonEmpty(" Cgroup Driver:", info.CgroupDriver)
	nonEmpty(" Cgroup Version:", info.CgroupVersion)
	fmt.Fprintln(out, " Plugins:")
	fmt.Fprintln(out, "  Volume:", strings.Join(info.Plugins.Volume, " "))
	fmt.Fprintln(out, "  Network:", strings.Join(info.Plugins.Network, " "))
	fmt.Fprintln(out, "  Log:", strings.Join(info.Plugins.Log, " "))
	state := string(info.Swarm.LocalNodeState)
	if state == "" {
		state = "inactive"
	}
	fmt.Fprintln(out, " Swarm:", state)
	if len(info.Runtimes) > 0 {
		names := make([]string, 0, len(info.Runtimes))
		for n := range info.Runtimes {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintln(out, " Runtimes:", strings.Join(names, " "))
		fmt.Fprintln(out, " Default Runtime:", info.DefaultRuntime)
	}
	if len(info.SecurityOptions) > 0 {
		fmt.Fprintln(out, " Security Options:")
		for _, so := range info.SecurityOptions {
			name := so
			var opts []string
			if strings.HasPrefix(so, "name=") {
				fields := strings.Split(so, ",")
				name = strings.TrimPrefix(fields[0], "name=")
				opts = fields[1:]
			}
			fmt.Fprintln(out, "  "+name)
			for _, o := range opts {
				k, v, _ := strings.Cut(o, "=")
				if k == "profile" {
					fmt.Fprintln(out, "   Profile:", v)
				}
			}
		}
	}
	nonEmpty(" Kernel Version:", info.KernelVersion)
	nonEmpty(" Operating System:", info.OperatingSystem)
	nonEmpty(" OSType:", info.OSType)
	nonEmpty(" Architecture:", info.Architecture)
	fmt.Fprintln(out, " CPUs:", info.NCPU)
	fmt.Fprintln(out, " Total Memory:", units.BytesSize(float64(info.MemTotal)))
	nonEmpty(" Name:", info.Name)
	nonEmpty(" ID:", info.ID)
	fmt.Fprintln(out, " Docker Root Dir:", info.DockerRootDir)
	fmt.Fprintln(out, " Debug Mode:", info.Debug)
	nonEmpty(" HTTP Proxy:", info.HTTPProxy)
	nonEmpty(" HTTPS Proxy:", info.HTTPSProxy)
	nonEmpty(" No Proxy:", info.NoProxy)
	if len(info.Labels) > 0 {
		fmt.Fprintln(out, " Labels:")
		for _, l := range info.Labels {
			fmt.Fprintln(out, "  "+l)
		}
	}
	fmt.Fprintln(out, " Experimental:", info.ExperimentalBuild)
	if rc := info.RegistryConfig; rc != nil {
		var insecure []string
		for _, idx := range rc.IndexConfigs {
			if idx != nil && !idx.Secure {
				insecure = append(insecure, idx.Name)
			}
		}
		sort.Strings(insecure)
		for _, p := range rc.InsecureRegistryCIDRs {
			insecure = append(insecure, p.String())
		}
		if len(insecure) > 0 {
			fmt.Fprintln(out, " Insecure Registries:")
			for _, r := range insecure {
				fmt.Fprintln(out, "  "+r)
			}
		}
		if len(rc.Mirrors) > 0 {
			fmt.Fprintln(out, " Registry Mirrors:")
			for _, m := range rc.Mirrors {
				fmt.Fprintln(out, "  "+m)
			}
		}
	}
	fmt.Fprintln(out, " Live Restore Enabled:", info.LiveRestoreEnabled)
	fmt.Fprintln(out)
	for _, w := range info.Warnings {
		fmt.Fprintln(c.err, w)
	}
}
