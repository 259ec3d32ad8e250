package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

func bindingsText(m network.PortMap) []string {
	var out []string
	for p, bs := range m {
		for _, b := range bs {
			out = append(out, p.String()+"="+hostIPString(b)+"|"+b.HostPort)
		}
	}
	sort.Strings(out)
	return out
}

func TestParsePublish(t *testing.T) {
	cases := []struct {
		spec    []string
		want    []string
		exposed int
	}{
		{[]string{"8080:80"}, []string{"80/tcp=|8080"}, 1},
		{[]string{"80"}, []string{"80/tcp=|"}, 1},
		{[]string{"127.0.0.1:8080:80/udp"}, []string{"80/udp=127.0.0.1|8080"}, 1},
		{[]string{"127.0.0.1::80"}, []string{"80/tcp=127.0.0.1|"}, 1},
		{[]string{"[::1]:8080:80"}, []string{"80/tcp=::1|8080"}, 1},
		{[]string{"8000-8001:80-81"}, []string{"80/tcp=|8000", "81/tcp=|8001"}, 2},
		{[]string{"8000-8010:80"}, []string{"80/tcp=|8000-8010"}, 1},
		{[]string{"80/SCTP"}, []string{"80/sctp=|"}, 1},
		{[]string{"8080:80", "8081:80"}, []string{"80/tcp=|8080", "80/tcp=|8081"}, 1},
		{[]string{"target=80,published=8080,protocol=udp"}, []string{"80/udp=|8080"}, 1},
		{[]string{"target=80"}, []string{"80/tcp=|"}, 1},
	}
	for _, tc := range cases {
		exposed, bindings, err := parsePublish(tc.spec)
		if err != nil {
			t.Errorf("%v: %v", tc.spec, err)
			continue
		}
		if got := bindingsText(bindings); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v: bindings %v, want %v", tc.spec, got, tc.want)
		}
		if len(exposed) != tc.exposed {
			t.Errorf("%v: %d exposed, want %d", tc.spec, len(exposed), tc.exposed)
		}
	}
	errCases := map[string]string{
		"8000-8001:80-82":     "invalid ranges specified for container and host Ports: 80-82 and 8000-8001",
		"8080:http":           "invalid containerPort: http",
		"x:80":                "invalid hostPort: x",
		"80/foo":              "invalid proto: foo",
		"1.2.3.400:80:80":     "invalid IP address: 1.2.3.400",
		"published=80":        "missing mandatory field 'target'",
		"target=80,mode=nope": "invalid publish mode value (nope): must be either 'ingress' or 'host'",
	}
	for spec, want := range errCases {
		_, _, err := parsePublish([]string{spec})
		if err == nil || err.Error() != want {
			t.Errorf("%s: error %v, want %q", spec, err, want)
		}
	}
}

func TestExpose(t *testing.T) {
	ps := network.PortSet{}
	if err := addExpose(ps, "7000-7002/udp"); err != nil {
		t.Fatal(err)
	}
	if err := addExpose(ps, "9000"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for p := range ps {
		got = append(got, p.String())
	}
	sort.Strings(got)
	want := []string{"7000/udp", "7001/udp", "7002/udp", "9000/tcp"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	if err := addExpose(ps, "1:2"); err == nil || err.Error() != "invalid port format for --expose: 1:2" {
		t.Fatalf("err %v", err)
	}
}

func TestEnvAndEnvFile(t *testing.T) {
	t.Setenv("WHARF_TEST_FROM_ENV", "fromenv")
	dir := t.TempDir()
	f := filepath.Join(dir, "env")
	content := "\xEF\xBB\xBF# comment\n\n   A=1\nB = spaced value\nWHARF_TEST_FROM_ENV\nWHARF_TEST_UNSET_VAR\nC=with=equals  \r\n"
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := readKVEnvStrings([]string{f}, nil)
	if err == nil || !strings.Contains(err.Error(), "variable 'B ' contains whitespaces") {
		t.Fatalf("whitespace key: %v", err)
	}
	content = strings.Replace(content, "B = spaced value\n", "B= spaced value\n", 1)
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readKVEnvStrings([]string{f}, []string{"A=2", "WHARF_TEST_FROM_ENV", "NOPE_NOT_SET_X"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A=1", "B= spaced value", "WHARF_TEST_FROM_ENV=fromenv", "C=with=equals  ",
		"A=2", "WHARF_TEST_FROM_ENV=fromenv", "NOPE_NOT_SET_X"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if _, err := readKVEnvStrings(nil, []string{"=x"}); err == nil || err.Error() != "invalid environment variable: =x" {
		t.Fatalf("empty key: %v", err)
	}
	if _, err := readKVEnvStrings([]string{filepath.Join(dir, "missing")}, nil); err == nil {
		t.Fatal("missing env file accepted")
	}
	bad := filepath.Join(dir, "bad")
	_ = os.WriteFile(bad, []byte("=novar\n"), 0o600)
	if _, err := readKVEnvStrings([]string{bad}, nil); err == nil || !strings.Contains(err.Error(), "no variable name on line '=novar'") {
		t.Fatalf("no name: %v", err)
	}
}

func TestParseVolumeSpec(t *testing.T) {
	wd, _ := os.Getwd()
	cases := []struct{ in, bind, anon string }{
		{"/data", "", "/data"},
		{"vol:/data", "vol:/data", ""},
		{"/host:/data:ro", "/host:/data:ro", ""},
		{"./rel:/data", filepath.Join(wd, "rel") + ":/data", ""},
		{"/host:/data:rw,z", "/host:/data:rw,z", ""},
	}
	for _, tc := range cases {
		bind, anon, err := parseVolumeSpec(tc.in)
		if err != nil || bind != tc.bind || anon != tc.anon {
			t.Errorf("%s: got (%q,%q,%v) want (%q,%q)", tc.in, bind, anon, err, tc.bind, tc.anon)
		}
	}
	errs := map[string]string{
		"/a::/b":     "invalid spec: /a::/b: empty section between colons",
		"/a:/b:c:/d": "invalid spec: /a:/b:c:/d: too many colons",
		"/a:/b:bad":  "invalid mode: bad",
	}
	for in, want := range errs {
		if _, _, err := parseVolumeSpec(in); err == nil || err.Error() != want {
			t.Errorf("%s: %v want %q", in, err, want)
		}
	}
}

func TestParseMountSpec(t *testing.T) {
	m, err := parseMountSpec("type=bind,source=/src,target=/dst,readonly")
	if err != nil || m.Type != "bind" || m.Source != "/src" || m.Target != "/dst" || !m.ReadOnly {
		t.Fatalf("%+v %v", m, err)
	}
	m, err = parseMountSpec("type=tmpfs,dst=/t,tmpfs-size=64m")
	if err != nil || m.TmpfsOptions == nil || m.TmpfsOptions.SizeBytes != 64<<20 {
		t.Fatalf("%+v %v", m, err)
	}
	if _, err := parseMountSpec("type=bind,source=/x"); err == nil {
		t.Fatal("mount without target accepted")
	}
	m, err = parseMountSpec("source=v,target=/d,volume-nocopy")
	if err != nil || m.VolumeOptions == nil || !m.VolumeOptions.NoCopy {
		t.Fatalf("volume-nocopy: %+v %v", m, err)
	}
	if m, err = parseMountSpec("source=v,target=/d,volume-nocopy=false"); err != nil || m.VolumeOptions.NoCopy {
		t.Fatalf("volume-nocopy=false: %+v %v", m, err)
	}
}

func TestParseRestartPolicy(t *testing.T) {
	cases := []struct {
		in    string
		name  string
		count int
		err   string
	}{
		{"", "", 0, ""},
		{"no", "no", 0, ""},
		{"always", "always", 0, ""},
		{"unless-stopped", "unless-stopped", 0, ""},
		{"on-failure", "on-failure", 0, ""},
		{"on-failure:3", "on-failure", 3, ""},
		{":3", "", 0, "invalid restart policy format: no policy provided before colon"},
		{"on-failure:x", "", 0, "invalid restart policy format: maximum retry count must be an integer"},
	}
	for _, tc := range cases {
		p, err := parseRestartPolicy(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: err %v want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || string(p.Name) != tc.name || p.MaximumRetryCount != tc.count {
			t.Errorf("%q: got %+v %v", tc.in, p, err)
		}
	}
}

func TestFlagValues(t *testing.T) {
	var m memBytes
	if err := m.Set("512m"); err != nil || m.Value() != 512<<20 {
		t.Fatalf("memory: %d %v", m.Value(), err)
	}
	if err := m.Set("lots"); err == nil {
		t.Fatal("bad memory accepted")
	}
	var s memSwapBytes
	if err := s.Set("-1"); err != nil || s.Value() != -1 {
		t.Fatalf("swap: %d %v", s.Value(), err)
	}
	var c nanoCPUs
	if err := c.Set("1.5"); err != nil || c.Value() != 1500000000 {
		t.Fatalf("cpus: %d %v", c.Value(), err)
	}
	if err := c.Set("0.0000000001"); err == nil || err.Error() != "value is too precise" {
		t.Fatalf("precise: %v", err)
	}
	if err := c.Set("abc"); err == nil || err.Error() != "failed to parse abc as a rational number" {
		t.Fatalf("abc: %v", err)
	}
}

func TestEffectiveCaps(t *testing.T) {
	add, drop := effectiveCaps([]string{"net_admin", "CAP_SYS_TIME", "chown"}, []string{"all", "chown"})
	if !reflect.DeepEqual(add, []string{"CAP_CHOWN", "CAP_NET_ADMIN", "CAP_SYS_TIME"}) || !reflect.DeepEqual(drop, []string{"ALL"}) {
		t.Fatalf("add %v drop %v", add, drop)
	}
	add, drop = effectiveCaps([]string{"ALL", "net_admin"}, []string{"mknod"})
	if !reflect.DeepEqual(add, []string{"ALL"}) || !reflect.DeepEqual(drop, []string{"CAP_MKNOD"}) {
		t.Fatalf("add %v drop %v", add, drop)
	}
}

// parseRunArgs runs the real run command's flag parsing and returns the create request.
func parseRunArgs(t *testing.T, args ...string) (*runOptions, *containerConfig, error) {
	t.Helper()
	c := newCLI(strings.NewReader(""), &strings.Builder{}, &strings.Builder{})
	o := &runOptions{}
	cmd := c.runCommandFor(o)
	if err := cmd.ParseFlags(args); err != nil {
		return nil, nil, err
	}
	rest := cmd.Flags().Args()
	o.container.image, o.container.args = rest[0], rest[1:]
	o.container.noteChanged(cmd.Flags())
	cc, err := o.container.parse()
	return o, cc, err
}

func TestRunFlagsToCreateRequest(t *testing.T) {
	t.Setenv("WHARF_PASS", "through")
	o, cc, err := parseRunArgs(t, "-d", "--name", "web", "-e", "A=1", "-e", "WHARF_PASS", "-p", "127.0.0.1:8080:80",
		"-P", "--rm", "-w", "/srv", "-u", "1000:1000", "--entrypoint", "", "-v", "/h:/c:ro", "-v", "/anon",
		"--read-only", "-l", "k=v", "--hostname", "h1", "-m", "64m", "--cpus", "0.5", "--pids-limit", "10",
		"--cap-add", "net_admin", "--cap-drop", "mknod", "--privileged", "--init", "--network", "mynet",
		"--network-alias", "web1", "-it", "busybox:1.36", "sh", "-c", "echo hi")
	if err != nil {
		t.Fatal(err)
	}
	if !o.detach || o.container.name != "web" {
		t.Fatalf("run options %+v", o)
	}
	cfg, hc := cc.Config, cc.HostConfig
	if cfg.Image != "busybox:1.36" || !reflect.DeepEqual(cfg.Cmd, []string{"sh", "-c", "echo hi"}) {
		t.Errorf("image/cmd %q %q", cfg.Image, cfg.Cmd)
	}
	if !reflect.DeepEqual(cfg.Entrypoint, []string{""}) {
		t.Errorf("entrypoint reset: %q", cfg.Entrypoint)
	}
	if !reflect.DeepEqual(cfg.Env, []string{"A=1", "WHARF_PASS=through"}) {
		t.Errorf("env %q", cfg.Env)
	}
	if !cfg.Tty || !cfg.OpenStdin || !cfg.AttachStdin || !cfg.AttachStdout || !cfg.AttachStderr || !cfg.StdinOnce {
		t.Errorf("tty/stdin flags %+v", cfg)
	}
	if cfg.WorkingDir != "/srv" || cfg.User != "1000:1000" || cfg.Hostname != "h1" || cfg.Labels["k"] != "v" {
		t.Errorf("config %+v", cfg)
	}
	if _, ok := cfg.Volumes["/anon"]; !ok || len(cfg.Volumes) != 1 {
		t.Errorf("volumes %v", cfg.Volumes)
	}
	if !reflect.DeepEqual(hc.Binds, []string{"/h:/c:ro"}) || !hc.ReadonlyRootfs || !hc.AutoRemove || !hc.PublishAllPorts {
		t.Errorf("host config %+v", hc)
	}
	if hc.Memory != 64<<20 || hc.NanoCPUs != 5e8 || hc.PidsLimit == nil || *hc.PidsLimit != 10 {
		t.Errorf("resources %+v", hc.Resources)
	}
	if !reflect.DeepEqual(hc.CapAdd, []string{"CAP_NET_ADMIN"}) || !reflect.DeepEqual(hc.CapDrop, []string{"CAP_MKNOD"}) || !hc.Privileged {
		t.Errorf("caps %v %v", hc.CapAdd, hc.CapDrop)
	}
	if hc.Init == nil || !*hc.Init {
		t.Errorf("init %v", hc.Init)
	}
	if hc.NetworkMode != "mynet" || cc.NetworkingConfig.EndpointsConfig["mynet"] == nil ||
		!reflect.DeepEqual(cc.NetworkingConfig.EndpointsConfig["mynet"].Aliases, []string{"web1"}) {
		t.Errorf("network %q %+v", hc.NetworkMode, cc.NetworkingConfig.EndpointsConfig)
	}
	if got := bindingsText(hc.PortBindings); !reflect.DeepEqual(got, []string{"80/tcp=127.0.0.1|8080"}) {
		t.Errorf("ports %v", got)
	}
	if hc.RestartPolicy.Name != "no" {
		t.Errorf("restart %+v", hc.RestartPolicy)
	}
}

func TestRunDefaultsMatchDockerBody(t *testing.T) {
	_, cc, err := parseRunArgs(t, "busybox", "echo", "hi")
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(container.CreateRequest{Config: cc.Config, HostConfig: cc.HostConfig, NetworkingConfig: cc.NetworkingConfig})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	hc := m["HostConfig"].(map[string]any)
	// What docker 28 sends for `docker run busybox echo hi` (captures in shared/notes).
	checks := map[string]any{"NetworkMode": "default", "MemorySwappiness": float64(-1), "PidsLimit": float64(0),
		"AutoRemove": false, "Privileged": false}
	for k, v := range checks {
		if hc[k] != v {
			t.Errorf("HostConfig.%s = %v, want %v", k, hc[k], v)
		}
	}
	if rp := hc["RestartPolicy"].(map[string]any); rp["Name"] != "no" {
		t.Errorf("RestartPolicy %v", rp)
	}
	if dns, ok := hc["Dns"].([]any); !ok || len(dns) != 0 {
		t.Errorf("Dns %v", hc["Dns"])
	}
	eps := m["NetworkingConfig"].(map[string]any)["EndpointsConfig"].(map[string]any)
	if _, ok := eps["default"]; !ok || len(eps) != 1 {
		t.Errorf("endpoints %v", eps)
	}
	if m["AttachStdout"] != true || m["AttachStderr"] != true || m["AttachStdin"] != false || m["Tty"] != false {
		t.Errorf("attach %v %v %v", m["AttachStdin"], m["AttachStdout"], m["AttachStderr"])
	}
}

func TestRunFlagConflicts(t *testing.T) {
	cases := map[string][]string{
		"conflicting options: cannot specify both --restart and --rm":           {"--rm", "--restart", "always", "busybox"},
		"valid streams are STDIN, STDOUT and STDERR":                            {"-a", "stdfoo", "busybox"},
		"network-scoped aliases are only supported for user-defined networks":   {"--network-alias", "x", "busybox"},
		"IP address is not correctly formatted: notanip":                        {"--dns", "notanip", "busybox"},
		"invalid spec: :/x: empty section between colons":                       {"-v", ":/x", "busybox"},
		"invalid restart policy format: maximum retry count must be an integer": {"--restart", "on-failure:z", "busybox"},
	}
	for want, args := range cases {
		_, _, err := parseRunArgs(t, args...)
		if err == nil || err.Error() != want {
			t.Errorf("%v: err %v, want %q", args, err, want)
		}
	}
	// --rm with --restart=no is fine.
	if _, _, err := parseRunArgs(t, "--rm", "--restart", "no", "busybox"); err != nil {
		t.Error(err)
	}
}

func TestRunIPFlag(t *testing.T) {
	_, cc, err := parseRunArgs(t, "--network", "mynet", "--ip", "10.123.45.77", "busybox")
	if err != nil {
		t.Fatal(err)
	}
	ep := cc.NetworkingConfig.EndpointsConfig["mynet"]
	if ep == nil || ep.IPAMConfig == nil || ep.IPAMConfig.IPv4Address.String() != "10.123.45.77" {
		t.Errorf("endpoints %+v", cc.NetworkingConfig.EndpointsConfig)
	}
	for want, args := range map[string][]string{
		"user specified IP address is supported on user defined networks only": {"--ip", "10.1.2.3", "busybox"},
		"invalid IPv4 address: nope": {"--network", "mynet", "--ip", "nope", "busybox"},
	} {
		if _, _, err := parseRunArgs(t, args...); err == nil || err.Error() != want {
			t.Errorf("%v: err %v, want %q", args, err, want)
		}
	}
}
