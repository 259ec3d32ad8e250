package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// writeContext makes a build context directory from name → content.
func writeContext(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var builtRe = regexp.MustCompile(`Successfully built ([0-9a-f]{12})`)

func builtID(t *testing.T, out string) string {
	t.Helper()
	m := builtRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no 'Successfully built' in:\n%s", out)
	}
	return m[1]
}

func rmi(t *testing.T, c cli, refs ...string) {
	t.Cleanup(func() { c.run(t, "", append([]string{"rmi", "-f"}, refs...)...) })
}

func TestBuildBasic(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		tag := uniqueName(t, c)
		rmi(t, c, tag)
		dir := writeContext(t, map[string]string{
			"Dockerfile": `FROM busybox:latest
ENV GREETING=hello APPDIR=/app
WORKDIR $APPDIR
COPY greeting.txt .
COPY conf/ /etc/myapp/
LABEL org.example.name="wharf test"
EXPOSE 8080
RUN echo "built as $(id -u)" > /app/built.txt && echo to-stderr >&2
USER 65534
CMD ["sh", "-c", "cat /app/greeting.txt /app/built.txt /etc/myapp/a.conf; echo $GREETING; pwd; id -u"]
`,
			"greeting.txt":  "hi from " + tag + "\n",
			"conf/a.conf":   "a=1\n",
			"secret.txt":    "do not send\n",
			".dockerignore": "secret.txt\n",
		})
		out := c.ok(t, "build", "-t", tag, dir)
		for _, want := range []string{"Step 1/10 : FROM busybox:latest", "Step 8/10 : RUN", " ---> Running in ", "to-stderr",
			"Removing intermediate container", "Successfully tagged " + tag + ":latest"} {
			if !strings.Contains(out, want) {
				t.Errorf("build output lacks %q:\n%s", want, out)
			}
		}
		id := builtID(t, out)
		got := c.ok(t, "run", "--rm", tag)
		want := "hi from " + tag + "\nbuilt as 0\na=1\nhello\n/app\n65534\n"
		if got != want {
			t.Errorf("run: got %q want %q", got, want)
		}
		if r := c.run(t, "", "run", "--rm", tag, "ls", "/app/secret.txt"); r.Code == 0 {
			t.Errorf(".dockerignore'd file was copied: %s", r)
		}
		cfg := c.ok(t, "image", "inspect", "-f", "{{.Config.User}}|{{.Config.WorkingDir}}|{{json .Config.ExposedPorts}}|{{index .Config.Labels \"org.example.name\"}}", tag)
		if strings.TrimSpace(cfg) != `65534|/app|{"8080/tcp":{}}|wharf test` {
			t.Errorf("config: %q", cfg)
		}

		// A rebuild is all cache hits and gives the same image.
		out = c.ok(t, "build", "-t", tag, dir)
		if n := strings.Count(out, " ---> Using cache"); n != 9 {
			t.Errorf("rebuild: %d cache hits, want 9:\n%s", n, out)
		}
		if strings.Contains(out, "Running in") {
			t.Errorf("rebuild ran a step:\n%s", out)
		}
		if id2 := builtID(t, out); id2 != id {
			t.Errorf("rebuild gave %s, first build %s", id2, id)
		}
		// A changed file invalidates its COPY and what follows.
		os.WriteFile(filepath.Join(dir, "greeting.txt"), []byte("changed "+tag+"\n"), 0o644)
		out = c.ok(t, "build", "-t", tag, dir)
		if n := strings.Count(out, " ---> Using cache"); n != 2 {
			t.Errorf("after a change: %d cache hits, want 2:\n%s", n, out)
		}
		if got := c.ok(t, "run", "--rm", tag, "cat", "/app/greeting.txt"); got != "changed "+tag+"\n" {
			t.Errorf("changed file: %q", got)
		}
		// --no-cache runs every step again.
		out = c.ok(t, "build", "--no-cache", "-t", tag, dir)
		if strings.Contains(out, "Using cache") || !strings.Contains(out, "Running in") {
			t.Errorf("--no-cache:\n%s", out)
		}
	})
}

func TestBuildQuietIidfileArgsTarget(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		tag := uniqueName(t, c)
		rmi(t, c, tag, tag+"-b")
		dir := writeContext(t, map[string]string{
			"Dockerfile": `ARG VARIANT=one
FROM busybox AS first
ARG VARIANT
ARG OTHER=dflt
RUN echo "$VARIANT $OTHER" > /variant
FROM first AS second
RUN echo second >> /variant
`,
		})
		iid := filepath.Join(t.TempDir(), "iid")
		r := c.run(t, "", "build", "-q", "--iidfile", iid, "--build-arg", "VARIANT=two", "--target", "first", "-t", tag, dir)
		if r.Code != 0 {
			t.Fatalf("build -q: %s", r)
		}
		id := strings.TrimSpace(r.Stdout)
		if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(id) {
			t.Errorf("-q printed %q", r.Stdout)
		}
		b, err := os.ReadFile(iid)
		// (the docker CLI writes its -q output, newline included, to the iidfile)
		if err != nil || strings.TrimSpace(string(b)) != id {
			t.Errorf("iidfile: %q %v, want %q", b, err, id)
		}
		if got := c.ok(t, "run", "--rm", tag, "cat", "/variant"); got != "two dflt\n" {
			t.Errorf("build arg: %q", got)
		}
		hist := c.ok(t, "history", "--no-trunc", "--format", "{{.CreatedBy}}", tag)
		if !strings.Contains(hist, `|2 OTHER=dflt VARIANT=two /bin/sh -c echo "$VARIANT $OTHER" > /variant`) {
			t.Errorf("history:\n%s", hist)
		}
		out := c.ok(t, "build", "-t", tag+"-b", dir)
		if got := c.ok(t, "run", "--rm", tag+"-b", "cat", "/variant"); got != "one dflt\nsecond\n" {
			t.Errorf("default arg / stage as base: %q\n%s", got, out)
		}
		r = c.run(t, "", "build", "--build-arg", "NOPE=1", "-t", tag+"-b", dir)
		if r.Code != 0 || !strings.Contains(r.Stdout+r.Stderr, "[Warning] One or more build-args [NOPE] were not consumed") {
			t.Errorf("unused build-arg: %s", r)
		}
	})
}

func TestBuildMultiStage(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		tag := uniqueName(t, c)
		rmi(t, c, tag)
		dir := writeContext(t, map[string]string{
			"Dockerfile": `FROM busybox AS build
WORKDIR /src
COPY *.txt ./
RUN cat a.txt b.txt > /src/out.txt && mkdir -p /dist && cp /bin/busybox /dist/busybox
FROM scratch
COPY --from=build /dist/busybox /bin/busybox
COPY --from=build /src/out.txt /data/
ENTRYPOINT ["/bin/busybox"]
CMD ["cat", "/data/out.txt"]
`,
			"a.txt": "A\n", "b.txt": "B\n", "c.md": "no\n",
		})
		c.ok(t, "build", "-t", tag, dir)
		if got := c.ok(t, "run", "--rm", tag); got != "A\nB\n" {
			t.Errorf("multi-stage result: %q", got)
		}
		layers := c.ok(t, "image", "inspect", "-f", "{{len .RootFS.Layers}}", tag)
		if strings.TrimSpace(layers) != "2" {
			t.Errorf("FROM scratch + 2 COPY: %s layers", layers)
		}
		if r := c.run(t, "", "run", "--rm", tag, "ls", "/data"); strings.TrimSpace(r.Stdout) != "out.txt" {
			t.Errorf("/data: %s", r)
		}
	})
}

func TestBuildErrors(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		tag := uniqueName(t, c)
		rmi(t, c, tag)
		before := c.ok(t, "ps", "-aq")
		cases := []struct {
			dockerfile string
			want       string
			code       int
		}{
			{"FROM busybox\nRUN false\n", "The command '/bin/sh -c false' returned a non-zero code: 1", 1},
			{"FROM busybox\nRUN exit 3\n", "The command '/bin/sh -c exit 3' returned a non-zero code: 3", 3},
			{"FROM busybox\n\nFOO bar\n", "dockerfile parse error line 3: unknown instruction: FOO", 1},
			{"FROM busybox\nCOPY ../outside /x\n", "COPY failed: forbidden path outside the build context: ../outside ()", 1},
			{"FROM busybox\nCOPY nothere /x\n", "COPY failed: file not found in build context", 1},
			{"FROM busybox AS a\nCOPY --from=nostage /x /x\n", "invalid from flag value nostage", 1},
			// A missing base is pulled, as dockerd does (a registry nobody listens on: no outside address).
			{"FROM 127.0.0.1:1/wharf-no-such-image-x\n", `Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused`, 1},
		}
		for _, tc := range cases {
			dir := writeContext(t, map[string]string{"Dockerfile": tc.dockerfile, "f": "x"})
			r := c.run(t, "", "build", "--force-rm", "-t", tag, dir)
			if r.Code != tc.code || !strings.Contains(r.Stderr, tc.want) {
				t.Errorf("%q: want exit %d and %q: %s", tc.dockerfile, tc.code, tc.want, r)
			}
		}
		if r := c.run(t, "", "image", "inspect", tag); r.Code == 0 {
			t.Errorf("a failed build tagged %s", tag)
		}
		if after := c.ok(t, "ps", "-aq"); after != before {
			t.Errorf("failed builds with --force-rm left containers: before %q after %q", before, after)
		}
		// Without --force-rm the failed step's container stays, as with Docker.
		dir := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN false\n"})
		r := c.run(t, "", "build", dir)
		m := regexp.MustCompile(`Running in ([0-9a-f]{12})`).FindStringSubmatch(r.Stdout)
		if r.Code != 1 || m == nil {
			t.Fatalf("failing build: %s", r)
		}
		c.ok(t, "rm", m[1])
	})
}

// TestBuildTutorial is the seed's first step: docker build -t my-nginx-server . on top of nginx:latest,
// then the page is served.
func TestBuildTutorial(t *testing.T) {
	d := needDaemon(t)
	if os.Getenv("WHARF_E2E_FAST") != "" {
		t.Skip("WHARF_E2E_FAST: skipping the nginx base image")
	}
	if err := loadBaseImages(d, "nginx"); err != nil {
		t.Fatalf("nginx base image: %v", err)
	}
	src := filepath.Join(repoRoot, "..", "shared", "tutorial")
	if _, err := os.Stat(filepath.Join(src, "Dockerfile")); err != nil {
		t.Skip("no tutorial directory:", err)
	}
	for _, c := range clients(t, d) {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{"Dockerfile", "index.html"} {
				b, err := os.ReadFile(filepath.Join(src, f))
				if err != nil {
					t.Fatal(err)
				}
				os.WriteFile(filepath.Join(dir, f), b, 0o644)
			}
			tag := "my-nginx-server-" + c.name
			rmi(t, c, tag)
			out := c.ok(t, "build", "-t", tag, dir)
			if !strings.Contains(out, "Step 2/2 : COPY ./index.html /usr/share/nginx/html/index.html") {
				t.Errorf("output:\n%s", out)
			}
			out = c.ok(t, "build", "-t", tag, dir)
			if !strings.Contains(out, " ---> Using cache") {
				t.Errorf("rebuild not cached:\n%s", out)
			}
			name := uniqueName(t, c)
			c.ok(t, "run", "-d", "--name", name, "-p", "127.0.0.1:18090:80", tag)
			t.Cleanup(func() { c.run(t, "", "rm", "-f", name) })
			var body string
			for i := 0; i < 100; i++ {
				resp, err := http.Get("http://127.0.0.1:18090/")
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					body = string(b)
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if !strings.Contains(body, "Hello from my first Nginx Container!") {
				t.Errorf("page: %q", body)
			}
		})
	}
}

// TestBuildCancel interrupts the client during a RUN: the build stops and its container goes away.
func TestBuildCancel(t *testing.T) {
	forEachClient(t, func(t *testing.T, c cli) {
		before := c.ok(t, "ps", "-aq")
		dir := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN echo started-" + uniqueName(t, c) + " && sleep 60\n"})
		cmd := exec.Command(c.path, "build", dir)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+c.host, "DOCKER_BUILDKIT=0")
		var out syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for !strings.Contains(out.String(), "started-") && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		var after string
		for i := 0; i < 100; i++ {
			if after = c.ok(t, "ps", "-aq"); after == before {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("cancelled build left containers: before %q after %q\n%s", before, after, out.String())
	})
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
