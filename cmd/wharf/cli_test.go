package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
)

// fakeDaemon is a stand-in Engine API on a unix socket: it records requests and answers from routes.
type fakeDaemon struct {
	t      *testing.T
	sock   string
	mu     sync.Mutex
	calls  []string
	bodies map[string][]byte
	routes map[string]http.HandlerFunc // "METHOD /path" (without the /v1.NN prefix)
}

var versionPrefix = regexp.MustCompile(`^/v[0-9.]+`)

func newFakeDaemon(t *testing.T) *fakeDaemon {
	t.Helper()
	d := &fakeDaemon{t: t, sock: filepath.Join(t.TempDir(), "d.sock"), bodies: map[string][]byte{}, routes: map[string]http.HandlerFunc{}}
	l, err := net.Listen("unix", d.sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: d}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return d
}

func (d *fakeDaemon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Api-Version", "1.47")
	w.Header().Set("Ostype", "linux")
	p := versionPrefix.ReplaceAllString(r.URL.Path, "")
	if p == "/_ping" {
		w.Write([]byte("OK"))
		return
	}
	body, _ := io.ReadAll(r.Body)
	key := r.Method + " " + p
	d.mu.Lock()
	call := key
	if r.URL.RawQuery != "" {
		call += "?" + r.URL.RawQuery
	}
	d.calls = append(d.calls, call)
	d.bodies[key] = body
	h := d.routes[key]
	d.mu.Unlock()
	if h == nil {
		replyError(w, http.StatusNotFound, "page not found: "+key)
		return
	}
	h(w, r)
}

func (d *fakeDaemon) route(key string, h http.HandlerFunc) { d.routes[key] = h }

func (d *fakeDaemon) callList() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.calls...)
}

func replyError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

func jsonReply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// wharf runs the CLI against d and returns stdout, stderr and the exit code.
func (d *fakeDaemon) wharf(args ...string) (string, string, int) {
	var out, errb strings.Builder
	c := newCLI(strings.NewReader(""), &out, &errb)
	code := c.run(append([]string{"-H", "unix://" + d.sock}, args...))
	return out.String(), errb.String(), code
}

const fakeID = "4c0ffee0c0ffee0c0ffee0c0ffee0c0ffee0c0ffee0c0ffee0c0ffee0c0ffee0"

func TestRunDetachedFlow(t *testing.T) {
	d := newFakeDaemon(t)
	d.route("POST /containers/create", func(w http.ResponseWriter, r *http.Request) {
		jsonReply(w, 201, map[string]any{"Id": fakeID, "Warnings": []string{"low memory"}})
	})
	d.route("POST /containers/"+fakeID+"/wait", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		json.NewEncoder(w).Encode(map[string]any{"StatusCode": 0})
	})
	d.route("POST /containers/"+fakeID+"/start", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	out, errOut, code := d.wharf("run", "-d", "--name", "web", "-p", "8080:80", "busybox")
	if code != 0 || out != fakeID+"\n" {
		t.Fatalf("code %d out %q err %q", code, out, errOut)
	}
	if errOut != "WARNING: low memory\n" {
		t.Errorf("stderr %q", errOut)
	}
	want := []string{"POST /containers/create?name=web", "POST /containers/" + fakeID + "/wait?condition=next-exit", "POST /containers/" + fakeID + "/start"}
	if got := d.callList(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var req container.CreateRequest
	if err := json.Unmarshal(d.bodies["POST /containers/create"], &req); err != nil {
		t.Fatal(err)
	}
	if req.Config.Image != "busybox" || req.Config.AttachStdout || req.HostConfig.NetworkMode != "default" || len(req.HostConfig.PortBindings) != 1 {
		t.Fatalf("create body %s", d.bodies["POST /containers/create"])
	}
}

func TestRunPullsMissingImage(t *testing.T) {
	d := newFakeDaemon(t)
	d.route("POST /containers/create", func(w http.ResponseWriter, r *http.Request) {
		replyError(w, 404, "No such image: missing:latest")
	})
	d.route("POST /images/create", func(w http.ResponseWriter, r *http.Request) {
		replyError(w, 404, "pull access denied for missing, repository does not exist or may require 'docker login'")
	})
	_, errOut, code := d.wharf("run", "missing")
	if code != 125 {
		t.Fatalf("exit %d", code)
	}
	want := "Unable to find image 'missing:latest' locally\n" +
		"wharf: Error response from daemon: pull access denied for missing, repository does not exist or may require 'docker login'\n\n" +
		"Run 'wharf run --help' for more information\n"
	if errOut != want {
		t.Fatalf("stderr:\n%q\nwant:\n%q", errOut, want)
	}
	calls := d.callList()
	if len(calls) != 2 || calls[1] != "POST /images/create?fromImage=docker.io%2Flibrary%2Fmissing&tag=latest" {
		t.Fatalf("calls %q", calls)
	}
}

func TestRunPullsThenCreates(t *testing.T) {
	d := newFakeDaemon(t)
	n := 0
	d.route("POST /containers/create", func(w http.ResponseWriter, r *http.Request) {
		n++
		if n == 1 {
			replyError(w, 404, "No such image: alpine:3")
			return
		}
		jsonReply(w, 201, map[string]any{"Id": fakeID})
	})
	d.route("POST /images/create", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"status":"Pulling from library/alpine","id":"3"}`)
		fmt.Fprintln(w, `{"status":"Status: Downloaded newer image for alpine:3"}`)
	})
	d.route("POST /containers/"+fakeID+"/wait", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
	})
	d.route("POST /containers/"+fakeID+"/start", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	out, errOut, code := d.wharf("create", "alpine:3")
	if code != 0 || out != fakeID+"\n" {
		t.Fatalf("code %d out %q err %q", code, out, errOut)
	}
	want := "Unable to find image 'alpine:3' locally\n3: Pulling from library/alpine\nStatus: Downloaded newer image for alpine:3\n"
	if errOut != want {
		t.Fatalf("stderr %q want %q", errOut, want)
	}
}

func TestRunStartErrorExitCodes(t *testing.T) {
	cases := []struct {
		msg  string
		code int
	}{
		{`failed to create task: exec: "nosuch": executable file not found in $PATH`, 127},
		{`exec: "/etc/passwd": permission denied`, 126},
		{`driver failed programming external connectivity: port is already allocated`, 125},
	}
	for _, tc := range cases {
		d := newFakeDaemon(t)
		d.route("POST /containers/create", func(w http.ResponseWriter, r *http.Request) { jsonReply(w, 201, map[string]any{"Id": fakeID}) })
		d.route("POST /containers/"+fakeID+"/wait", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
		})
		d.route("POST /containers/"+fakeID+"/start", func(w http.ResponseWriter, r *http.Request) { replyError(w, 400, tc.msg) })
		_, errOut, code := d.wharf("run", "-d", "busybox", "nosuch")
		if code != tc.code {
			t.Errorf("%s: exit %d want %d", tc.msg, code, tc.code)
		}
		want := "wharf: Error response from daemon: " + tc.msg + "\n\nRun 'wharf run --help' for more information\n"
		if errOut != want {
			t.Errorf("stderr %q want %q", errOut, want)
		}
	}
}

func TestRunExitCodeFromWait(t *testing.T) {
	d := newFakeDaemon(t)
	d.route("POST /containers/create", func(w http.ResponseWriter, r *http.Request) { jsonReply(w, 201, map[string]any{"Id": fakeID}) })
	started := make(chan struct{})
	d.route("POST /containers/"+fakeID+"/wait", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("condition") != "removed" {
			t.Errorf("wait condition %q", r.URL.RawQuery)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-started
		json.NewEncoder(w).Encode(map[string]any{"StatusCode": 3})
	})
	d.route("POST /containers/"+fakeID+"/attach", func(w http.ResponseWriter, r *http.Request) {
		hj, _ := w.(http.Hijacker)
		conn, buf, err := hj.Hijack()
		if err != nil {
			return
		}
		buf.WriteString("HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
		buf.Flush()
		<-started
		// One stdout frame and one stderr frame, then the stream ends.
		conn.Write(append([]byte{1, 0, 0, 0, 0, 0, 0, 4}, "out\n"...))
		conn.Write(append([]byte{2, 0, 0, 0, 0, 0, 0, 4}, "err\n"...))
		conn.Close()
	})
	d.route("POST /containers/"+fakeID+"/start", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(204)
		close(started)
	})
	out, errOut, code := d.wharf("run", "--rm", "--sig-proxy=false", "busybox", "sh", "-c", "exit 3")
	if code != 3 || out != "out\n" || errOut != "err\n" {
		t.Fatalf("code %d out %q err %q", code, out, errOut)
	}
	calls := d.callList()
	if len(calls) != 4 || !strings.HasPrefix(calls[1], "POST /containers/"+fakeID+"/attach?stderr=1&stdout=1&stream=1") {
		t.Fatalf("calls %q", calls)
	}
}

func TestErrorsAndExitCodes(t *testing.T) {
	d := newFakeDaemon(t)
	d.route("DELETE /containers/x", func(w http.ResponseWriter, r *http.Request) { replyError(w, 404, "No such container: x") })
	d.route("DELETE /containers/y", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	out, errOut, code := d.wharf("rm", "x", "y")
	if code != 1 || out != "y\n" || errOut != "Error response from daemon: No such container: x\n" {
		t.Fatalf("rm: %d %q %q", code, out, errOut)
	}
	out, errOut, code = d.wharf("rm", "-f", "x")
	if code != 0 || out != "" || errOut != "Error response from daemon: No such container: x\n" {
		t.Fatalf("rm -f: %d %q %q", code, out, errOut)
	}
	d.route("POST /containers/a/stop", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	if out, _, code := d.wharf("stop", "-t", "5", "-s", "SIGINT", "a"); code != 0 || out != "a\n" {
		t.Fatalf("stop: %d %q", code, out)
	}
	if calls := d.callList(); calls[len(calls)-1] != "POST /containers/a/stop?signal=SIGINT&t=5" {
		t.Fatalf("stop call %q", calls[len(calls)-1])
	}
	_, errOut, code = d.wharf("run", "--bogus", "busybox")
	if code != 125 || errOut != "unknown flag: --bogus\n\nUsage:  wharf run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'wharf run --help' for more information\n" {
		t.Fatalf("flag error: %d %q", code, errOut)
	}
	_, errOut, code = d.wharf("nosuchcmd")
	if code != 1 || errOut != "wharf: unknown command: wharf nosuchcmd\n\nUsage:  wharf [OPTIONS] COMMAND [ARG...]\n\nRun 'wharf --help' for more information\n" {
		t.Fatalf("unknown command: %d %q", code, errOut)
	}
	_, errOut, code = d.wharf("rm")
	if code != 1 || errOut != "wharf: 'wharf rm' requires at least 1 argument\n\nUsage:  wharf rm [OPTIONS] CONTAINER [CONTAINER...]\n\nSee 'wharf rm --help' for more information\n" {
		t.Fatalf("rm no args: %d %q", code, errOut)
	}
	_, errOut, code = d.wharf("ps", "extra")
	if code != 1 || !strings.HasPrefix(errOut, "wharf: 'wharf ps' accepts no arguments\n") {
		t.Fatalf("ps extra: %d %q", code, errOut)
	}
	out, _, code = d.wharf("--help")
	if code != 0 || !strings.Contains(out, "Usage:  wharf [OPTIONS] COMMAND") || !strings.Contains(out, "  run ") {
		t.Fatalf("help: %d %q", code, out)
	}
	out, _, code = d.wharf("run", "--help")
	if code != 0 || !strings.Contains(out, "-h, --hostname string") || !strings.Contains(out, "-p, --publish list") {
		t.Fatalf("run help: %d %q", code, out)
	}
}

func TestNoDaemon(t *testing.T) {
	var out, errb strings.Builder
	c := newCLI(strings.NewReader(""), &out, &errb)
	sock := filepath.Join(t.TempDir(), "none.sock")
	code := c.run([]string{"-H", "unix://" + sock, "ps"})
	if code != 1 || !strings.Contains(errb.String(), "wharf API at unix://"+sock) {
		t.Fatalf("%d %q", code, errb.String())
	}
	out.Reset()
	errb.Reset()
	code = newCLI(strings.NewReader(""), &out, &errb).run([]string{"-H", "unix://" + sock, "version"})
	if code != 1 || !strings.Contains(out.String(), "Client: Wharf\n Version:") {
		t.Fatalf("version: %d %q %q", code, out.String(), errb.String())
	}
}

func TestPsAndImagesAgainstFake(t *testing.T) {
	d := newFakeDaemon(t)
	created := time.Now().Add(-2 * time.Hour).Unix()
	d.route("GET /containers/json", func(w http.ResponseWriter, r *http.Request) {
		jsonReply(w, 200, []map[string]any{{
			"Id": fakeID, "Names": []string{"/web"}, "Image": "nginx:latest", "ImageID": "sha256:aaa",
			"Command": "nginx -g 'daemon off;'", "Created": created, "State": "running", "Status": "Up 2 hours",
			"Ports": []map[string]any{{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}},
		}})
	})
	out, _, code := d.wharf("ps", "-a", "-n", "3", "--filter", "status=running")
	want := "CONTAINER ID   IMAGE          COMMAND                  CREATED       STATUS       PORTS                  NAMES\n" +
		"4c0ffee0c0ff   nginx:latest   \"nginx -g 'daemon of…\"   2 hours ago   Up 2 hours   0.0.0.0:8080->80/tcp   web\n"
	if code != 0 || out != want {
		t.Fatalf("ps:\n%s\nwant:\n%s", out, want)
	}
	if calls := d.callList(); calls[0] != "GET /containers/json?all=1&filters=%7B%22status%22%3A%7B%22running%22%3Atrue%7D%7D&limit=3" {
		t.Fatalf("ps call %q", calls[0])
	}
	out, _, _ = d.wharf("ps", "-q", "--no-trunc")
	if out != fakeID+"\n" {
		t.Fatalf("ps -q %q", out)
	}
	out, _, _ = d.wharf("ps", "--format", "{{.Names}}\t{{.State}}")
	if out != "web\trunning\n" {
		t.Fatalf("ps format %q", out)
	}

	d.route("GET /images/json", func(w http.ResponseWriter, r *http.Request) {
		jsonReply(w, 200, []map[string]any{
			{"Id": "sha256:3d32c953a1d2fef0e0e5f92a661d8e3070267b8d28ec0a619356203e256de605", "RepoTags": []string{"busybox:latest", "localhost:5000/bb:v1"},
				"RepoDigests": []string{}, "Created": created, "Size": 1984000, "Containers": -1, "SharedSize": -1},
			{"Id": "sha256:aebce1086ad1091a3503762b1a1c30f010af5e4c7736bbff8ec9077df4fbafef", "RepoTags": []string{}, "RepoDigests": []string{},
				"Created": created, "Size": 106000000, "Containers": -1, "SharedSize": -1},
		})
	})
	out, _, _ = d.wharf("images")
	want = "REPOSITORY          TAG       IMAGE ID       CREATED       SIZE\n" +
		"busybox             latest    3d32c953a1d2   2 hours ago   1.98MB\n" +
		"localhost:5000/bb   v1        3d32c953a1d2   2 hours ago   1.98MB\n" +
		"<none>              <none>    aebce1086ad1   2 hours ago   106MB\n"
	if out != want {
		t.Fatalf("images:\n%s\nwant:\n%s", out, want)
	}
	out, _, _ = d.wharf("image", "ls", "-q")
	if out != "3d32c953a1d2\n3d32c953a1d2\naebce1086ad1\n" {
		t.Fatalf("images -q %q", out)
	}
}

func TestInspectFallsBackAcrossTypes(t *testing.T) {
	d := newFakeDaemon(t)
	d.route("GET /containers/bb/json", func(w http.ResponseWriter, r *http.Request) { replyError(w, 404, "No such container: bb") })
	d.route("GET /images/bb/json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"Id":"sha256:abc","Config":{"Cmd":["sh"]},"Size":1984000,"Extra":{"Deep":7}}`))
	})
	d.route("GET /containers/none/json", func(w http.ResponseWriter, r *http.Request) { replyError(w, 404, "No such container: none") })
	d.route("GET /images/none/json", func(w http.ResponseWriter, r *http.Request) { replyError(w, 404, "No such image: none") })
	d.route("GET /networks/none", func(w http.ResponseWriter, r *http.Request) { replyError(w, 404, "network none not found") })
	d.route("GET /volumes/none", func(w http.ResponseWriter, r *http.Request) { replyError(w, 404, "get none: no such volume") })
	out, errOut, code := d.wharf("inspect", "bb")
	if code != 0 || out != "[\n    {\n        \"Id\": \"sha256:abc\",\n        \"Config\": {\n            \"Cmd\": [\n                \"sh\"\n            ]\n        },\n        \"Size\": 1984000,\n        \"Extra\": {\n            \"Deep\": 7\n        }\n    }\n]\n" {
		t.Fatalf("inspect: %d %q %q", code, out, errOut)
	}
	out, _, code = d.wharf("inspect", "-f", "{{.Config.Cmd}} {{.Size}} {{.Extra.Deep}}", "bb")
	if code != 0 || out != "[sh] 1984000 7\n" {
		t.Fatalf("inspect format (raw fallback): %d %q", code, out)
	}
	out, _, code = d.wharf("inspect", "-f", "{{.Id}}", "bb")
	if code != 0 || out != "sha256:abc\n" {
		t.Fatalf("inspect typed: %d %q", code, out)
	}
	out, errOut, code = d.wharf("inspect", "none")
	if code != 1 || out != "[]\n" || errOut != "Error: No such object: none\n" {
		t.Fatalf("inspect missing: %d %q %q", code, out, errOut)
	}
	out, errOut, code = d.wharf("container", "inspect", "none")
	if code != 1 || out != "[]\n" || errOut != "Error response from daemon: No such container: none\n" {
		t.Fatalf("container inspect missing: %d %q %q", code, out, errOut)
	}
}
