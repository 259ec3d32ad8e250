package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRegistryTLS: `wharf registry --tls-cert --tls-key` serves HTTPS; a loopback registry is trusted without
// verification (as dockerd treats localhost registries), so push, pull and run work over TLS.
func TestRegistryTLS(t *testing.T) {
	d := needWharf(t)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, cert, key)
	addr := startRegistry(t, d, "--tls-cert", cert, "--tls-key", key)
	forEachClient(t, func(t *testing.T, c cli) {
		ref := fmt.Sprintf("%s/tls/busybox-%s:1", addr, c.name)
		c.ok(t, "tag", "busybox:latest", ref)
		defer c.run(t, "", "rmi", ref)
		if out := c.ok(t, "push", ref); !strings.Contains(out, "1: digest: sha256:") {
			t.Fatalf("push over TLS:\n%s", out)
		}
		c.ok(t, "rmi", ref)
		c.ok(t, "pull", ref)
		if got := strings.TrimSpace(c.ok(t, "run", "--rm", ref, "echo", "tls ok")); got != "tls ok" {
			t.Errorf("run: %q", got)
		}
	})
}

func writeSelfSigned(t *testing.T, certPath, keyPath string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "wharf-test-registry"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
}
