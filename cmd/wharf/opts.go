package main

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/docker/go-connections/nat"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/spf13/pflag"
)

// containerOptions are the flags of `wharf create` and `wharf run` (one struct, filled by cobra, converted to
// API bodies by parse).
type containerOptions struct {
	name              string
	attach            []string
	env               []string
	envFile           []string
	entrypoint        string
	hostname          string
	domainname        string
	stdin             bool
	tty               bool
	labels            []string
	labelFile         []string
	readOnly          bool
	restart           string
	stopSignal        string
	stopTimeout       int
	user              string
	workdir           string
	autoRemove        bool
	capAdd            []string
	capDrop           []string
	privileged        bool
	securityOpt       []string
	publish           []string
	publishAll        bool
	expose            []string
	networks          []string
	aliases           []string
	ipv4              string
	volumes           []string
	mounts            []string
	tmpfs             []string
	volumesFrom       []string
	memory            memBytes
	memorySwap        memSwapBytes
	memoryReservation memBytes
	shmSize           memBytes
	cpus              nanoCPUs
	cpuShares         int64
	cpusetCpus        string
	pidsLimit         int64
	init              bool
	dns               []string
	dnsSearch         []string
	dnsOptions        []string
	extraHosts        []string
	logDriver         string
	logOpts           []string
	sysctls           []string
	ulimits           []string
	ipcMode           string
	pidMode           string
	utsMode           string
	usernsMode        string
	cgroupnsMode      string
	groupAdd          []string
	devices           []string
	cidFile           string
	platform          string
	pull              string
	quiet             bool

	// Which flags were given (filled from the flag set before parse).
	entrypointSet  bool
	stopTimeoutSet bool
	initSet        bool

	image string
	args  []string
}

// addContainerFlags registers the flags shared by create and run.
func addContainerFlags(flags *pflag.FlagSet, o *containerOptions) {
	flags.SetInterspersed(false)
	flags.StringVar(&o.name, "name", "", "Assign a name to the container")
	listVarP(flags, &o.attach, "attach", "a", "Attach to STDIN, STDOUT or STDERR")
	listVarP(flags, &o.env, "env", "e", "Set environment variables")
	listVarP(flags, &o.envFile, "env-file", "", "Read in a file of environment variables")
	flags.StringVar(&o.entrypoint, "entrypoint", "", "Overwrite the default ENTRYPOINT of the image")
	flags.StringVarP(&o.hostname, "hostname", "h", "", "Container host name")
	flags.StringVar(&o.domainname, "domainname", "", "Container NIS domain name")
	flags.BoolVarP(&o.stdin, "interactive", "i", false, "Keep STDIN open even if not attached")
	flags.BoolVarP(&o.tty, "tty", "t", false, "Allocate a pseudo-TTY")
	listVarP(flags, &o.labels, "label", "l", "Set meta data on a container")
	listVarP(flags, &o.labelFile, "label-file", "", "Read in a line delimited file of labels")
	flags.BoolVar(&o.readOnly, "read-only", false, "Mount the container's root filesystem as read only")
	flags.StringVar(&o.restart, "restart", "no", "Restart policy to apply when a container exits")
	flags.StringVar(&o.stopSignal, "stop-signal", "", "Signal to stop the container")
	flags.IntVar(&o.stopTimeout, "stop-timeout", 0, "Timeout (in seconds) to stop a container")
	flags.StringVarP(&o.user, "user", "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	flags.StringVarP(&o.workdir, "workdir", "w", "", "Working directory inside the container")
	flags.BoolVar(&o.autoRemove, "rm", false, "Automatically remove the container and its associated anonymous volumes when it exits")
	listVarP(flags, &o.capAdd, "cap-add", "", "Add Linux capabilities")
	listVarP(flags, &o.capDrop, "cap-drop", "", "Drop Linux capabilities")
	flags.BoolVar(&o.privileged, "privileged", false, "Give extended privileges to this container")
	listVarP(flags, &o.securityOpt, "security-opt", "", "Security Options")
	listVarP(flags, &o.publish, "publish", "p", "Publish a container's port(s) to the host")
	flags.BoolVarP(&o.publishAll, "publish-all", "P", false, "Publish all exposed ports to random ports")
	listVarP(flags, &o.expose, "expose", "", "Expose a port or a range of ports")
	listVarP(flags, &o.networks, "network", "", "Connect a container to a network")
	listVarP(flags, &o.networks, "net", "", "Connect a container to a network")
	_ = flags.MarkHidden("net")
	listVarP(flags, &o.aliases, "network-alias", "", "Add network-scoped alias for the container")
	listVarP(flags, &o.aliases, "net-alias", "", "Add network-scoped alias for the container")
	_ = flags.MarkHidden("net-alias")
	flags.StringVar(&o.ipv4, "ip", "", "IPv4 address (e.g., 172.30.100.104)")
	listVarP(flags, &o.volumes, "volume", "v", "Bind mount a volume")
	listVarP(flags, &o.mounts, "mount", "", "Attach a filesystem mount to the container")
	listVarP(flags, &o.tmpfs, "tmpfs", "", "Mount a tmpfs directory")
	listVarP(flags, &o.volumesFrom, "volumes-from", "", "Mount volumes from the specified container(s)")
	flags.VarP(&o.memory, "memory", "m", "Memory limit")
	flags.Var(&o.memorySwap, "memory-swap", "Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
	flags.Var(&o.memoryReservation, "memory-reservation", "Memory soft limit")
	flags.Var(&o.shmSize, "shm-size", "Size of /dev/shm")
	flags.Var(&o.cpus, "cpus", "Number of CPUs")
	flags.Int64VarP(&o.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	flags.StringVar(&o.cpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	flags.Int64Var(&o.pidsLimit, "pids-limit", 0, "Tune container pids limit (set -1 for unlimited)")
	flags.BoolVar(&o.init, "init", false, "Run an init inside the container that forwards signals and reaps processes")
	listVarP(flags, &o.dns, "dns", "", "Set custom DNS servers")
	listVarP(flags, &o.dnsSearch, "dns-search", "", "Set custom DNS search domains")
	listVarP(flags, &o.dnsOptions, "dns-option", "", "Set DNS options")
	listVarP(flags, &o.dnsOptions, "dns-opt", "", "Set DNS options")
	_ = flags.MarkHidden("dns-opt")
	listVarP(flags, &o.extraHosts, "add-host", "", "Add a custom host-to-IP mapping (host:ip)")
	flags.StringVar(&o.logDriver, "log-driver", "", "Logging driver for the container")
	listVarP(flags, &o.logOpts, "log-opt", "", "Log driver options")
	listVarP(flags, &o.sysctls, "sysctl", "", "Sysctl options")
	listVarP(flags, &o.ulimits, "ulimit", "", "Ulimit options")
	flags.StringVar(&o.ipcMode, "ipc", "", "IPC mode to use")
	flags.StringVar(&o.pidMode, "pid", "", "PID namespace to use")
	flags.StringVar(&o.utsMode, "uts", "", "UTS namespace to use")
	flags.StringVar(&o.usernsMode, "userns", "", "User namespace to use")
	flags.StringVar(&o.cgroupnsMode, "cgroupns", "", "Cgroup namespace to use (host|private)")
	listVarP(flags, &o.groupAdd, "group-add", "", "Add additional groups to join")
	listVarP(flags, &o.devices, "device", "", "Add a host device to the container")
	flags.StringVar(&o.cidFile, "cidfile", "", "Write the container ID to the file")
	flags.StringVar(&o.platform, "platform", "", "Set platform if server is multi-platform capable")
	flags.StringVar(&o.pull, "pull", "missing", `Pull image before creating ("always", "missing", "never")`)
	flags.BoolVarP(&o.quiet, "quiet", "q", false, "Suppress the pull output")
	// -h is --hostname here, so help has no shorthand.
	flags.Bool("help", false, "Print usage")
}

// noteChanged records which flags were given explicitly (an empty --entrypoint resets it).
func (o *containerOptions) noteChanged(flags *pflag.FlagSet) {
	o.entrypointSet = flags.Changed("entrypoint")
	o.stopTimeoutSet = flags.Changed("stop-timeout")
	o.initSet = flags.Changed("init")
}

// containerConfig is what POST /containers/create takes.
type containerConfig struct {
	Config           *container.Config
	HostConfig       *container.HostConfig
	NetworkingConfig *network.NetworkingConfig
}

// parse converts the options to the create request, validating like docker's CLI does.
func (o *containerOptions) parse() (*containerConfig, error) {
	attachStdin, attachStdout, attachStderr := false, false, false
	for _, a := range o.attach {
		switch strings.ToLower(a) {
		case "stdin":
			attachStdin = true
		case "stdout":
			attachStdout = true
		case "stderr":
			attachStderr = true
		default:
			return nil, fmt.Errorf("valid streams are STDIN, STDOUT and STDERR")
		}
	}
	if o.stdin {
		attachStdin = true
	}
	if len(o.attach) == 0 {
		attachStdout, attachStderr = true, true
	}

	volumes := map[string]struct{}{}
	var binds []string
	for _, v := range o.volumes {
		bind, anon, err := parseVolumeSpec(v)
		if err != nil {
			return nil, err
		}
		if anon != "" {
			volumes[anon] = struct{}{}
		} else {
			binds = append(binds, bind)
		}
	}

	var mounts []mount.Mount
	for _, m := range o.mounts {
		mm, err := parseMountSpec(m)
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, mm)
	}

	tmpfs := map[string]string{}
	for _, t := range o.tmpfs {
		k, v, _ := strings.Cut(t, ":")
		tmpfs[k] = v
	}

	var cmd, entrypoint []string
	if len(o.args) > 0 {
		cmd = o.args
	}
	if o.entrypoint != "" {
		entrypoint = []string{o.entrypoint}
	} else if o.entrypointSet {
		entrypoint = []string{""}
	}

	exposed, bindings, err := parsePublish(o.publish)
	if err != nil {
		return nil, err
	}
	for _, e := range o.expose {
		if err := addExpose(exposed, e); err != nil {
			return nil, err
		}
	}

	env, err := readKVEnvStrings(o.envFile, o.env)
	if err != nil {
		return nil, err
	}
	labelList, err := readKVStrings(o.labelFile, o.labels)
	if err != nil {
		return nil, err
	}

	restart, err := parseRestartPolicy(o.restart)
	if err != nil {
		return nil, err
	}
	if o.autoRemove && restart.Name != "" && restart.Name != container.RestartPolicyDisabled {
		return nil, errors.New("conflicting options: cannot specify both --restart and --rm")
	}

	logOpts, err := parseKVMap(o.logOpts, "log-opt")
	if err != nil {
		return nil, err
	}
	if o.logDriver == "none" && len(logOpts) > 0 {
		return nil, fmt.Errorf("invalid logging opts for driver %s", o.logDriver)
	}
	sysctls, err := parseKVMap(o.sysctls, "sysctl")
	if err != nil {
		return nil, err
	}
	ulimits, err := parseUlimits(o.ulimits)
	if err != nil {
		return nil, err
	}
	var extraHosts []string
	for _, h := range o.extraHosts {
		norm, err := validateExtraHost(h)
		if err != nil {
			return nil, err
		}
		extraHosts = append(extraHosts, norm)
	}
	var devices []container.DeviceMapping
	for _, d := range o.devices {
		dm, err := parseDevice(d)
		if err != nil {
			return nil, err
		}
		devices = append(devices, dm)
	}

	dns := []netip.Addr{}
	for _, d := range o.dns {
		a, err := netip.ParseAddr(strings.TrimSpace(d))
		if err != nil {
			return nil, fmt.Errorf("IP address is not correctly formatted: %s", d)
		}
		dns = append(dns, a)
	}

	swappiness := int64(-1)
	pidsLimit := o.pidsLimit
	oomKillDisable := false
	resources := container.Resources{
		Memory:            o.memory.Value(),
		MemoryReservation: o.memoryReservation.Value(),
		MemorySwap:        o.memorySwap.Value(),
		MemorySwappiness:  &swappiness,
		OomKillDisable:    &oomKillDisable,
		NanoCPUs:          o.cpus.Value(),
		CPUShares:         o.cpuShares,
		CpusetCpus:        o.cpusetCpus,
		PidsLimit:         &pidsLimit,
		Ulimits:           ulimits,
		Devices:           devices,
	}

	cfg := &container.Config{
		Hostname:     o.hostname,
		Domainname:   o.domainname,
		ExposedPorts: exposed,
		User:         o.user,
		Tty:          o.tty,
		OpenStdin:    o.stdin,
		AttachStdin:  attachStdin,
		AttachStdout: attachStdout,
		AttachStderr: attachStderr,
		Env:          env,
		Cmd:          cmd,
		Image:        o.image,
		Volumes:      volumes,
		Entrypoint:   entrypoint,
		WorkingDir:   o.workdir,
		Labels:       kvStringsToMap(labelList),
		StopSignal:   o.stopSignal,
	}
	if o.stopTimeoutSet {
		t := o.stopTimeout
		cfg.StopTimeout = &t
	}
	// When allocating stdin in attached mode, close stdin at client disconnect.
	if cfg.OpenStdin && cfg.AttachStdin {
		cfg.StdinOnce = true
	}

	netMode := "default"
	if len(o.networks) > 0 {
		netMode = o.networks[0]
	}
	capAdd, capDrop := effectiveCaps(o.capAdd, o.capDrop)
	hc := &container.HostConfig{
		Binds:           binds,
		ContainerIDFile: o.cidFile,
		AutoRemove:      o.autoRemove,
		Privileged:      o.privileged,
		PortBindings:    bindings,
		PublishAllPorts: o.publishAll,
		DNS:             dns,
		DNSSearch:       nonNil(o.dnsSearch),
		DNSOptions:      nonNil(o.dnsOptions),
		ExtraHosts:      extraHosts,
		VolumesFrom:     o.volumesFrom,
		IpcMode:         container.IpcMode(o.ipcMode),
		NetworkMode:     container.NetworkMode(netMode),
		PidMode:         container.PidMode(o.pidMode),
		UTSMode:         container.UTSMode(o.utsMode),
		UsernsMode:      container.UsernsMode(o.usernsMode),
		CgroupnsMode:    container.CgroupnsMode(o.cgroupnsMode),
		CapAdd:          capAdd,
		CapDrop:         capDrop,
		GroupAdd:        o.groupAdd,
		RestartPolicy:   restart,
		SecurityOpt:     o.securityOpt,
		ReadonlyRootfs:  o.readOnly,
		LogConfig:       container.LogConfig{Type: o.logDriver, Config: logOpts},
		ShmSize:         o.shmSize.Value(),
		Resources:       resources,
		Tmpfs:           tmpfs,
		Sysctls:         sysctls,
		Mounts:          mounts,
	}
	if len(tmpfs) == 0 {
		hc.Tmpfs = nil
	}
	if len(sysctls) == 0 {
		hc.Sysctls = nil
	}
	if o.initSet {
		v := o.init
		hc.Init = &v
	}

	var ipam *network.EndpointIPAMConfig
	if o.ipv4 != "" {
		a, err := netip.ParseAddr(o.ipv4)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("invalid IPv4 address: %s", o.ipv4)
		}
		ipam = &network.EndpointIPAMConfig{IPv4Address: a}
	}
	endpoints := map[string]*network.EndpointSettings{}
	if len(o.networks) == 0 {
		ep := &network.EndpointSettings{}
		if len(o.aliases) > 0 {
			return nil, errors.New("network-scoped aliases are only supported for user-defined networks")
		}
		if ipam != nil {
			return nil, errors.New("user specified IP address is supported on user defined networks only")
		}
		endpoints["default"] = ep
	} else {
		for i, n := range o.networks {
			if _, dup := endpoints[n]; dup {
				return nil, fmt.Errorf("network %q is specified multiple times", n)
			}
			ep := &network.EndpointSettings{}
			if i == 0 && len(o.aliases) > 0 {
				if isBuiltinNetwork(n) {
					return nil, errors.New("network-scoped aliases are only supported for user-defined networks")
				}
				ep.Aliases = o.aliases
			}
			if i == 0 && ipam != nil {
				if isBuiltinNetwork(n) {
					return nil, errors.New("user specified IP address is supported on user defined networks only")
				}
				ep.IPAMConfig = ipam
			}
			endpoints[n] = ep
		}
	}
	return &containerConfig{
		Config:           cfg,
		HostConfig:       hc,
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: endpoints},
	}, nil
}

func isBuiltinNetwork(n string) bool {
	switch n {
	case "default", "bridge", "host", "none":
		return true
	}
	return strings.HasPrefix(n, "container:")
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// --- ports ------------------------------------------------------------------------------------------------------

// parsePublish parses -p values ([ip:][hostPort:]containerPort[/proto], ranges, [ipv6], and the long form
// "target=80,published=8080,protocol=tcp") into exposed ports and bindings.
func parsePublish(specs []string) (network.PortSet, network.PortMap, error) {
	exposed := network.PortSet{}
	bindings := network.PortMap{}
	for _, raw := range specs {
		spec := raw
		if strings.Contains(raw, "=") {
			var err error
			if spec, err = longPublishToShort(raw); err != nil {
				return nil, nil, err
			}
		}
		mappings, err := nat.ParsePortSpec(spec)
		if err != nil {
			return nil, nil, err
		}
		for _, m := range mappings {
			p, err := network.ParsePort(string(m.Port))
			if err != nil {
				return nil, nil, err
			}
			exposed[p] = struct{}{}
			var ip netip.Addr
			if m.Binding.HostIP != "" {
				if ip, err = netip.ParseAddr(m.Binding.HostIP); err != nil {
					return nil, nil, errors.New("invalid IP address: " + m.Binding.HostIP)
				}
			}
			bindings[p] = append(bindings[p], network.PortBinding{HostIP: ip, HostPort: m.Binding.HostPort})
		}
	}
	return exposed, bindings, nil
}

func longPublishToShort(raw string) (string, error) {
	var target, published, proto string
	for _, field := range strings.Split(raw, ",") {
		k, v, ok := strings.Cut(field, "=")
		if !ok {
			return "", fmt.Errorf("invalid field %s", field)
		}
		switch strings.ToLower(k) {
		case "target":
			target = v
		case "published":
			published = v
		case "protocol":
			proto = v
		case "mode":
			if v != "ingress" && v != "host" {
				return "", fmt.Errorf("invalid publish mode value (%s): must be either 'ingress' or 'host'", v)
			}
		default:
			return "", fmt.Errorf("invalid field key: %s", k)
		}
	}
	if target == "" {
		return "", errors.New("missing mandatory field 'target'")
	}
	s := target
	if published != "" {
		s = published + ":" + target
	}
	if proto != "" {
		s += "/" + proto
	}
	return s, nil
}

// addExpose adds --expose values (port or range, optional /proto) to exposed.
func addExpose(exposed network.PortSet, e string) error {
	if strings.Contains(e, ":") {
		return fmt.Errorf("invalid port format for --expose: %s", e)
	}
	proto, port := nat.SplitProtoPort(e)
	start, end, err := nat.ParsePortRange(port)
	if err != nil {
		return fmt.Errorf("invalid range format for --expose: %s, error: %s", e, err)
	}
	for i := start; i <= end; i++ {
		p, err := network.ParsePort(strconv.FormatUint(i, 10) + "/" + proto)
		if err != nil {
			return err
		}
		exposed[p] = struct{}{}
	}
	return nil
}

// --- volumes and mounts -----------------------------------------------------------------------------------------

// parseVolumeSpec parses a -v value. A lone container path is an anonymous volume (returned in anon); anything
// with a source is a bind or a named volume, returned as the Binds entry (relative "./x" sources made absolute).
func parseVolumeSpec(spec string) (bind, anon string, err error) {
	if spec == "" {
		return "", "", errors.New("invalid empty volume spec")
	}
	parts := strings.Split(spec, ":")
	for _, p := range parts {
		if p == "" {
			return "", "", fmt.Errorf("invalid spec: %s: empty section between colons", spec)
		}
	}
	switch len(parts) {
	case 1:
		return "", parts[0], nil
	case 2, 3:
		src := parts[0]
		if !filepath.IsAbs(src) && strings.HasPrefix(src, ".") {
			if abs, err := filepath.Abs(src); err == nil {
				src = abs
			}
		} else if strings.HasPrefix(src, "~") {
			if home, err := os.UserHomeDir(); err == nil {
				src = filepath.Join(home, strings.TrimPrefix(src, "~"))
			}
		}
		if len(parts) == 3 {
			if err := validateVolumeMode(parts[2]); err != nil {
				return "", "", fmt.Errorf("invalid mode: %s", parts[2])
			}
		}
		parts[0] = src
		return strings.Join(parts, ":"), "", nil
	default:
		return "", "", fmt.Errorf("invalid spec: %s: too many colons", spec)
	}
}

func validateVolumeMode(mode string) error {
	for _, m := range strings.Split(mode, ",") {
		switch m {
		case "ro", "rw", "z", "Z", "nocopy", "shared", "rshared", "slave", "rslave", "private", "rprivate",
			"consistent", "cached", "delegated":
		default:
			return errors.New("invalid mode")
		}
	}
	return nil
}

// parseMountSpec parses a --mount value (type=bind|volume|tmpfs,source=…,target=…,readonly).
func parseMountSpec(spec string) (mount.Mount, error) {
	m := mount.Mount{Type: mount.TypeVolume}
	for _, field := range strings.Split(spec, ",") {
		k, v, hasValue := strings.Cut(field, "=")
		switch strings.ToLower(k) {
		case "type":
			m.Type = mount.Type(strings.ToLower(v))
		case "source", "src":
			m.Source = v
		case "target", "dst", "destination":
			m.Target = v
		case "readonly", "ro":
			if !hasValue {
				m.ReadOnly = true
				continue
			}
			b, err := strconv.ParseBool(v)
			if err != nil {
				return m, fmt.Errorf("invalid value for %s: %s", k, v)
			}
			m.ReadOnly = b
		case "bind-propagation":
			if m.BindOptions == nil {
				m.BindOptions = &mount.BindOptions{}
			}
			m.BindOptions.Propagation = mount.Propagation(v)
		case "tmpfs-size":
			sz, err := units.RAMInBytes(v)
			if err != nil {
				return m, fmt.Errorf("invalid value for %s: %s", k, v)
			}
			if m.TmpfsOptions == nil {
				m.TmpfsOptions = &mount.TmpfsOptions{}
			}
			m.TmpfsOptions.SizeBytes = sz
		case "tmpfs-mode":
			mode, err := strconv.ParseUint(v, 8, 32)
			if err != nil {
				return m, fmt.Errorf("invalid value for %s: %s", k, v)
			}
			if m.TmpfsOptions == nil {
				m.TmpfsOptions = &mount.TmpfsOptions{}
			}
			m.TmpfsOptions.Mode = os.FileMode(mode)
		case "volume-nocopy":
			noCopy := true
			if hasValue {
				b, err := strconv.ParseBool(v)
				if err != nil {
					return m, fmt.Errorf("invalid value for %s: %s", k, v)
				}
				noCopy = b
			}
			if m.VolumeOptions == nil {
				m.VolumeOptions = &mount.VolumeOptions{}
			}
			m.VolumeOptions.NoCopy = noCopy
		case "consistency", "volume-driver", "volume-label", "volume-opt", "bind-recursive":
		default:
			return m, fmt.Errorf("unexpected key '%s' in '%s'", k, field)
		}
	}
	if m.Target == "" {
		return m, errors.New("target is required")
	}
	if m.Type == mount.TypeBind && m.Source != "" && !filepath.IsAbs(m.Source) {
		if abs, err := filepath.Abs(m.Source); err == nil {
			m.Source = abs
		}
	}
	return m, nil
}

// --- env, labels, key=value --------------------------------------------------------------------------------------

// validateEnv expands a bare "KEY" from this process's environment (kept as is when unset).
func validateEnv(val string) (string, error) {
	k, _, hasValue := strings.Cut(val, "=")
	if k == "" {
		return "", errors.New("invalid environment variable: " + val)
	}
	if hasValue {
		return val, nil
	}
	if v, ok := os.LookupEnv(k); ok {
		return k + "=" + v, nil
	}
	return val, nil
}

// readKVEnvStrings reads --env-file files, then appends -e values (so -e wins).
func readKVEnvStrings(files, override []string) ([]string, error) {
	var out []string
	for _, f := range files {
		lines, err := parseKeyValueFile(f, os.LookupEnv)
		if err != nil {
			return nil, err
		}
		out = append(out, lines...)
	}
	for _, e := range override {
		v, err := validateEnv(e)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// readKVStrings reads --label-file files, then appends -l values.
func readKVStrings(files, override []string) ([]string, error) {
	var out []string
	for _, f := range files {
		lines, err := parseKeyValueFile(f, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, lines...)
	}
	return append(out, override...), nil
}

// parseKeyValueFile reads KEY=VALUE lines: blank lines and '#' comments are skipped, leading whitespace is
// dropped, a bare KEY takes its value from lookup (and is left out when lookup has none).
func parseKeyValueFile(filename string, lookup func(string) (string, bool)) ([]string, error) {
	data, err := os.ReadFile(filename)
	if err != nil {
		return nil, err
	}
	lines, err := parseKeyValueLines(string(data), lookup)
	if err != nil {
		return nil, fmt.Errorf("invalid env file (%s): %v", filename, err)
	}
	return lines, nil
}

func parseKeyValueLines(data string, lookup func(string) (string, bool)) ([]string, error) {
	data = strings.TrimPrefix(data, "\xEF\xBB\xBF")
	var out []string
	for n, raw := range strings.Split(data, "\n") {
		raw = strings.TrimSuffix(raw, "\r")
		if !utf8.ValidString(raw) {
			return nil, fmt.Errorf("invalid utf8 bytes at line %d: %v", n+1, []byte(raw))
		}
		line := strings.TrimLeft(raw, " \t\v\f")
		if line == "" || line[0] == '#' {
			continue
		}
		key, _, hasValue := strings.Cut(line, "=")
		if key == "" {
			return nil, fmt.Errorf("no variable name on line '%s'", line)
		}
		if strings.ContainsAny(key, " \t") {
			return nil, fmt.Errorf("variable '%s' contains whitespaces", key)
		}
		if hasValue {
			out = append(out, line)
			continue
		}
		if lookup != nil {
			if v, ok := lookup(line); ok {
				out = append(out, key+"="+v)
			}
		}
	}
	return out, nil
}

// kvStringsToMap turns ["a=b", "c"] into {"a":"b","c":""}.
func kvStringsToMap(values []string) map[string]string {
	m := make(map[string]string, len(values))
	for _, v := range values {
		k, val, _ := strings.Cut(v, "=")
		m[k] = val
	}
	return m
}

func parseKVMap(values []string, flagName string) (map[string]string, error) {
	m := make(map[string]string, len(values))
	for _, v := range values {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid %s format: %s", flagName, v)
		}
		m[k] = val
	}
	return m, nil
}

// --- restart, caps, ulimits, hosts, devices ---------------------------------------------------------------------

// parseRestartPolicy parses --restart ("no", "always", "unless-stopped", "on-failure[:N]") like docker's CLI:
// the name is checked by the daemon, the count here.
func parseRestartPolicy(policy string) (container.RestartPolicy, error) {
	if policy == "" {
		return container.RestartPolicy{}, nil
	}
	p := container.RestartPolicy{}
	k, v, ok := strings.Cut(policy, ":")
	if ok && k == "" {
		return container.RestartPolicy{}, errors.New("invalid restart policy format: no policy provided before colon")
	}
	if v != "" {
		count, err := strconv.Atoi(v)
		if err != nil {
			return container.RestartPolicy{}, errors.New("invalid restart policy format: maximum retry count must be an integer")
		}
		p.MaximumRetryCount = count
	}
	p.Name = container.RestartPolicyMode(k)
	return p, nil
}

func normalizeCap(c string) string {
	c = strings.ToUpper(strings.TrimSpace(c))
	if c == "ALL" || c == "RESET" {
		return c
	}
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}

// effectiveCaps normalises --cap-add/--cap-drop ("net_admin" → "CAP_NET_ADMIN"); a cap both added and dropped
// is added; ALL absorbs the rest.
func effectiveCaps(add, drop []string) (capAdd, capDrop []string) {
	addM, dropM := map[string]bool{}, map[string]bool{}
	for _, c := range add {
		addM[normalizeCap(c)] = true
	}
	for _, c := range drop {
		dropM[normalizeCap(c)] = true
	}
	if addM["ALL"] {
		addM = map[string]bool{"ALL": true}
	}
	if dropM["ALL"] {
		dropM = map[string]bool{"ALL": true}
	}
	for c := range dropM {
		if !addM[c] && c != "RESET" {
			capDrop = append(capDrop, c)
		}
	}
	for c := range addM {
		if c != "RESET" {
			capAdd = append(capAdd, c)
		}
	}
	sort.Strings(capAdd)
	sort.Strings(capDrop)
	return capAdd, capDrop
}

func parseUlimits(values []string) ([]*container.Ulimit, error) {
	var out []*container.Ulimit
	for _, v := range values {
		u, err := units.ParseUlimit(v)
		if err != nil {
			return nil, err
		}
		out = append(out, &container.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
	}
	return out, nil
}

// validateExtraHost checks an --add-host value (NAME:IP, NAME=IP, IP possibly in brackets, or host-gateway)
// and returns it as the API expects it: NAME:IP.
func validateExtraHost(val string) (string, error) {
	name, ip, ok := strings.Cut(val, "=")
	if !ok {
		name, ip, ok = strings.Cut(val, ":")
	}
	if !ok || name == "" || strings.Contains(name, ":") {
		return "", fmt.Errorf("bad format for add-host: %q", val)
	}
	if len(ip) > 2 && ip[0] == '[' && ip[len(ip)-1] == ']' {
		ip = ip[1 : len(ip)-1]
	}
	if ip != "host-gateway" {
		if _, err := netip.ParseAddr(ip); err != nil {
			return "", fmt.Errorf("invalid IP address in add-host: %q", ip)
		}
	}
	return name + ":" + ip, nil
}

func parseDevice(d string) (container.DeviceMapping, error) {
	parts := strings.Split(d, ":")
	dm := container.DeviceMapping{CgroupPermissions: "rwm"}
	switch len(parts) {
	case 1:
		dm.PathOnHost, dm.PathInContainer = parts[0], parts[0]
	case 2:
		dm.PathOnHost = parts[0]
		if isDevicePerm(parts[1]) {
			dm.PathInContainer, dm.CgroupPermissions = parts[0], parts[1]
		} else {
			dm.PathInContainer = parts[1]
		}
	case 3:
		if !isDevicePerm(parts[2]) {
			return dm, fmt.Errorf("invalid device mode: %s", parts[2])
		}
		dm.PathOnHost, dm.PathInContainer, dm.CgroupPermissions = parts[0], parts[1], parts[2]
	default:
		return dm, fmt.Errorf("invalid device specification: %s", d)
	}
	if !strings.HasPrefix(dm.PathInContainer, "/") {
		return dm, fmt.Errorf("%s is not an absolute path", dm.PathInContainer)
	}
	return dm, nil
}

func isDevicePerm(s string) bool {
	if s == "" || len(s) > 3 {
		return false
	}
	for _, c := range s {
		if c != 'r' && c != 'w' && c != 'm' {
			return false
		}
	}
	return true
}

// --- flag value types ---------------------------------------------------------------------------------------------

// memBytes is a size flag ("512m", "1g").
type memBytes int64

func (m *memBytes) String() string {
	if *m == 0 {
		return ""
	}
	return units.BytesSize(float64(*m))
}
func (m *memBytes) Set(v string) error {
	n, err := units.RAMInBytes(v)
	*m = memBytes(n)
	return err
}
func (m *memBytes) Type() string { return "bytes" }
func (m *memBytes) Value() int64 { return int64(*m) }

// memSwapBytes is memBytes that also takes -1 (unlimited).
type memSwapBytes int64

func (m *memSwapBytes) String() string { return (*memBytes)(m).String() }
func (m *memSwapBytes) Set(v string) error {
	if v == "-1" {
		*m = -1
		return nil
	}
	return (*memBytes)(m).Set(v)
}
func (m *memSwapBytes) Type() string { return "bytes" }
func (m *memSwapBytes) Value() int64 { return int64(*m) }

// nanoCPUs is --cpus ("1.5" → 1500000000).
type nanoCPUs int64

func (c *nanoCPUs) String() string {
	if *c == 0 {
		return ""
	}
	return big.NewRat(int64(*c), 1e9).FloatString(3)
}
func (c *nanoCPUs) Set(v string) error {
	cpus, ok := new(big.Rat).SetString(v)
	if !ok {
		return fmt.Errorf("failed to parse %v as a rational number", v)
	}
	nano := cpus.Mul(cpus, big.NewRat(1e9, 1))
	if !nano.IsInt() {
		return errors.New("value is too precise")
	}
	*c = nanoCPUs(nano.Num().Int64())
	return nil
}
func (c *nanoCPUs) Type() string { return "decimal" }
func (c *nanoCPUs) Value() int64 { return int64(*c) }
