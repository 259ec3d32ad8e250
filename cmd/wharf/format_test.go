package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/patternmatcher"
)

func TestEllipsisAndTruncateID(t *testing.T) {
	if got := ellipsis("nginx -g 'daemon off;'", 20); got != "nginx -g 'daemon of…" {
		t.Errorf("ellipsis %q", got)
	}
	if got := ellipsis("short", 20); got != "short" {
		t.Errorf("ellipsis short %q", got)
	}
	if got := truncateID("sha256:3d32c953a1d2fef0e0e5f92a"); got != "3d32c953a1d2" {
		t.Errorf("truncateID %q", got)
	}
	if got := truncateID("<missing>"); got != "<missing>" {
		t.Errorf("truncateID missing %q", got)
	}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestDisplayablePorts(t *testing.T) {
	ports := []container.PortSummary{
		{PrivatePort: 9090, Type: "tcp"},
		{PrivatePort: 9091, Type: "tcp"},
		{IP: addr("0.0.0.0"), PrivatePort: 80, PublicPort: 8080, Type: "tcp"},
		{IP: addr("::"), PrivatePort: 80, PublicPort: 8080, Type: "tcp"},
		{IP: addr("0.0.0.0"), PrivatePort: 7000, PublicPort: 7000, Type: "udp"},
		{IP: addr("0.0.0.0"), PrivatePort: 7001, PublicPort: 7001, Type: "udp"},
		{PrivatePort: 53, Type: "udp"},
	}
	want := "53/udp, 0.0.0.0:7000-7001->7000-7001/udp, 9090-9091/tcp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"
	if got := displayablePorts(ports); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := displayablePorts(nil); got != "" {
		t.Errorf("empty %q", got)
	}
}

func TestWriteContainersFormats(t *testing.T) {
	now := time.Now()
	list := []container.Summary{{
		ID: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Names: []string{"/db", "/web/db"},
		Image: "docker.io/library/postgres:16@sha256:" + strings.Repeat("a", 64), ImageID: "sha256:ffff",
		Command: "docker-entrypoint.sh postgres", Created: now.Add(-90 * time.Second).Unix(),
		State: "exited", Status: "Exited (0) 5 seconds ago", Labels: map[string]string{"b": "2", "a": "1"},
		SizeRw: 1234, SizeRootFs: 120000000,
	}}
	var b bytes.Buffer
	if err := writeContainers(&b, containerFormat("", false, true), true, list); err != nil {
		t.Fatal(err)
	}
	want := "CONTAINER ID   IMAGE         COMMAND                  CREATED              STATUS                     PORTS     NAMES     SIZE\n" +
		"0123456789ab   postgres:16   \"docker-entrypoint.s…\"   About a minute ago   Exited (0) 5 seconds ago             db        1.23kB (virtual 120MB)\n"
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	_ = writeContainers(&b, containerFormat(`table {{.Names}}\t{{.Labels}}\t{{.Label "b"}}`, false, false), false, list)
	if want := "NAMES       LABELS    \ndb,web/db   a=1,b=2   2\n"; b.String() != want {
		t.Fatalf("custom table %q want %q", b.String(), want)
	}
	b.Reset()
	_ = writeContainers(&b, containerFormat("", true, false), true, list)
	if b.String() != "0123456789ab\n" {
		t.Fatalf("quiet %q", b.String())
	}
	b.Reset()
	_ = writeContainers(&b, "json", true, list)
	var m map[string]string
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatalf("json %q: %v", b.String(), err)
	}
	if m["ID"] != "0123456789ab" || m["Names"] != "db" || m["State"] != "exited" || m["Labels"] != "a=1,b=2" || m["Command"] != `"docker-entrypoint.s…"` {
		t.Fatalf("json fields %v", m)
	}
	b.Reset()
	_ = writeContainers(&b, `{{json .Names}} {{upper .State}} {{join (split .Status " ") "_"}} {{pad .State 1 1}}|{{truncate .ID 4}}`, true, list)
	if want := "\"db\" EXITED Exited_(0)_5_seconds_ago  exited |0123\n"; b.String() != want {
		t.Fatalf("funcs %q want %q", b.String(), want)
	}
	if err := writeContainers(&b, "{{.Nope", true, list); err == nil || !strings.HasPrefix(err.Error(), "template parsing error") {
		t.Fatalf("bad template: %v", err)
	}
	if err := writeContainers(&b, "{{.Nope}}", true, list); err == nil {
		t.Fatal("unknown field accepted")
	}
}

func TestWriteImagesDigestsAndDangling(t *testing.T) {
	created := time.Now().Add(-3 * 24 * time.Hour).Unix()
	dgst := "sha256:" + strings.Repeat("b", 64)
	imgs := []image.Summary{
		{ID: "sha256:" + strings.Repeat("c", 64), RepoTags: []string{"app:1", "app:2"}, RepoDigests: []string{"app@" + dgst}, Created: created, Size: 5_000_000},
		{ID: "sha256:" + strings.Repeat("d", 64), RepoDigests: []string{"other@" + dgst}, Created: created, Size: 10},
		{ID: "sha256:" + strings.Repeat("e", 64), Created: created, Size: 0},
	}
	var b bytes.Buffer
	if err := writeImages(&b, imageFormat("table", false, true), true, true, imgs); err != nil {
		t.Fatal(err)
	}
	want := "REPOSITORY   TAG       DIGEST                                                                    IMAGE ID       CREATED      SIZE\n" +
		"app          1         " + dgst + "   cccccccccccc   3 days ago   5MB\n" +
		"app          2         " + dgst + "   cccccccccccc   3 days ago   5MB\n" +
		"other        <none>    " + dgst + "   dddddddddddd   3 days ago   10B\n" +
		"<none>       <none>    <none>                                                                    eeeeeeeeeeee   3 days ago   0B\n"
	if b.String() != want {
		t.Fatalf("digests:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	_ = writeImages(&b, imageFormat("{{.Repository}}:{{.Tag}}", false, false), true, false, imgs)
	if b.String() != "app:1\napp:2\nother:<none>\n<none>:<none>\n" {
		t.Fatalf("custom %q", b.String())
	}
}

func TestHistoryVolumeNetworkTables(t *testing.T) {
	var b bytes.Buffer
	items := []image.HistoryResponseItem{
		{ID: "sha256:" + strings.Repeat("1", 64), Created: time.Now().Add(-time.Hour).Unix(), CreatedBy: "/bin/sh -c #(nop)\tCMD [\"sh\"] and a lot more text here to cut", Size: 0},
		{ID: "<missing>", Created: 0, CreatedBy: "", Size: 1984000, Comment: "Imported from -"},
	}
	_ = writeHistory(&b, historyFormat("", false, true), true, true, items)
	want := "IMAGE          CREATED             CREATED BY                                      SIZE      COMMENT\n" +
		"111111111111   About an hour ago   /bin/sh -c #(nop) CMD [\"sh\"] and a lot more …   0B        \n" +
		"<missing>      N/A                                                                 1.98MB    Imported from -\n"
	if b.String() != want {
		t.Fatalf("history:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	_ = writeVolumes(&b, volumeFormat("", false), []volume.Volume{{Name: "v10", Driver: "local"}, {Name: "v9", Driver: "local"}})
	if b.String() != "DRIVER    VOLUME NAME\nlocal     v9\nlocal     v10\n" {
		t.Fatalf("volumes %q", b.String())
	}
	b.Reset()
	_ = writeNetworks(&b, networkFormat("", false), true, []network.Summary{{Network: network.Network{ID: strings.Repeat("f", 64), Name: "bridge", Driver: "bridge", Scope: "local"}}})
	if b.String() != "NETWORK ID     NAME      DRIVER    SCOPE\nffffffffffff   bridge    bridge    local\n" {
		t.Fatalf("networks %q", b.String())
	}
}

func TestFormatPorts(t *testing.T) {
	pm := network.PortMap{
		network.MustParsePort("80/tcp"):  {{HostIP: addr("0.0.0.0"), HostPort: "8080"}, {HostIP: addr("::"), HostPort: "8080"}},
		network.MustParsePort("443/tcp"): {{HostIP: addr("127.0.0.1"), HostPort: "8443"}},
		network.MustParsePort("53/udp"):  nil,
	}
	got, err := formatPorts(pm, "", "c")
	want := []string{"80/tcp -> 0.0.0.0:8080", "80/tcp -> [::]:8080", "443/tcp -> 127.0.0.1:8443"}
	if err != nil || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("all: %q %v", got, err)
	}
	got, err = formatPorts(pm, "80", "c")
	if err != nil || strings.Join(got, "|") != "0.0.0.0:8080|[::]:8080" {
		t.Fatalf("80: %q %v", got, err)
	}
	if _, err := formatPorts(pm, "53/udp", "c"); err == nil || err.Error() != "Error: No public port '53/udp' published for c" {
		t.Fatalf("53: %v", err)
	}
}

func TestStatsComputation(t *testing.T) {
	var s container.StatsResponse
	s.ID, s.Name = strings.Repeat("a", 64), "/web"
	s.CPUStats.CPUUsage.TotalUsage = 2_000_000
	s.PreCPUStats.CPUUsage.TotalUsage = 1_000_000
	s.CPUStats.SystemUsage = 20_000_000
	s.PreCPUStats.SystemUsage = 10_000_000
	s.CPUStats.OnlineCPUs = 2
	s.MemoryStats.Usage = 300 << 20
	s.MemoryStats.Limit = 1 << 30
	s.MemoryStats.Stats = map[string]uint64{"total_inactive_file": 100 << 20}
	s.Networks = map[string]container.NetworkStats{"eth0": {RxBytes: 1500, TxBytes: 500}}
	s.BlkioStats.IoServiceBytesRecursive = []container.BlkioStatEntry{{Op: "Read", Value: 4096}, {Op: "write", Value: 8192}}
	s.PidsStats.Current = 3
	e := computeStats(&s)
	var b bytes.Buffer
	_ = writeStats(&b, "", true, []statsEntry{e})
	want := "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O        BLOCK I/O        PIDS\n" +
		"aaaaaaaaaaaa   web       20.00%    200MiB / 1GiB       19.53%    1.5kB / 500B   4.1kB / 8.19kB   3\n"
	if b.String() != want {
		t.Fatalf("stats:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestDisplayJSONStream(t *testing.T) {
	in := `{"stream":"Step 1/2 : FROM busybox"}` + "\n" + `{"stream":"\n"}` + "\n" +
		`{"status":"Pulling fs layer","id":"abc"}` + "\n" + `{"aux":{"ID":"sha256:123"}}` + "\n" +
		`{"status":"Done"}` + "\n"
	var out bytes.Buffer
	var aux []string
	err := displayJSONStream(strings.NewReader(in), &out, false, func(m json.RawMessage) { aux = append(aux, string(m)) })
	if err != nil || out.String() != "Step 1/2 : FROM busybox\nabc: Pulling fs layer\nDone\n" || len(aux) != 1 || aux[0] != `{"ID":"sha256:123"}` {
		t.Fatalf("%q %v %v", out.String(), aux, err)
	}
	err = displayJSONStream(strings.NewReader(`{"errorDetail":{"code":3,"message":"boom"},"error":"boom"}`), &out, false, nil)
	var se streamError
	if !errors.As(err, &se) || se.Code != 3 || se.Message != "boom" {
		t.Fatalf("error: %v", err)
	}
}

func TestDetachKeys(t *testing.T) {
	keys, err := parseDetachKeys("ctrl-p,ctrl-q")
	if err != nil || !bytes.Equal(keys, []byte{16, 17}) {
		t.Fatalf("%v %v", keys, err)
	}
	if _, err := parseDetachKeys("ctrl-1"); err == nil {
		t.Fatal("bad key accepted")
	}
	// Bytes pass through; a lone ctrl-p is passed on; ctrl-p ctrl-q detaches.
	in := []byte{'a', 16, 'b', 'c', 16, 17, 'z'}
	p := &escapeProxy{r: bytes.NewReader(in), keys: keys}
	got, err := io.ReadAll(p)
	if !errors.Is(err, errDetached) || string(got) != "a\x10bc" {
		t.Fatalf("got %q err %v", got, err)
	}
}

func TestBuildContextHonoursDockerignore(t *testing.T) {
	dir := t.TempDir()
	write := func(p, s string) {
		full := filepath.Join(dir, p)
		_ = os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Dockerfile", "FROM busybox\n")
	write(".dockerignore", "# comment\n*.log\nnode_modules\nsecret/\n!keep.log\nDockerfile\n")
	write("a.txt", "a")
	write("x.log", "x")
	write("keep.log", "k")
	write("node_modules/m/index.js", "m")
	write("secret/key", "s")
	write("sub/b.txt", "b")
	rc, name, err := dirContext(dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if name != "Dockerfile" {
		t.Fatalf("dockerfile name %q", name)
	}
	var names []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s owned by %d:%d", h.Name, h.Uid, h.Gid)
		}
		names = append(names, h.Name)
	}
	sort.Strings(names)
	want := []string{".dockerignore", "Dockerfile", "a.txt", "keep.log", "sub/", "sub/b.txt"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("context %v, want %v", names, want)
	}

	// A Dockerfile outside the context is added under a generated name.
	other := filepath.Join(t.TempDir(), "Other.Dockerfile")
	_ = os.WriteFile(other, []byte("FROM scratch\n"), 0o644)
	rc2, name2, err := dirContext(dir, other, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc2.Close()
	if !strings.HasPrefix(name2, ".dockerfile.") {
		t.Fatalf("outside dockerfile name %q", name2)
	}
	found := false
	tr = tar.NewReader(rc2)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if h.Name == name2 {
			b, _ := io.ReadAll(tr)
			found = string(b) == "FROM scratch\n"
		}
	}
	if !found {
		t.Fatal("outside Dockerfile not in context")
	}
	if _, _, err := dirContext(filepath.Join(dir, "nope"), "", nil); err == nil {
		t.Fatal("missing context accepted")
	}
	pm, _ := patternmatcher.New(nil)
	if files, _ := contextFiles(dir, pm); len(files) != 12 {
		t.Fatalf("no ignore: %d files %v", len(files), files)
	}
}

func TestBuildArgsAndStdinContext(t *testing.T) {
	t.Setenv("WHARF_BA", "env")
	m := buildArgsMap([]string{"A=1", "B=", "WHARF_BA", "WHARF_UNSET_BA"})
	if *m["A"] != "1" || *m["B"] != "" || *m["WHARF_BA"] != "env" || m["WHARF_UNSET_BA"] != nil {
		t.Fatalf("%v", m)
	}
	r, name, err := stdinContext(strings.NewReader("FROM busybox\n"), "")
	if err != nil || name != "Dockerfile" {
		t.Fatal(name, err)
	}
	tr := tar.NewReader(r)
	h, err := tr.Next()
	if err != nil || h.Name != "Dockerfile" {
		t.Fatal(h, err)
	}
}

func TestCopyRoundTrip(t *testing.T) {
	src := t.TempDir()
	_ = os.MkdirAll(filepath.Join(src, "dir", "sub"), 0o755)
	_ = os.WriteFile(filepath.Join(src, "dir", "a.txt"), []byte("a"), 0o640)
	_ = os.WriteFile(filepath.Join(src, "dir", "sub", "b.txt"), []byte("b"), 0o644)
	_ = os.Symlink("a.txt", filepath.Join(src, "dir", "link"))

	var buf bytes.Buffer
	if err := tarPath(&buf, filepath.Join(src, "dir"), "dir", false); err != nil {
		t.Fatal(err)
	}
	archive := buf.Bytes()

	// Into an existing directory: dst/dir/…
	dst := t.TempDir()
	if err := extractCopy(bytes.NewReader(archive), "dir", "", "/dir", true, dst, false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "dir", "sub", "b.txt")); string(b) != "b" {
		t.Fatal("dir/sub/b.txt missing")
	}
	if fi, _ := os.Stat(filepath.Join(dst, "dir", "a.txt")); fi == nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", fi)
	}
	if l, _ := os.Readlink(filepath.Join(dst, "dir", "link")); l != "a.txt" {
		t.Fatalf("link %q", l)
	}
	// To a new name: the directory is renamed.
	newName := filepath.Join(t.TempDir(), "renamed")
	if err := extractCopy(bytes.NewReader(archive), "dir", "", "/dir", true, newName, false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(newName, "a.txt")); string(b) != "a" {
		t.Fatal("renamed/a.txt missing")
	}
	// A directory onto a file is refused; a missing parent is refused.
	f := filepath.Join(t.TempDir(), "file")
	_ = os.WriteFile(f, nil, 0o644)
	if err := extractCopy(bytes.NewReader(archive), "dir", "", "/dir", true, f, false); err == nil {
		t.Fatal("dir onto file accepted")
	}
	if err := extractCopy(bytes.NewReader(archive), "dir", "", "/dir", true, filepath.Join(t.TempDir(), "x", "y"), false); err == nil {
		t.Fatal("missing parent accepted")
	}
	// Entries escaping the destination are refused.
	var evil bytes.Buffer
	tw := tar.NewWriter(&evil)
	_ = tw.WriteHeader(&tar.Header{Name: "dir/../../escape", Typeflag: tar.TypeReg, Mode: 0o644})
	_ = tw.Close()
	escDst := t.TempDir()
	_ = extractCopy(bytes.NewReader(evil.Bytes()), "dir", "", "/dir", true, escDst, false)
	if _, err := os.Stat(filepath.Join(filepath.Dir(escDst), "escape")); err == nil {
		t.Fatal("archive escaped its destination")
	}
	if a, b := splitCpArg("web:/etc/hosts"); a != "web" || b != "/etc/hosts" {
		t.Fatal(a, b)
	}
	if a, b := splitCpArg("./a:b"); a != "" || b != "./a:b" {
		t.Fatal(a, b)
	}
	if a, b := splitCpArg("/abs:x"); a != "" || b != "/abs:x" {
		t.Fatal(a, b)
	}
}
