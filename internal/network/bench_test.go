package network

import (
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"testing"
	"time"
)

// Figures only: no timing assertions. Run with
//   go test -run XXX -bench . -benchtime 50x ./internal/network/

func med(d []time.Duration) float64 {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return float64(d[len(d)/2].Microseconds()) / 1000
}

func reportPhases(b *testing.B, attach, detach, gc []time.Duration) {
	b.ReportMetric(med(attach), "attach-ms")
	b.ReportMetric(med(detach), "detach-ms")
	if gc != nil {
		b.ReportMetric(med(gc), "bg-veth-del-ms")
	}
}

// benchAttachDetach: medians of Attach, of Detach, and of the background veth deletion that follows
// Detach (waited for outside the Attach/Detach figures when spaced; when not, the next Attach overlaps
// it and pays for the kernel's rtnl lock instead).
func benchAttachDetach(b *testing.B, nports int, network string, spaced bool) {
	m, _ := newTestManager(b)
	ports := make([]PortBinding, nports)
	for i := range ports {
		ports[i] = PortBinding{ContainerPort: uint16(1000 + i)}
	}
	var at, dt, gt []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("%06dbench0000", i)
		t0 := time.Now()
		if _, err := m.Attach(AttachRequest{ContainerID: id, Network: network, Ports: ports}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := m.Detach(id); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		at, dt = append(at, t1.Sub(t0)), append(dt, t2.Sub(t1))
		if spaced {
			m.waitAllVeths()
			gt = append(gt, time.Since(t2))
		}
	}
	reportPhases(b, at, dt, gt)
}

func BenchmarkAttachDetach(b *testing.B)           { benchAttachDetach(b, 0, "bridge", true) }
func BenchmarkAttachDetachBackToBack(b *testing.B) { benchAttachDetach(b, 0, "bridge", false) }
func BenchmarkAttachDetach1Port(b *testing.B)      { benchAttachDetach(b, 1, "bridge", true) }
func BenchmarkAttachDetach100Ports(b *testing.B)   { benchAttachDetach(b, 100, "bridge", true) }
func BenchmarkAttachDetachNoneNet(b *testing.B)    { benchAttachDetach(b, 0, "none", true) }

// Attach while 50 other containers with 2 ports each are attached (rule listing cost on Detach).
func BenchmarkAttachDetach1PortBusy(b *testing.B) {
	m, _ := newTestManager(b)
	for i := 0; i < 50; i++ {
		attach(b, m, fmt.Sprintf("%06dbusy000000", i), PortBinding{ContainerPort: 80}, PortBinding{ContainerPort: 53, Proto: "udp"})
	}
	var at, dt []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("%06dbench0000", i)
		t0 := time.Now()
		attach(b, m, id, PortBinding{ContainerPort: 80})
		t1 := time.Now()
		if err := m.Detach(id); err != nil {
			b.Fatal(err)
		}
		at, dt = append(at, t1.Sub(t0)), append(dt, time.Since(t1))
		m.waitAllVeths()
	}
	reportPhases(b, at, dt, nil)
}

// ---- loopback publishing: kernel DNAT (what Wharf does) vs a userland proxy (what Docker does by default) ----

func echoServer(b *testing.B, nsPath string, payload int) {
	var l net.Listener
	if err := inNS(b, nsPath, func() (err error) { l, err = net.Listen("tcp4", ":80"); return err }); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	buf := make([]byte, payload)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				one := make([]byte, 1)
				if _, err := c.Read(one); err != nil {
					return
				}
				if one[0] == 'b' {
					c.Write(buf)
				} else {
					c.Write([]byte("ok\n"))
				}
			}()
		}
	}()
}

// userlandProxy forwards 127.0.0.1:port to target, one goroutine pair per connection (docker-proxy style).
func userlandProxy(b *testing.B, target string) string {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp4", target)
				if err != nil {
					return
				}
				defer u.Close()
				done := make(chan struct{})
				go func() { io.Copy(u, c); u.(*net.TCPConn).CloseWrite(); close(done) }()
				io.Copy(c, u)
				c.(*net.TCPConn).CloseWrite()
				<-done
			}()
		}
	}()
	return l.Addr().String()
}

func loopbackTargets(b *testing.B, payload int) map[string]string {
	m, _ := newTestManager(b)
	a := attach(b, m, "loopbench0000001", PortBinding{HostIP: "127.0.0.1", ContainerPort: 80})
	echoServer(b, a.NetNSPath, payload)
	direct := a.IP.String() + ":80"
	return map[string]string{
		"direct":   direct,
		"dnat":     "127.0.0.1:" + strconv.Itoa(int(a.Ports[0].HostPort)),
		"userland": userlandProxy(b, direct),
	}
}

// One connection + one tiny request/response per op.
func BenchmarkLoopbackConnect(b *testing.B) {
	targets := loopbackTargets(b, 1)
	// DNAT first: NATed and direct connections from the gateway address to the same container port reuse
	// each other's server-side TIME_WAIT tuples with unrelated sequence numbers (see the report).
	for _, name := range []string{"dnat", "userland", "direct"} {
		addr := targets[name]
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				c, err := net.Dial("tcp4", addr)
				if err != nil {
					b.Fatal(err)
				}
				c.Write([]byte("s"))
				if _, err := io.ReadAll(c); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

// 16 MiB per op from the container to the host.
func BenchmarkLoopbackBulk(b *testing.B) {
	const size = 16 << 20
	targets := loopbackTargets(b, size)
	// DNAT first: NATed and direct connections from the gateway address to the same container port reuse
	// each other's server-side TIME_WAIT tuples with unrelated sequence numbers (see the report).
	for _, name := range []string{"dnat", "userland", "direct"} {
		addr := targets[name]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(size)
			for i := 0; i < b.N; i++ {
				c, err := net.Dial("tcp4", addr)
				if err != nil {
					b.Fatal(err)
				}
				c.Write([]byte("b"))
				n, err := io.Copy(io.Discard, c)
				if err != nil || n != size {
					b.Fatalf("%d bytes, %v", n, err)
				}
				c.Close()
			}
		})
	}
}
