package runtime

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/capability"
	"github.com/moby/sys/user"
	"github.com/opencontainers/cgroups"
	devices "github.com/opencontainers/cgroups/devices/config"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultPath is the PATH a container gets when its environment has none (Docker's).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultCgroupParent is the cgroup (absolute, under every hierarchy) that holds the containers' cgroups.
const DefaultCgroupParent = "/wharf"

// defaultNoNewPrivileges sets no_new_privs for every non-privileged container,
// as asked for Wharf. NOTE: Docker's default is off (only
// --security-opt no-new-privileges turns it on); with it on, setuid programs
// (su, sudo, ping as non-root) cannot gain privileges in containers.
const defaultNoNewPrivileges = true

// defaultCaps is Docker's default capability set (CapEff 00000000a80425fb for root).
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

var maskedPaths = []string{
	"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
	"/sys/firmware", "/sys/devices/virtual/powercap",
}

var readonlyPaths = []string{
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
}

// process is what the container's main (or an exec'd) process is run as.
type process struct {
	Args             []string `json:"args"`
	Env              []string `json:"env"`
	Cwd              string   `json:"cwd"`
	UID              int      `json:"uid"`
	GID              int      `json:"gid"`
	AdditionalGroups []int    `json:"additionalGroups,omitempty"`
}

// knownCaps maps "CAP_CHOWN" to its number, for every capability this kernel has.
func knownCaps() map[string]capability.Cap {
	last, err := capability.LastCap()
	if err != nil {
		last = capability.CAP_CHECKPOINT_RESTORE
	}
	m := map[string]capability.Cap{}
	for _, c := range capability.ListKnown() {
		if c <= last {
			m["CAP_"+strings.ToUpper(c.String())] = c
		}
	}
	return m
}

// boundingSet is this process' own bounding set: a container cannot get more
// (here CAP_SYS_RESOURCE may be missing, see the machine notes).
func boundingSet() map[string]bool {
	caps, err := capability.NewPid2(0)
	if err == nil {
		err = caps.Load()
	}
	out := map[string]bool{}
	for name, c := range knownCaps() {
		if err != nil || caps.Get(capability.BOUNDING, c) {
			out[name] = true
		}
	}
	return out
}

func normalizeCap(c string) string {
	c = strings.ToUpper(strings.TrimSpace(c))
	if c == "ALL" || strings.HasPrefix(c, "CAP_") {
		return c
	}
	return "CAP_" + c
}

// capabilities computes the capability list like Docker: privileged = all;
// CapAdd "ALL" = all but CapDrop; CapDrop "ALL" = only CapAdd; else the
// defaults + CapAdd - CapDrop. Capabilities outside our own bounding set are
// left out (asking for them would make the container fail to start).
func capabilities(add, drop []string, privileged bool) ([]string, error) {
	known := knownCaps()
	var adds, drops []string
	for _, c := range add {
		n := normalizeCap(c)
		if _, ok := known[n]; !ok && n != "ALL" {
			return nil, fmt.Errorf("unknown capability to add: %q", c)
		}
		adds = append(adds, n)
	}
	for _, c := range drop {
		n := normalizeCap(c)
		if _, ok := known[n]; !ok && n != "ALL" {
			return nil, fmt.Errorf("unknown capability to drop: %q", c)
		}
		drops = append(drops, n)
	}
	all := make([]string, 0, len(known))
	for n := range known {
		all = append(all, n)
	}
	sort.Slice(all, func(i, j int) bool { return known[all[i]] < known[all[j]] })
	has := func(l []string, s string) bool {
		for _, x := range l {
			if x == s {
				return true
			}
		}
		return false
	}
	var caps []string
	switch {
	case privileged:
		caps = all
	case has(adds, "ALL"):
		for _, c := range all {
			if !has(drops, c) {
				caps = append(caps, c)
			}
		}
	case has(drops, "ALL"):
		for _, c := range adds {
			if !has(caps, c) {
				caps = append(caps, c)
			}
		}
	default:
		for _, c := range append(append([]string{}, defaultCaps...), adds...) {
			if !has(drops, c) && !has(caps, c) {
				caps = append(caps, c)
			}
		}
	}
	bound := boundingSet()
	out := caps[:0:0]
	for _, c := range caps {
		if bound[c] {
			out = append(out, c)
		}
	}
	return out, nil
}

// capsFor is how Docker hands capabilities to a process: root gets them
// effective and permitted, any other user only in the bounding set.
func capsFor(list []string, uid int) *configs.Capabilities {
	if uid == 0 {
		return &configs.Capabilities{Bounding: list, Effective: list, Permitted: list}
	}
	return &configs.Capabilities{Bounding: list}
}

// ownHardLimit returns this process' hard limit for resource res.
func ownHardLimit(res int) uint64 {
	var rl unix.Rlimit
	if err := unix.Getrlimit(res, &rl); err != nil {
		return 1024
	}
	return rl.Max
}

// defaultRlimits gives containers a high open-file limit, never above what
// the daemon itself may have (CAP_SYS_RESOURCE is not to be assumed).
func defaultRlimits() []configs.Rlimit {
	n := min(uint64(1048576), ownHardLimit(unix.RLIMIT_NOFILE))
	return []configs.Rlimit{{Type: unix.RLIMIT_NOFILE, Hard: n, Soft: n}}
}

// rlimitTypes are the names docker --ulimit takes.
var rlimitTypes = map[string]int{
	"as": unix.RLIMIT_AS, "core": unix.RLIMIT_CORE, "cpu": unix.RLIMIT_CPU, "data": unix.RLIMIT_DATA,
	"fsize": unix.RLIMIT_FSIZE, "locks": unix.RLIMIT_LOCKS, "memlock": unix.RLIMIT_MEMLOCK,
	"msgqueue": unix.RLIMIT_MSGQUEUE, "nice": unix.RLIMIT_NICE, "nofile": unix.RLIMIT_NOFILE,
	"nproc": unix.RLIMIT_NPROC, "rss": unix.RLIMIT_RSS, "rtprio": unix.RLIMIT_RTPRIO,
	"rttime": unix.RLIMIT_RTTIME, "sigpending": unix.RLIMIT_SIGPENDING, "stack": unix.RLIMIT_STACK,
}

// ValidateUlimit checks a --ulimit as dockerd does.
func ValidateUlimit(u Ulimit) error {
	if _, ok := rlimitTypes[u.Name]; !ok {
		return fmt.Errorf("invalid ulimit type: %s", u.Name)
	}
	if u.Soft > u.Hard && u.Hard >= 0 {
		return fmt.Errorf("ulimit soft limit must be less than or equal to hard limit: %d > %d", u.Soft, u.Hard)
	}
	return nil
}

// rlimits are the defaults with the --ulimit values put over them.
func rlimits(us []Ulimit) ([]configs.Rlimit, error) {
	out := defaultRlimits()
	for _, u := range us {
		if err := ValidateUlimit(u); err != nil {
			return nil, err
		}
		typ := rlimitTypes[u.Name]
		r := configs.Rlimit{Type: typ, Soft: uint64(u.Soft), Hard: uint64(u.Hard)}
		if u.Soft < 0 {
			r.Soft = unix.RLIM_INFINITY
		}
		if u.Hard < 0 {
			r.Hard = unix.RLIM_INFINITY
		}
		replaced := false
		for i := range out {
			if out[i].Type == typ {
				out[i], replaced = r, true
			}
		}
		if !replaced {
			out = append(out, r)
		}
	}
	return out, nil
}

// ValidateSysctl accepts the sysctls Docker lets a container set: those of
// its own IPC namespace (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*)
// and of its own network namespace (net.*), each only when the namespace is
// the container's own.
func ValidateSysctl(name string, hostIPC, hostNet bool) error {
	switch {
	case name == "kernel.sem" || strings.HasPrefix(name, "kernel.msg") || strings.HasPrefix(name, "kernel.shm") || strings.HasPrefix(name, "fs.mqueue."):
		if hostIPC {
			return fmt.Errorf("sysctl %q not allowed with host ipc namespace", name)
		}
	case strings.HasPrefix(name, "net."):
		if hostNet {
			return fmt.Errorf("sysctl %q not allowed in host network namespace", name)
		}
	default:
		return fmt.Errorf("sysctl '%s' is not allowed", name)
	}
	return nil
}

// userDevice is a --device: the node as it is on the host, under its path in the container.
func userDevice(d Device) (*devices.Device, error) {
	perms := d.Permissions
	if perms == "" {
		perms = "rwm"
	}
	for _, c := range perms {
		if !strings.ContainsRune("rwm", c) {
			return nil, fmt.Errorf("invalid device mode: %s", perms)
		}
	}
	dev, err := deviceAt(d.PathOnHost, perms)
	if err != nil {
		return nil, fmt.Errorf("error gathering device information while adding custom device %q: %w", d.PathOnHost, err)
	}
	dev.Path = d.PathInContainer
	if dev.Path == "" {
		dev.Path = d.PathOnHost
	}
	return dev, nil
}

func ownOOMScoreAdj() int {
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func charDev(path string, major, minor int64) *devices.Device {
	return &devices.Device{
		Path: path, FileMode: 0o666,
		Rule: devices.Rule{Type: devices.CharDevice, Major: major, Minor: minor, Permissions: "rwm", Allow: true},
	}
}

// defaultDevices are the device nodes created in every container (Docker's set).
func defaultDevices() []*devices.Device {
	return []*devices.Device{
		charDev("/dev/null", 1, 3),
		charDev("/dev/random", 1, 8),
		charDev("/dev/full", 1, 7),
		charDev("/dev/tty", 5, 0),
		charDev("/dev/zero", 1, 5),
		charDev("/dev/urandom", 1, 9),
	}
}

// defaultDeviceRules is the device cgroup allow list (deny everything else).
func defaultDeviceRules() []*devices.Rule {
	rules := []*devices.Rule{
		{Type: devices.WildcardDevice, Major: devices.Wildcard, Minor: devices.Wildcard, Permissions: "rwm", Allow: false},
		{Type: devices.CharDevice, Major: devices.Wildcard, Minor: devices.Wildcard, Permissions: "m", Allow: true},
		{Type: devices.BlockDevice, Major: devices.Wildcard, Minor: devices.Wildcard, Permissions: "m", Allow: true},
	}
	for _, d := range defaultDevices() {
		r := d.Rule
		rules = append(rules, &r)
	}
	rules = append(rules,
		&devices.Rule{Type: devices.CharDevice, Major: 136, Minor: devices.Wildcard, Permissions: "rwm", Allow: true}, // /dev/pts/*
		&devices.Rule{Type: devices.CharDevice, Major: 5, Minor: 2, Permissions: "rwm", Allow: true},                  // /dev/ptmx
		&devices.Rule{Type: devices.CharDevice, Major: 10, Minor: 200, Permissions: "rwm", Allow: true},               // /dev/net/tun
	)
	return rules
}

const (
	msNoSuid = unix.MS_NOSUID
	msNoExec = unix.MS_NOEXEC
	msNoDev  = unix.MS_NODEV
)

// defaultMounts are Docker's default mounts.
func defaultMounts(privileged bool) []*configs.Mount {
	sysFlags := msNoSuid | msNoExec | msNoDev
	cgFlags := msNoSuid | msNoExec | msNoDev | unix.MS_RELATIME
	if !privileged {
		sysFlags |= unix.MS_RDONLY
		cgFlags |= unix.MS_RDONLY
	}
	return []*configs.Mount{
		{Source: "proc", Destination: "/proc", Device: "proc", Flags: msNoSuid | msNoExec | msNoDev},
		{Source: "tmpfs", Destination: "/dev", Device: "tmpfs", Flags: msNoSuid | unix.MS_STRICTATIME, Data: "mode=755,size=65536k"},
		{Source: "devpts", Destination: "/dev/pts", Device: "devpts", Flags: msNoSuid | msNoExec, Data: "newinstance,ptmxmode=0666,mode=0620,gid=5"},
		{Source: "sysfs", Destination: "/sys", Device: "sysfs", Flags: sysFlags},
		{Source: "cgroup", Destination: "/sys/fs/cgroup", Device: "cgroup", Flags: cgFlags},
		{Source: "mqueue", Destination: "/dev/mqueue", Device: "mqueue", Flags: msNoSuid | msNoExec | msNoDev},
		{Source: "shm", Destination: "/dev/shm", Device: "tmpfs", Flags: msNoSuid | msNoExec | msNoDev, Data: "mode=1777,size=67108864"},
	}
}

var mountFlags = map[string]struct {
	clear bool
	flag  int
}{
	"ro": {false, unix.MS_RDONLY}, "rw": {true, unix.MS_RDONLY},
	"nosuid": {false, unix.MS_NOSUID}, "suid": {true, unix.MS_NOSUID},
	"nodev": {false, unix.MS_NODEV}, "dev": {true, unix.MS_NODEV},
	"noexec": {false, unix.MS_NOEXEC}, "exec": {true, unix.MS_NOEXEC},
	"noatime": {false, unix.MS_NOATIME}, "atime": {true, unix.MS_NOATIME},
	"nodiratime": {false, unix.MS_NODIRATIME}, "diratime": {true, unix.MS_NODIRATIME},
	"relatime": {false, unix.MS_RELATIME}, "norelatime": {true, unix.MS_RELATIME},
	"strictatime": {false, unix.MS_STRICTATIME}, "nostrictatime": {true, unix.MS_STRICTATIME},
	"sync": {false, unix.MS_SYNCHRONOUS}, "async": {true, unix.MS_SYNCHRONOUS},
	"dirsync": {false, unix.MS_DIRSYNC},
	"mand":    {false, unix.MS_MANDLOCK}, "nomand": {true, unix.MS_MANDLOCK},
}

var propagationFlags = map[string]int{
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
	"unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// userMount turns a Spec mount into libcontainer's form. Binds are recursive
// and rprivate unless told otherwise; tmpfs gets Docker's noexec,nosuid,nodev.
func userMount(m Mount) (*configs.Mount, error) {
	if !filepath.IsAbs(m.Destination) {
		return nil, fmt.Errorf("invalid mount config: mount path must be absolute: %q", m.Destination)
	}
	cm := &configs.Mount{Source: m.Source, Destination: filepath.Clean(m.Destination)}
	var data []string
	prop := unix.MS_PRIVATE | unix.MS_REC
	switch m.Type {
	case "", "bind":
		if !filepath.IsAbs(m.Source) {
			return nil, fmt.Errorf("invalid mount config: bind source path must be absolute: %q", m.Source)
		}
		if _, err := os.Stat(m.Source); err != nil {
			return nil, fmt.Errorf("invalid mount config for type \"bind\": bind source path does not exist: %s", m.Source)
		}
		cm.Device = "bind"
		cm.Flags = unix.MS_BIND | unix.MS_REC
	case "tmpfs":
		cm.Device = "tmpfs"
		cm.Source = "tmpfs"
		cm.Flags = msNoSuid | msNoDev | msNoExec
	default:
		return nil, fmt.Errorf("invalid mount config: mount type %q is not supported", m.Type)
	}
	if m.ReadOnly {
		cm.Flags |= unix.MS_RDONLY
	}
	for _, o := range m.Options {
		switch {
		case o == "bind" && cm.Device == "bind":
			cm.Flags &^= unix.MS_REC
		case o == "rbind" && cm.Device == "bind":
			cm.Flags |= unix.MS_REC
		case o == "z" || o == "Z" || o == "nocopy" || o == "copy" || o == "":
			// SELinux relabel and volume copy-up are not ours
		default:
			if f, ok := mountFlags[o]; ok {
				if f.clear {
					cm.Flags &^= f.flag
				} else {
					cm.Flags |= f.flag
				}
			} else if p, ok := propagationFlags[o]; ok {
				prop = p
			} else if cm.Device == "tmpfs" {
				data = append(data, o) // size=, mode=, uid=, …
			} else {
				return nil, fmt.Errorf("invalid mount config: unknown option %q for %s", o, m.Destination)
			}
		}
	}
	if m.ReadOnly {
		cm.Flags |= unix.MS_RDONLY
	}
	cm.Data = strings.Join(data, ",")
	if cm.Device == "bind" {
		cm.PropagationFlags = []int{prop}
	}
	return cm, nil
}

// resolvedUser is a user spec resolved in a rootfs.
type resolvedUser struct {
	UID, GID int
	Groups   []int
	Home     string
}

// resolveUser resolves "", "name", "uid", "uid:gid", "name:group" (and
// "name:gid", "uid:group") against the rootfs' /etc/passwd and /etc/group,
// like Docker. Supplementary groups are the primary group and the user's groups in /etc/group.
func resolveUser(rootfs, spec string) (*resolvedUser, error) {
	passwd, err := securejoin.SecureJoin(rootfs, "/etc/passwd")
	if err != nil {
		return nil, err
	}
	group, err := securejoin.SecureJoin(rootfs, "/etc/group")
	if err != nil {
		return nil, err
	}
	defaults := &user.ExecUser{Uid: 0, Gid: 0, Home: "/"}
	if spec == "" {
		spec = "0"
	}
	eu, err := user.GetExecUserPath(spec, defaults, passwd, group)
	if err != nil {
		return nil, err // "unable to find user nope: no matching entries in passwd file", as Docker says
	}
	home := eu.Home
	if home == "" {
		home = "/"
	}
	// Like Docker since CVE-2022-36109: the primary group is a supplementary group too.
	groups := []int{eu.Gid}
	for _, g := range eu.Sgids {
		if g != eu.Gid {
			groups = append(groups, g)
		}
	}
	return &resolvedUser{UID: eu.Uid, GID: eu.Gid, Groups: groups, Home: home}, nil
}

// envWithDefaults builds a process environment like Docker: PATH (if
// missing), HOSTNAME, TERM=xterm for a tty, then env (overriding), then HOME
// from the user's passwd entry when env has none.
func envWithDefaults(env []string, hostname string, tty bool, home string) []string {
	out := make([]string, 0, len(env)+4)
	out = append(out, "PATH="+DefaultPath)
	if hostname != "" {
		out = append(out, "HOSTNAME="+hostname)
	}
	if tty {
		out = append(out, "TERM=xterm")
	}
	out = mergeEnv(out, env)
	if !hasEnv(out, "HOME") {
		out = append(out, "HOME="+home)
	}
	return out
}

// mergeEnv returns base with each of over replacing the entry of the same name or appended.
func mergeEnv(base, over []string) []string {
	idx := map[string]int{}
	for i, kv := range base {
		idx[envKey(kv)] = i
	}
	for _, kv := range over {
		k := envKey(kv)
		if !strings.Contains(kv, "=") {
			continue // a bare name (docker -e FOO with FOO unset) sets nothing
		}
		if i, ok := idx[k]; ok {
			base[i] = kv
		} else {
			idx[k] = len(base)
			base = append(base, kv)
		}
	}
	return base
}

func envKey(kv string) string {
	if i := strings.IndexByte(kv, '='); i >= 0 {
		return kv[:i]
	}
	return kv
}

func hasEnv(env []string, k string) bool {
	for _, kv := range env {
		if envKey(kv) == k {
			return true
		}
	}
	return false
}

func swapAccounting() bool {
	if cgroups.IsCgroup2UnifiedMode() {
		return fileExistsUnder("/sys/fs/cgroup", "memory.swap.max") // the root cgroup has none
	}
	_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
	return err == nil
}

// fileExistsUnder reports whether some direct child cgroup of dir has name.
func fileExistsUnder(dir, name string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if e.IsDir() {
			if _, err := os.Stat(filepath.Join(dir, e.Name(), name)); err == nil {
				return true
			}
		}
	}
	return false
}

// buildConfig makes the libcontainer configuration and the main process of a Spec.
func buildConfig(spec *Spec, cgroupParent string) (*configs.Config, *process, error) {
	if len(spec.Args) == 0 {
		return nil, nil, errors.New("no command specified")
	}
	st, err := os.Stat(spec.Rootfs)
	if err != nil || !st.IsDir() {
		return nil, nil, fmt.Errorf("rootfs %q is not a directory", spec.Rootfs)
	}
	hostname := spec.Hostname
	if hostname == "" {
		hostname = spec.ID
		if len(hostname) > 12 {
			hostname = hostname[:12]
		}
	}
	u, err := resolveUser(spec.Rootfs, spec.User)
	if err != nil {
		return nil, nil, err
	}
	caps, err := capabilities(spec.CapAdd, spec.CapDrop, spec.Privileged)
	if err != nil {
		return nil, nil, err
	}

	rl, err := rlimits(spec.Ulimits)
	if err != nil {
		return nil, nil, err
	}
	for k := range spec.Sysctls {
		if err := ValidateSysctl(k, false, spec.NetNS == "host"); err != nil {
			return nil, nil, err
		}
	}

	cgroupNS := cgroups.IsCgroup2UnifiedMode() // Docker's default: private on v2, host on v1
	cfg := &configs.Config{
		Rootfs:          spec.Rootfs,
		Readonlyfs:      spec.ReadonlyRootfs,
		Hostname:        hostname,
		NoNewPrivileges: defaultNoNewPrivileges && !spec.Privileged,
		Capabilities:    capsFor(caps, u.UID),
		Rlimits:         rl,
		Version:         specs.Version,
		Namespaces: configs.Namespaces{
			{Type: configs.NEWNS},
			{Type: configs.NEWUTS},
			{Type: configs.NEWIPC},
			{Type: configs.NEWPID},
		},
	}
	if ownOOMScoreAdj() < 0 {
		zero := 0 // a daemon protected from the OOM killer must not pass that on
		cfg.OomScoreAdj = &zero
	}
	if cgroupNS {
		cfg.Namespaces = append(cfg.Namespaces, configs.Namespace{Type: configs.NEWCGROUP})
	}
	switch spec.NetNS {
	case "host":
	case "":
		cfg.Namespaces = append(cfg.Namespaces, configs.Namespace{Type: configs.NEWNET})
		cfg.Networks = []*configs.Network{{Type: "loopback"}}
	default:
		if _, err := os.Stat(spec.NetNS); err != nil {
			return nil, nil, fmt.Errorf("network namespace %s: %w", spec.NetNS, err)
		}
		cfg.Namespaces = append(cfg.Namespaces, configs.Namespace{Type: configs.NEWNET, Path: spec.NetNS})
	}

	// mounts: Docker's defaults, a user mount on the same destination replacing the default
	user := make([]*configs.Mount, 0, len(spec.Mounts))
	taken := map[string]bool{}
	for _, m := range spec.Mounts {
		cm, err := userMount(m)
		if err != nil {
			return nil, nil, err
		}
		if cm.Destination == "/" {
			return nil, nil, errors.New("invalid mount config: mount destination cannot be /")
		}
		taken[cm.Destination] = true
		user = append(user, cm)
	}
	for _, m := range defaultMounts(spec.Privileged) {
		if taken[m.Destination] {
			continue
		}
		if m.Destination == "/dev/shm" && spec.ShmSize > 0 {
			m.Data = "mode=1777,size=" + strconv.FormatInt(spec.ShmSize, 10)
		}
		cfg.Mounts = append(cfg.Mounts, m)
	}
	if len(spec.Sysctls) > 0 {
		cfg.Sysctl = maps.Clone(spec.Sysctls)
	}
	sort.SliceStable(user, func(i, j int) bool {
		return strings.Count(user[i].Destination, "/") < strings.Count(user[j].Destination, "/")
	})
	cfg.Mounts = append(cfg.Mounts, user...)
	// The rootfs is rslave (libcontainer's default, as with Docker) unless a
	// mount asks for shared propagation, which needs a shared rootfs.
	for _, m := range user {
		for _, p := range m.PropagationFlags {
			if p&unix.MS_SHARED != 0 {
				cfg.RootPropagation = unix.MS_SHARED | unix.MS_REC
			}
		}
	}

	res := &cgroups.Resources{}
	if spec.Privileged {
		res.Devices = []*devices.Rule{{Type: devices.WildcardDevice, Major: devices.Wildcard, Minor: devices.Wildcard, Permissions: "rwm", Allow: true}}
		hostDevs, err := hostDevices()
		if err != nil {
			return nil, nil, fmt.Errorf("listing host devices: %w", err)
		}
		for _, d := range hostDevs {
			if d.Path == "/dev/console" || strings.HasPrefix(d.Path, "/dev/pts/") || d.Path == "/dev/ptmx" {
				continue // a container has its own
			}
			cfg.Devices = append(cfg.Devices, d)
		}
	} else {
		res.Devices = defaultDeviceRules()
		cfg.Devices = defaultDevices()
		cfg.MaskPaths = maskedPaths
		cfg.ReadonlyPaths = readonlyPaths
	}
	for _, d := range spec.Devices {
		dev, err := userDevice(d)
		if err != nil {
			return nil, nil, err
		}
		cfg.Devices = append(cfg.Devices, dev)
		r := dev.Rule
		res.Devices = append(res.Devices, &r)
	}
	if spec.Memory > 0 {
		res.Memory = spec.Memory
		if swapAccounting() {
			res.MemorySwap = 2 * spec.Memory // Docker: as much swap as memory unless told otherwise
		}
	}
	if spec.NanoCPUs > 0 {
		res.CpuPeriod = 100000
		res.CpuQuota = spec.NanoCPUs * 100000 / 1e9
		if res.CpuQuota < 1000 {
			res.CpuQuota = 1000
		}
	}
	if spec.CPUShares > 0 {
		if cgroups.IsCgroup2UnifiedMode() {
			res.CpuWeight = cgroups.ConvertCPUSharesToCgroupV2Value(uint64(spec.CPUShares))
		} else {
			res.CpuShares = uint64(spec.CPUShares)
		}
	}
	if spec.PidsLimit > 0 {
		n := spec.PidsLimit
		res.PidsLimit = &n
	}
	cfg.Cgroups = &cgroups.Cgroup{Path: cgroupParent + "/" + spec.ID, Resources: res}

	cwd := spec.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if !filepath.IsAbs(cwd) {
		return nil, nil, fmt.Errorf("the working directory %q is invalid, it needs to be an absolute path", spec.Cwd)
	}
	p := &process{
		Args:             spec.Args,
		Env:              envWithDefaults(append([]string(nil), spec.Env...), hostname, spec.Tty, u.Home),
		Cwd:              cwd,
		UID:              u.UID,
		GID:              u.GID,
		AdditionalGroups: u.Groups,
	}
	return cfg, p, nil
}

// hostDevices lists the device nodes under the host's /dev (for privileged containers).
func hostDevices() ([]*devices.Device, error) {
	var out []*devices.Device
	err := filepath.WalkDir("/dev", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if path == "/dev" {
				return err
			}
			return nil
		}
		if d.IsDir() {
			switch path {
			case "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/fd", "/dev/.lxc", "/dev/.udev", "/dev/hugepages":
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type()&(os.ModeDevice|os.ModeCharDevice) == 0 {
			return nil
		}
		if dev, err := deviceAt(path, "rwm"); err == nil {
			out = append(out, dev)
		}
		return nil
	})
	return out, err
}

var errNotADevice = errors.New("not a device node")

// deviceAt describes the device node at path (following symlinks, as docker --device does).
func deviceAt(path, perms string) (*devices.Device, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, err
	}
	var typ devices.Type
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = devices.CharDevice
	case unix.S_IFBLK:
		typ = devices.BlockDevice
	default:
		return nil, errNotADevice
	}
	return &devices.Device{
		Path: path, FileMode: os.FileMode(st.Mode & 0o777), Uid: st.Uid, Gid: st.Gid,
		Rule: devices.Rule{
			Type: typ, Major: int64(unix.Major(uint64(st.Rdev))), Minor: int64(unix.Minor(uint64(st.Rdev))),
			Permissions: devices.Permissions(perms), Allow: true,
		},
	}, nil
}
