package e2e

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// The same Dockerfiles built by Wharf and by the machine's real dockerd (legacy builder, as `docker build` without
// buildx uses), on identical base images: the resulting image configs and the files each Dockerfile touched must
// be the same. Skips when no real dockerd is reachable. Everything made on the real dockerd is removed afterwards.

const realDockerHost = "unix:///var/run/docker.sock"

// imageConfig is the part of an image's config the comparison checks.
type imageConfig struct {
	Env          []string
	Cmd          []string
	Entrypoint   []string
	WorkingDir   string
	User         string
	ExposedPorts map[string]struct{}
	Labels       map[string]string
	Volumes      map[string]struct{}
	StopSignal   string
	Healthcheck  *struct {
		Test     []string
		Interval time.Duration
	}
	OnBuild []string
	Shell   []string
}

// fileEntry is what is compared for one path of an exported container filesystem.
type fileEntry struct {
	Type     byte
	Mode     int64
	Size     int64
	UID, GID int
	Link     string
	SHA256   string
}

func (e fileEntry) String() string {
	s := fmt.Sprintf("type=%c mode=%04o size=%d owner=%d:%d", e.Type, e.Mode, e.Size, e.UID, e.GID)
	if e.Link != "" {
		s += " link=" + e.Link
	}
	if e.SHA256 != "" {
		s += " sha256=" + e.SHA256[:12]
	}
	return s
}

type compareCase struct {
	name     string
	files    map[string]string
	tarFiles map[string]string // name → entries for a tar file in the context ("path" → content; "dir/" a dir)
	prefixes []string          // the parts of the tree the Dockerfile touched
	base     string            // "busybox" or "nginx"
}

func TestBuildCompareWithDockerd(t *testing.T) {
	d := needWharf(t)
	if dockerPath == "" {
		t.Skip("no docker CLI to reach the real dockerd")
	}
	real := cli{name: "dockerd", path: dockerPath, host: realDockerHost}
	if r := real.run(t, "", "version", "--format", "{{.Server.Version}}"); r.Code != 0 {
		t.Skip("no real dockerd reachable")
	}
	wharf := cli{name: "wharf", path: dockerPath, host: d.host()}
	cache := os.Getenv("WHARF_IMAGE_CACHE")
	if cache == "" {
		cache = "/var/cache/wharf/base-images"
	}
	suffix := fmt.Sprintf("%d", time.Now().UnixNano()%1000000)
	bases := map[string]string{} // "busybox" → private ref on both engines
	var realBaseIDs []string
	t.Cleanup(func() { removeDescendants(t, real, realBaseIDs) })

	// The same base on both engines: Wharf's shared daemon has busybox:latest from scripts/base-images.sh; the real
	// dockerd gets the same cached rootfs imported with the same changes, under a private name.
	// extra: instructions the real dockerd refuses on import (20.10: STOPSIGNAL), added by a one-step build.
	importBase := func(short, ref string, extra []string, changes ...string) {
		t.Helper()
		tarPath := filepath.Join(cache, short+".tar")
		if _, err := os.Stat(tarPath); err != nil {
			t.Skipf("no cached rootfs %s: %v", tarPath, err)
		}
		private := "wharf-cmp/" + short + ":" + suffix
		wharf.ok(t, "tag", ref, private)
		t.Cleanup(func() { wharf.run(t, "", "rmi", private) })
		args := []string{"import"}
		for _, c := range changes {
			args = append(args, "--change", c)
		}
		real.ok(t, append(args, tarPath, private)...)
		realBaseIDs = append(realBaseIDs, strings.TrimSpace(real.ok(t, "image", "inspect", "-f", "{{.Id}}", private)))
		if len(extra) > 0 {
			real.ok(t, "build", "--force-rm", "-q", "-t", private,
				writeContext(t, map[string]string{"Dockerfile": "FROM " + private + "\n" + strings.Join(extra, "\n") + "\n"}))
		}
		// The bases must agree before the builds are compared.
		if wc, rc := inspectConfig(t, wharf, private), inspectConfig(t, real, private); !reflect.DeepEqual(wc, rc) {
			t.Fatalf("base %s differs before any build:\nwharf:   %+v\ndockerd: %+v", short, wc, rc)
		}
		bases[short] = private
	}
	const pathEnv = "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	importBase("busybox", "busybox:latest", nil, `CMD ["sh"]`, pathEnv)

	cases := []compareCase{{
		name: "instructions",
		base: "busybox",
		files: map[string]string{
			"Dockerfile": `FROM {{busybox}}
ARG VERSION=1.0
ARG UNUSED
ENV APP_HOME=/srv/app GREETING="hello world" V=${VERSION}
LABEL org.example.version=$VERSION "org.example.desc"="compare test"
WORKDIR $APP_HOME
COPY greeting.txt .
COPY conf/ /etc/myapp/
COPY conf /etc/myapp2
COPY conf/a.conf conf/b.conf /etc/pair/
COPY --chown=65534:65534 secret.txt /srv/secret/
COPY --chown=1234 secret.txt /srv/secret/uid-only
ADD bundle.tar /opt/bundle/
ADD greeting.txt /opt/added.txt
ADD {{url}}/files/remote.txt /opt/dl/
ADD {{url}}/files/remote.tar /opt/remote-tar
COPY *.md /docs/
COPY . /ctx/
RUN mkdir -p /srv/app/run && echo ran > /srv/app/run/out.txt && chmod 0750 /srv/app/run \
    && rm -f /etc/myapp/drop.conf && ln -s /srv/app/greeting.txt /srv/app/link && touch /srv/app/gone
RUN rm -rf /srv/app/gone /opt/bundle/sub/x.txt
SHELL ["/bin/sh", "-ec"]
RUN echo "$V $GREETING" > /srv/app/shell.txt
EXPOSE 8080 9090/udp
VOLUME ["/srv/data"]
USER 65534:65534
WORKDIR rel
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s CMD ["true"]
ONBUILD RUN echo child
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo hi"]
`,
			".dockerignore":  "*.tmp\n**/ignored\n",
			"greeting.txt":   "hello\n",
			"secret.txt":     "s3cret\n",
			"conf/a.conf":    "a=1\n",
			"conf/b.conf":    "b=2\n",
			"conf/drop.conf": "drop\n",
			"conf/sub/c.txt": "c\n",
			"README.md":      "readme\n",
			"NOTES.md":       "notes\n",
			"junk.tmp":       "ignored by .dockerignore\n",
			"deep/ignored":   "ignored\n",
			"deep/kept":      "kept\n",
		},
		tarFiles: map[string]string{"bundle.tar": ""},
		prefixes: []string{"/srv", "/etc/myapp", "/etc/myapp2", "/etc/pair", "/opt", "/docs", "/ctx"},
	}, {
		name: "three-stages",
		base: "busybox",
		files: map[string]string{
			"Dockerfile": `FROM {{busybox}} AS base
WORKDIR /out
COPY a.txt b.txt ./
RUN echo base > /out/base.txt && mkdir -p /out/lib && cp /bin/busybox /out/lib/tool
FROM {{busybox}} AS mid
COPY --from=base /out /in
RUN cat /in/base.txt /in/a.txt /in/b.txt > /mid.txt && chmod 0600 /mid.txt
FROM {{busybox}}
ENV APP=/app
COPY --from=mid /mid.txt /app/
COPY --from=base /out/lib/tool /usr/local/bin/tool
COPY --from=mid /in /app/in
WORKDIR /app
CMD ["cat", "/app/mid.txt"]
`,
			"a.txt": "a\n", "b.txt": "b\n",
		},
		prefixes: []string{"/app", "/usr/local/bin", "/mid.txt", "/in", "/out"},
	}}
	if os.Getenv("WHARF_E2E_FAST") == "" {
		if src := filepath.Join(repoRoot, "..", "shared", "tutorial"); fileExists(filepath.Join(src, "Dockerfile")) {
			if err := loadBaseImages(d, "nginx"); err != nil {
				t.Fatalf("nginx base image: %v", err)
			}
			importBase("nginx", "nginx:latest", []string{"STOPSIGNAL SIGQUIT"}, `CMD ["nginx","-g","daemon off;"]`, "EXPOSE 80", pathEnv)
			df, err := os.ReadFile(filepath.Join(src, "Dockerfile"))
			if err != nil {
				t.Fatal(err)
			}
			html, err := os.ReadFile(filepath.Join(src, "index.html"))
			if err != nil {
				t.Fatal(err)
			}
			cases = append(cases, compareCase{
				name: "tutorial",
				base: "nginx",
				files: map[string]string{
					"Dockerfile": strings.Replace(string(df), "FROM nginx:latest", "FROM {{nginx}}", 1),
					"index.html": string(html),
				},
				prefixes: []string{"/usr/share/nginx/html"},
			})
		}
	}

	// ADD <url> sources: a loopback server both daemons reach (they run on this host).
	var tarBody bytes.Buffer
	writeBundleTarTo(t, &tarBody)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Last-Modified", time.Unix(1690000000, 0).UTC().Format(http.TimeFormat))
		switch r.URL.Path {
		case "/files/remote.txt":
			io.WriteString(w, "remote file\n")
		case "/files/remote.tar":
			w.Write(tarBody.Bytes()) // ADD never extracts a download
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{}
			for k, v := range tc.files {
				for short, ref := range bases {
					v = strings.ReplaceAll(v, "{{"+short+"}}", ref)
				}
				files[k] = strings.ReplaceAll(v, "{{url}}", srv.URL)
			}
			dir := writeContext(t, files)
			for name := range tc.tarFiles {
				writeBundleTar(t, filepath.Join(dir, name))
			}
			tag := "wharf-cmp/" + tc.name + ":" + suffix
			var trees [2]map[string]fileEntry
			var configs [2]imageConfig
			var layers [2]string
			for i, c := range []cli{wharf, real} {
				// --network none: the comparison is about files and configs (and the e2e bridge may be shared).
				c.ok(t, "build", "--force-rm", "--network", "none", "--build-arg", "VERSION=2.5", "-t", tag, dir)
				t.Cleanup(func() { c.run(t, "", "rmi", "-f", tag) })
				configs[i] = inspectConfig(t, c, tag)
				layers[i] = strings.TrimSpace(c.ok(t, "image", "inspect", "-f", "{{len .RootFS.Layers}}", tag))
				trees[i] = exportTree(t, c, tag, tc.prefixes)
			}
			if !reflect.DeepEqual(configs[0], configs[1]) {
				wj, _ := json.MarshalIndent(configs[0], "", "  ")
				rj, _ := json.MarshalIndent(configs[1], "", "  ")
				t.Errorf("image config differs:\nwharf:   %s\ndockerd: %s", wj, rj)
			}
			if layers[0] != layers[1] {
				t.Errorf("layer count: wharf %s, dockerd %s", layers[0], layers[1])
			}
			if len(trees[1]) == 0 {
				t.Fatalf("dockerd's tree has nothing under %v", tc.prefixes)
			}
			for _, diff := range diffTrees(trees[0], trees[1]) {
				t.Error(diff)
			}
		})
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// writeBundleTar writes a small tar with a directory, an executable, a symlink and a nested file (ADD extracts it).
func writeBundleTar(t *testing.T, path string) {
	t.Helper()
	var buf bytes.Buffer
	writeBundleTarTo(t, &buf)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeBundleTarTo(t *testing.T, buf *bytes.Buffer) {
	t.Helper()
	tw := tar.NewWriter(buf)
	mod := time.Unix(1700000000, 0)
	add := func(h *tar.Header, body string) {
		h.ModTime = mod
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	add(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(&tar.Header{Name: "bin/run.sh", Typeflag: tar.TypeReg, Mode: 0o755, Uid: 1000, Gid: 1000}, "#!/bin/sh\necho run\n")
	add(&tar.Header{Name: "sub/", Typeflag: tar.TypeDir, Mode: 0o700}, "")
	add(&tar.Header{Name: "sub/x.txt", Typeflag: tar.TypeReg, Mode: 0o644}, "x\n")
	add(&tar.Header{Name: "sub/y.txt", Typeflag: tar.TypeReg, Mode: 0o600}, "y\n")
	add(&tar.Header{Name: "latest", Typeflag: tar.TypeSymlink, Linkname: "bin/run.sh", Mode: 0o777}, "")
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

func inspectConfig(t *testing.T, c cli, ref string) imageConfig {
	t.Helper()
	var cfg imageConfig
	out := c.ok(t, "image", "inspect", "-f", "{{json .Config}}", ref)
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("%s: config of %s: %v: %s", c.name, ref, err, out)
	}
	// Empty and absent are the same to a client.
	if len(cfg.ExposedPorts) == 0 {
		cfg.ExposedPorts = nil
	}
	if len(cfg.Labels) == 0 {
		cfg.Labels = nil
	}
	if len(cfg.Volumes) == 0 {
		cfg.Volumes = nil
	}
	if len(cfg.OnBuild) == 0 {
		cfg.OnBuild = nil
	}
	return cfg
}

// exportTree creates a container of ref, exports its filesystem and returns the entries under prefixes.
func exportTree(t *testing.T, c cli, ref string, prefixes []string) map[string]fileEntry {
	t.Helper()
	id := strings.TrimSpace(c.ok(t, "create", ref))
	defer c.run(t, "", "rm", "-f", id)
	cmd := exec.Command(c.path, "-H", c.host, "export", id)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tree := map[string]fileEntry{}
	tr := tar.NewReader(stdout)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("%s: export %s: %v (%s)", c.name, ref, err, stderr.String())
		}
		p := "/" + strings.Trim(filepath.Clean("/"+h.Name), "/")
		if !underAny(p, prefixes) {
			continue
		}
		e := fileEntry{Type: h.Typeflag, Mode: h.Mode & 0o7777, UID: h.Uid, GID: h.Gid, Link: h.Linkname}
		if e.Type == tar.TypeRegA {
			e.Type = tar.TypeReg
		}
		if e.Type == tar.TypeReg {
			e.Size = h.Size
			sum := sha256.New()
			io.Copy(sum, tr)
			e.SHA256 = hex.EncodeToString(sum.Sum(nil))
		}
		tree[p] = e
	}
	io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s: export %s: %v (%s)", c.name, ref, err, stderr.String())
	}
	return tree
}

func underAny(p string, prefixes []string) bool {
	for _, pre := range prefixes {
		if p == pre || strings.HasPrefix(p, pre+"/") {
			return true
		}
	}
	return false
}

// diffTrees lists every path whose presence or entry differs between Wharf's and dockerd's trees.
func diffTrees(wharf, real map[string]fileEntry) []string {
	var paths []string
	seen := map[string]bool{}
	for p := range wharf {
		paths, seen[p] = append(paths, p), true
	}
	for p := range real {
		if !seen[p] {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	var out []string
	for _, p := range paths {
		w, inW := wharf[p]
		r, inR := real[p]
		switch {
		case !inW:
			out = append(out, fmt.Sprintf("%s: only in dockerd's image (%s)", p, r))
		case !inR:
			out = append(out, fmt.Sprintf("%s: only in Wharf's image (%s)", p, w))
		case w != r:
			out = append(out, fmt.Sprintf("%s: wharf %s, dockerd %s", p, w, r))
		}
	}
	return out
}

// removeDescendants removes from the real dockerd the images imported by the test and every image built on them
// (the legacy builder keeps each step's image, and other stages' images stay as untagged leaves), leaves first,
// with any container made from one of them. Images of anyone else are not touched: they do not descend from bases.
func removeDescendants(t *testing.T, real cli, bases []string) {
	if len(bases) == 0 {
		return
	}
	isBase := map[string]bool{}
	for _, b := range bases {
		isBase[b] = true
	}
	all := strings.Fields(real.run(t, "", "images", "-aq", "--no-trunc").Stdout)
	parent := map[string]string{}
	if len(all) > 0 {
		out := real.run(t, "", append([]string{"image", "inspect", "-f", "{{.Id}} {{.Parent}}"}, all...)...).Stdout
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) >= 1 {
				parent[f[0]] = ""
				if len(f) == 2 {
					parent[f[0]] = f[1]
				}
			}
		}
	}
	type img struct {
		id    string
		depth int
	}
	var mine []img
	for id := range parent {
		p, depth := id, 0
		for p != "" && !isBase[p] && depth < 10000 {
			p, depth = parent[p], depth+1
		}
		if isBase[p] {
			mine = append(mine, img{id, depth})
		}
	}
	for _, b := range bases {
		if _, ok := parent[b]; !ok {
			mine = append(mine, img{b, 0})
		}
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].depth > mine[j].depth })
	ids := map[string]bool{}
	for _, m := range mine {
		ids[m.id] = true
	}
	for _, c := range strings.Fields(real.run(t, "", "ps", "-aq", "--no-trunc").Stdout) {
		if ids[strings.TrimSpace(real.run(t, "", "inspect", "-f", "{{.Image}}", c).Stdout)] {
			real.run(t, "", "rm", "-f", c)
		}
	}
	for _, m := range mine {
		real.run(t, "", "rmi", "-f", m.id)
	}
}
