package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/wharfhq/wharf/internal/api/docker"
	"github.com/wharfhq/wharf/internal/engine"
	"github.com/wharfhq/wharf/internal/memtrim"
	"github.com/wharfhq/wharf/internal/registry"
	"github.com/wharfhq/wharf/internal/runtime"
	"github.com/wharfhq/wharf/internal/runtime/shimbin"
)

// daemonOptions are `wharf daemon`'s flags, named as dockerd's where dockerd has them.
type daemonOptions struct {
	dataRoot string
	execRoot string
	hosts    []string
	debug    bool
	bridge   string
	subnet   string
	// favorDynmods: cheap cgroup migrations (see runtime.FavorDynmods)
	favorDynmods bool
	// Kubernetes API
	kubePort          int
	noKube            bool
	datastoreEndpoint string
	// Registries
	insecureRegistries []string
}

func newDaemonCommand() *cobra.Command {
	var o daemonOptions
	cmd := &cobra.Command{
		Use:           "daemon [OPTIONS]",
		Short:         "Run the Wharf daemon: the container engine, the Docker API and the Kubernetes API",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: false,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDaemon(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataRoot, "data-root", "/var/lib/wharf", "Root directory of persistent Wharf state")
	f.StringVar(&o.execRoot, "exec-root", "/run/wharf", "Root directory for execution state files")
	f.StringSliceVarP(&o.hosts, "host", "H", []string{defaultHost}, "Daemon socket(s) to connect to")
	f.BoolVarP(&o.debug, "debug", "D", false, "Enable debug mode")
	f.StringVar(&o.bridge, "bridge-name", "wharf0", "Name of the default bridge")
	f.StringVar(&o.subnet, "bip-subnet", "", "Subnet of the default bridge (default: the first free one)")
	f.BoolVar(&o.favorDynmods, "cgroup-favordynmods", true, "Set the cgroup2 root flag favordynmods, so that moving a container's init into its cgroups does not wait for an RCU grace period")
	f.IntVar(&o.kubePort, "kube-port", 6443, "Port of the Kubernetes API (HTTPS)")
	f.BoolVar(&o.noKube, "no-kube", false, "Do not serve the Kubernetes API")
	f.StringVar(&o.datastoreEndpoint, "datastore-endpoint", "", "etcd endpoint(s) for cluster state (default: embedded bbolt)")
	f.StringArrayVar(&o.insecureRegistries, "insecure-registry", nil, "Enable insecure registry communication (host[:port] or CIDR; repeatable)")
	return cmd
}

func runDaemon(ctx context.Context, o daemonOptions) error {
	level := slog.LevelInfo
	if o.debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if os.Geteuid() != 0 {
		return fmt.Errorf("wharf daemon needs to be started with root privileges")
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	bin, _ = filepath.EvalSymlinks(bin)
	// Containers re-exec the small embedded shim when this build carries one (see package shimbin).
	if shim, err := shimbin.Install(filepath.Join(o.execRoot, "bin")); err != nil {
		log.Warn("could not install the embedded shim; containers re-exec the wharf binary", "err", err)
	} else if shim != "" {
		bin = shim
	}
	if docker.RegistryClient.Insecure, err = registry.NormalizeInsecureRegistries(o.insecureRegistries); err != nil {
		return err
	}
	if o.favorDynmods {
		on, changed, err := runtime.FavorDynmods(filepath.Join(o.execRoot, "cgroup2-flags"))
		switch {
		case err != nil:
			log.Warn("could not set the cgroup2 root flag favordynmods; each container start may wait for an RCU grace period", "err", err)
		case changed:
			log.Info("cgroup2 root flag favordynmods set: task migrations no longer wait for an RCU grace period")
		case !on:
			log.Debug("cgroup2 root flags are not ours to set here (not in the host's cgroup namespace)")
		}
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	e, err := engine.New(engine.Config{DataRoot: o.dataRoot, ExecRoot: o.execRoot, Binary: bin, Bridge: o.bridge, Subnet: o.subnet, Log: log})
	if err != nil {
		return err
	}
	defer e.Close()
	api := docker.New(e, version, log)
	// After a burst of requests, give back the heap's free pages and the executable's pages it touched.
	trimmer := memtrim.NewIdleTrimmer(2 * time.Second)
	api.Activity = trimmer.Touch
	go trimmer.Run(ctx)
	registerBuilder(api, e, log)
	errc := make(chan error, len(o.hosts)+1)
	for _, h := range o.hosts {
		l, err := listen(h)
		if err != nil {
			return err
		}
		defer l.Close()
		log.Info("Docker API listening", "addr", h)
		if h == defaultHost {
			if err := ensureDockerContext(h); err != nil {
				log.Warn("could not create the docker context \"wharf\"", "err", err)
			}
		}
		go func() { errc <- api.Serve(l) }()
	}
	if !o.noKube {
		stopKube, err := startKube(ctx, o, e, log)
		if err != nil {
			return err
		}
		defer stopKube()
	}
	log.Info("Wharf daemon started", "version", version, "data-root", o.dataRoot)
	// Start-up left most of this large binary resident; an idle daemon needs little of it.
	if n, err := memtrim.TrimExecutable(); err != nil {
		log.Debug("trim executable pages", "err", err)
	} else {
		log.Debug("trimmed executable pages", "mapped-bytes", n)
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down; containers keep running")
	case err := <-errc:
		return err
	}
	api.Close()
	return nil
}

// listen opens a daemon socket: unix sockets are root-only (0660, root:root), like dockerd's.
func listen(host string) (net.Listener, error) {
	proto, addr, ok := strings.Cut(host, "://")
	if !ok {
		proto, addr = "unix", host
	}
	switch proto {
	case "unix":
		if err := os.MkdirAll(filepath.Dir(addr), 0o755); err != nil {
			return nil, err
		}
		if c, err := net.Dial("unix", addr); err == nil {
			c.Close()
			return nil, fmt.Errorf("another daemon is already listening on %s", addr)
		}
		os.Remove(addr)
		l, err := net.Listen("unix", addr)
		if err != nil {
			return nil, err
		}
		if err := os.Chmod(addr, 0o660); err != nil {
			l.Close()
			return nil, err
		}
		os.Chown(addr, 0, 0)
		return l, nil
	case "tcp":
		return net.Listen("tcp", addr)
	}
	return nil, fmt.Errorf("invalid host %q: unsupported protocol %q", host, proto)
}
