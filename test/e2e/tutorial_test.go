package e2e

import (
	"net"
	"os"
	"strings"
	"testing"
)

// TestTutorialPart2RunNginx is part 2 of ../shared/tutorial/TUTORIAL.md with a pre-built image:
// `docker run -d -p 8080:80 --name my-first-container nginx` serves a page on localhost:8080.
func TestTutorialPart2RunNginx(t *testing.T) {
	d := needDaemon(t)
	if os.Getenv("WHARF_E2E_FAST") != "" {
		t.Skip("WHARF_E2E_FAST: skipping the nginx image")
	}
	if err := loadBaseImages(d, "nginx"); err != nil {
		t.Fatal(err)
	}
	port := "8080"
	if l, err := net.Listen("tcp", ":8080"); err != nil {
		port = "18088" // something else holds 8080 on this machine
	} else {
		l.Close()
	}
	for _, c := range clients(t, d) {
		t.Run(c.name, func(t *testing.T) {
			c.ok(t, "run", "-d", "-p", port+":80", "--name", "my-first-container", "nginx")
			defer c.run(t, "", "rm", "-f", "my-first-container")
			body := httpGet(t, "http://localhost:"+port+"/")
			if !strings.Contains(body, "Welcome to nginx") {
				t.Fatalf("GET localhost:%s: %q", port, body)
			}
			waitFor(t, func() bool { return strings.Contains(c.ok(t, "logs", "my-first-container"), "GET / HTTP/1.1") })
			if out := c.ok(t, "ps", "--format", "{{.Names}} {{.Ports}}"); !strings.Contains(out, "my-first-container 0.0.0.0:"+port+"->80/tcp") {
				t.Errorf("ps: %q", out)
			}
			// nginx's STOPSIGNAL is SIGQUIT: a graceful stop, well inside the timeout.
			c.ok(t, "stop", "my-first-container")
			if st := strings.TrimSpace(c.ok(t, "inspect", "-f", "{{.State.ExitCode}}", "my-first-container")); st != "0" {
				t.Errorf("exit code after stop: %s", st)
			}
		})
	}
}
