package e2e

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"
)

// HEALTHCHECK, ONBUILD and SHELL are kept in the image config as Docker keeps them; ONBUILD triggers run
// in a child build (and are then cleared); SHELL drives later shell forms; a container of the image
// carries the healthcheck; docker save keeps the fields.
func TestBuildHealthcheckOnbuildShell(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		base, child := uniqueName(t, c), uniqueName(t, c)+"-child"
		rmi(t, c, child, base)
		dir := writeContext(t, map[string]string{"Dockerfile": `FROM busybox:latest
HEALTHCHECK --interval=30s --timeout=5s --retries=4 CMD ["true"]
SHELL ["/bin/sh", "-xc"]
RUN echo traced-in-base > /base.txt
ONBUILD RUN echo "trigger ran" > /trigger.txt
ONBUILD ENV FROM_TRIGGER=yes
CMD echo shell-form
`})
		out := noColor(c.ok(t, "build", "--no-cache", "-t", base, dir))
		if !strings.Contains(out, "+ echo traced-in-base") {
			t.Errorf("RUN did not use SHELL [/bin/sh -xc]:\n%s", out)
		}
		var cfg struct {
			Healthcheck *struct {
				Test              []string
				Interval, Timeout time.Duration
				Retries           int
			}
			OnBuild []string
			Shell   []string
			Cmd     []string
		}
		if err := json.Unmarshal([]byte(c.ok(t, "image", "inspect", "-f", "{{json .Config}}", base)), &cfg); err != nil {
			t.Fatal(err)
		}
		if h := cfg.Healthcheck; h == nil || strings.Join(h.Test, " ") != "CMD true" || h.Interval != 30*time.Second ||
			h.Timeout != 5*time.Second || h.Retries != 4 {
			t.Errorf("healthcheck: %+v", cfg.Healthcheck)
		}
		if strings.Join(cfg.OnBuild, "|") != `RUN echo "trigger ran" > /trigger.txt|ENV FROM_TRIGGER=yes` {
			t.Errorf("onbuild: %q", cfg.OnBuild)
		}
		if strings.Join(cfg.Shell, " ") != "/bin/sh -xc" || strings.Join(cfg.Cmd, " ") != "/bin/sh -xc echo shell-form" {
			t.Errorf("shell %q cmd %q", cfg.Shell, cfg.Cmd)
		}
		hist := c.ok(t, "history", "--no-trunc", "--format", "{{.CreatedBy}}", base)
		if !strings.Contains(hist, `HEALTHCHECK &{["CMD" "true"] "30s" "5s" "0s" '\x04'}`) || !strings.Contains(hist, "SHELL [/bin/sh -xc]") {
			t.Errorf("history:\n%s", hist)
		}

		// A container of the image carries the healthcheck.
		id := strings.TrimSpace(c.ok(t, "create", base))
		defer c.run(t, "", "rm", "-f", id)
		if hc := c.ok(t, "inspect", "-f", "{{json .Config.Healthcheck}}", id); !strings.Contains(hc, `"Test":["CMD","true"]`) ||
			!strings.Contains(hc, `"Interval":30000000000`) {
			t.Errorf("container healthcheck: %s", hc)
		}

		// docker save keeps the fields in the config blob.
		if c.name == "docker" {
			saved := saveConfigs(t, c, base)
			if !strings.Contains(saved, `"OnBuild":["RUN echo \"trigger ran\" \u003e /trigger.txt","ENV FROM_TRIGGER=yes"]`) &&
				!strings.Contains(saved, `"OnBuild":["RUN echo \"trigger ran\" > /trigger.txt","ENV FROM_TRIGGER=yes"]`) {
				t.Errorf("saved config lacks OnBuild: %s", saved)
			}
			if !strings.Contains(saved, `"Healthcheck":{"Test":["CMD","true"]`) || !strings.Contains(saved, `"Shell":["/bin/sh","-xc"]`) {
				t.Errorf("saved config lacks Healthcheck/Shell: %s", saved)
			}
		}

		// The child runs the triggers right after FROM; its config has none left, the rest is inherited.
		cdir := writeContext(t, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo child-step\n"})
		out = noColor(c.ok(t, "build", "-t", child, cdir))
		if !strings.Contains(out, "# Executing 2 build triggers") || !strings.Contains(out, `+ echo 'trigger ran'`) ||
			!strings.Contains(out, "+ echo child-step") {
			t.Errorf("child build:\n%s", out)
		}
		if got := c.ok(t, "run", "--rm", child, "sh", "-c", "cat /trigger.txt; echo $FROM_TRIGGER"); got != "trigger ran\nyes\n" {
			t.Errorf("trigger effects: %q", got)
		}
		ccfg := c.ok(t, "image", "inspect", "-f", "{{json .Config.OnBuild}}|{{json .Config.Shell}}|{{.Config.Healthcheck.Test}}", child)
		if strings.TrimSpace(ccfg) != `null|["/bin/sh","-xc"]|[CMD true]` {
			t.Errorf("child config: %s", ccfg)
		}
		// A rebuild of the child is all cache hits, triggers included.
		out = c.ok(t, "build", "-t", child, cdir)
		if strings.Contains(out, "Running in") || strings.Count(out, "Using cache") != 3 {
			t.Errorf("child rebuild:\n%s", out)
		}
	})
}

// noColor drops the color codes the build stream puts around a RUN's stderr.
func noColor(s string) string {
	return strings.NewReplacer("\x1b[91m", "", "\x1b[0m", "").Replace(s)
}

// saveConfigs returns the JSON config blobs of a `docker save` archive, concatenated.
func saveConfigs(t *testing.T, c cli, ref string) string {
	t.Helper()
	cmd := exec.Command(c.path, "-H", c.host, "save", ref)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var configs strings.Builder
	tr := tar.NewReader(stdout)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if h.Size < 1<<20 && h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			if json.Valid(b) && strings.Contains(string(b), `"rootfs"`) {
				configs.Write(b)
			}
		}
	}
	io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("save: %v", err)
	}
	return configs.String()
}

// Here-documents, as BuildKit reads them, with and without a syntax directive.
func TestBuildHeredocs(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		for _, header := range []string{"", "# syntax=docker/dockerfile:1\n"} {
			tag := uniqueName(t, c)
			rmi(t, c, tag)
			dir := writeContext(t, map[string]string{"Dockerfile": header + `FROM busybox:latest
ARG NAME=world
ENV WHO=env-value
RUN <<EOF
echo "simple $WHO" > /simple.txt
echo second-line >> /simple.txt
EOF
RUN <<EOT
#!/bin/sh
echo "script via $0" > /script.txt
EOT
RUN cat <<A > /a.txt && cat <<B > /b.txt
from a
A
from b
B
RUN <<-EOF
	echo chomped > /chomp.txt
	EOF
COPY <<EOF /etc/greeting.txt
hello ${NAME} from $WHO
EOF
COPY <<"EOF" /etc/literal.txt
not expanded: $WHO
EOF
COPY <<one <<two /multi/
first
one
second
two
`})
			out := c.ok(t, "build", "-t", tag, dir)
			got := c.ok(t, "run", "--rm", tag, "sh", "-c",
				"cat /simple.txt /script.txt /a.txt /b.txt /chomp.txt /etc/greeting.txt /etc/literal.txt /multi/one /multi/two; stat -c '%a %u' /etc/greeting.txt /multi/one")
			want := "simple env-value\nsecond-line\nscript via /dev/pipes/EOT\nfrom a\nfrom b\nchomped\nhello world from env-value\n" +
				"not expanded: $WHO\nfirst\nsecond\n644 0\n644 0\n"
			if got != want {
				t.Errorf("header %q: got\n%s\nwant\n%s\nbuild output:\n%s", header, got, want, out)
			}
			// Cached on a rebuild.
			out = c.ok(t, "build", "-t", tag, dir)
			if strings.Contains(out, "Running in") {
				t.Errorf("rebuild ran a step:\n%s", out)
			}
		}
	})
}

// ADD <url> from a loopback server: the file (mode 0600, Last-Modified time), cached while the content is
// the same; unreachable addresses and HTTP errors fail with dockerd's messages.
func TestBuildAddURL(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		content := "downloaded " + uniqueName(t, c) + "\n"
		mod := time.Date(2023, 5, 6, 7, 8, 9, 0, time.UTC)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/files/data.txt" {
				http.Error(w, "no such file", http.StatusNotFound)
				return
			}
			w.Header().Set("Last-Modified", mod.Format(http.TimeFormat))
			io.WriteString(w, content)
		}))
		defer srv.Close()
		tag := uniqueName(t, c)
		rmi(t, c, tag)
		dir := writeContext(t, map[string]string{"Dockerfile": fmt.Sprintf(`FROM busybox:latest
ADD %[1]s/files/data.txt /dl/
ADD %[1]s/files/data.txt /renamed.txt
`, srv.URL)})
		c.ok(t, "build", "-t", tag, dir)
		got := c.ok(t, "run", "--rm", tag, "sh", "-c", "cat /dl/data.txt /renamed.txt; stat -c '%a %u %Y' /dl/data.txt")
		want := content + content + fmt.Sprintf("600 0 %d\n", mod.Unix())
		if got != want {
			t.Errorf("got %q want %q", got, want)
		}
		if out := c.ok(t, "build", "-t", tag, dir); strings.Count(out, "Using cache") != 2 {
			t.Errorf("rebuild with the same content is not cached:\n%s", out)
		}

		for _, tc := range []struct{ url, want string }{
			{"http://127.0.0.1:1/x.txt", `ADD failed: Get "http://127.0.0.1:1/x.txt": dial tcp 127.0.0.1:1: connect: connection refused`},
			{srv.URL + "/missing.txt", "ADD failed: failed to GET " + srv.URL + "/missing.txt with status 404 Not Found: no such file"},
		} {
			bad := writeContext(t, map[string]string{"Dockerfile": "FROM busybox:latest\nADD " + tc.url + " /x.txt\n"})
			r := c.run(t, "", "build", "-t", tag+"-bad", bad)
			if r.Code != 1 || !strings.Contains(r.Stderr+r.Stdout, tc.want) {
				t.Errorf("ADD %s: want exit 1 and %q: %s", tc.url, tc.want, r)
			}
			if rr := c.run(t, "", "image", "inspect", tag+"-bad"); rr.Code == 0 {
				t.Errorf("a failed build tagged %s-bad", tag)
			}
		}
	})
}

// --network none/host/bridge for RUN, and --pull: a FROM image is pulled (a failed pull fails the build, even
// when the image is present locally, as dockerd's legacy builder does). No registry is reachable here: the
// registry is 127.0.0.1:1.
func TestBuildNetworkAndPull(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		tag := uniqueName(t, c)
		rmi(t, c, tag)
		dir := writeContext(t, map[string]string{"Dockerfile": "FROM busybox:latest\nRUN ls /sys/class/net | sort | tr '\\n' ' ' > /nets\nCMD cat /nets\n"})
		nets := func(mode string) string {
			c.ok(t, "build", "--no-cache", "--network", mode, "-t", tag, dir)
			return strings.TrimSpace(c.ok(t, "run", "--rm", "--network", "none", tag))
		}
		if got := nets("none"); got != "lo" {
			t.Errorf("--network none: interfaces %q", got)
		}
		hostIfs, _ := net.Interfaces()
		var hostNames []string
		for _, i := range hostIfs {
			hostNames = append(hostNames, i.Name)
		}
		sort.Strings(hostNames)
		if got := nets("host"); got != strings.Join(hostNames, " ") && len(strings.Fields(got)) < 2 {
			t.Errorf("--network host: interfaces %q, host has %q", got, hostNames)
		}
		if got := nets("bridge"); got != "eth0 lo" {
			t.Errorf("--network bridge: interfaces %q", got)
		}

		local := "127.0.0.1:1/" + tag + ":latest"
		c.ok(t, "tag", "busybox:latest", local)
		defer c.run(t, "", "rmi", local)
		fdir := writeContext(t, map[string]string{"Dockerfile": "FROM " + local + "\nRUN true\n"})
		c.ok(t, "build", "-t", tag, fdir) // present locally: no pull
		r := c.run(t, "", "build", "--pull", "-t", tag+"-pulled", fdir)
		want := `Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused`
		if r.Code != 1 || !strings.Contains(r.Stderr+r.Stdout, want) {
			t.Errorf("--pull of an unreachable registry: want %q: %s", want, r)
		}
		missing := writeContext(t, map[string]string{"Dockerfile": "FROM 127.0.0.1:1/absent-" + tag + "\n"})
		if r := c.run(t, "", "build", missing); r.Code != 1 || !strings.Contains(r.Stderr+r.Stdout, want) {
			t.Errorf("FROM an absent image: want %q: %s", want, r)
		}
	})
}
