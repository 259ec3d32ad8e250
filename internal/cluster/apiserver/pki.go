package apiserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// writeFileAtomic writes data to path via a synced temp file and a rename.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

type pki struct {
	caPEM   []byte
	caCert  *x509.Certificate
	caKey   *ecdsa.PrivateKey
	serving tls.Certificate
	token   string
}

func newSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func encodeKey(k *ecdsa.PrivateKey) []byte {
	der, _ := x509.MarshalECPrivateKey(k)
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func decodeCertKey(certPEM, keyPEM []byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, errors.New("bad PEM")
	}
	c, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	k, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	return c, k, nil
}

// servingSANs are the names the serving certificate must cover.
func servingSANs(extra []string) ([]string, []net.IP) {
	dns := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP("10.43.0.1")}
	if h, err := os.Hostname(); err == nil && h != "" {
		dns = append(dns, h)
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLinkLocalUnicast() {
				ips = append(ips, ipn.IP)
			}
		}
	}
	for _, e := range extra {
		if ip := net.ParseIP(e); ip != nil {
			ips = append(ips, ip)
		} else if e != "" {
			dns = append(dns, e)
		}
	}
	return dns, ips
}

func coversAll(c *x509.Certificate, dns []string, ips []net.IP) bool {
	for _, d := range dns {
		if !slices.Contains(c.DNSNames, d) {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

// loadOrCreatePKI makes (at first start) or loads the CA, the serving
// certificate and the bearer token under dir.
func loadOrCreatePKI(dir string, extraSANs []string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &pki{}
	caCrt, caKeyF := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	certPEM, err1 := os.ReadFile(caCrt)
	keyPEM, err2 := os.ReadFile(caKeyF)
	if err1 == nil && err2 == nil {
		c, k, err := decodeCertKey(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", caCrt, err)
		}
		p.caCert, p.caKey, p.caPEM = c, k, certPEM
	} else {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		now := time.Now()
		tmpl := &x509.Certificate{
			SerialNumber:          newSerial(),
			Subject:               pkix.Name{CommonName: fmt.Sprintf("wharf-ca@%d", now.Unix())},
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.AddDate(10, 0, 0),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			BasicConstraintsValid: true,
			IsCA:                  true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		if err != nil {
			return nil, err
		}
		p.caCert, _ = x509.ParseCertificate(der)
		p.caKey = k
		p.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		if err := writeFileAtomic(caKeyF, encodeKey(k), 0o600); err != nil {
			return nil, err
		}
		if err := writeFileAtomic(caCrt, p.caPEM, 0o600); err != nil {
			return nil, err
		}
		// a new CA invalidates any old serving cert
		os.Remove(filepath.Join(dir, "serving.crt"))
	}

	dns, ips := servingSANs(extraSANs)
	sCrt, sKey := filepath.Join(dir, "serving.crt"), filepath.Join(dir, "serving.key")
	certPEM, err1 = os.ReadFile(sCrt)
	keyPEM, err2 = os.ReadFile(sKey)
	reuse := false
	if err1 == nil && err2 == nil {
		if c, _, err := decodeCertKey(certPEM, keyPEM); err == nil &&
			time.Until(c.NotAfter) > 30*24*time.Hour && coversAll(c, dns, ips) &&
			c.CheckSignatureFrom(p.caCert) == nil {
			reuse = true
		}
	}
	if !reuse {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		now := time.Now()
		tmpl := &x509.Certificate{
			SerialNumber: newSerial(),
			Subject:      pkix.Name{CommonName: "kube-apiserver", Organization: []string{"wharf"}},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.AddDate(1, 0, 0),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			DNSNames:     dns,
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &k.PublicKey, p.caKey)
		if err != nil {
			return nil, err
		}
		certPEM = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), p.caPEM...)
		keyPEM = encodeKey(k)
		if err := writeFileAtomic(sKey, keyPEM, 0o600); err != nil {
			return nil, err
		}
		if err := writeFileAtomic(sCrt, certPEM, 0o600); err != nil {
			return nil, err
		}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	p.serving = cert

	tokF := filepath.Join(dir, "token")
	if b, err := os.ReadFile(tokF); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		p.token = strings.TrimSpace(string(b))
	} else {
		buf := make([]byte, 32)
		if _, err := rand.Read(buf); err != nil {
			return nil, err
		}
		p.token = hex.EncodeToString(buf)
		if err := writeFileAtomic(tokF, []byte(p.token+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *pki) tokenOK(got string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(p.token)) == 1
}

// ContextName is the kubeconfig cluster, user and context name.
const ContextName = "wharf"

func buildKubeconfig(server string, caPEM []byte, token string) *clientcmdapi.Config {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[ContextName] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[ContextName] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[ContextName] = &clientcmdapi.Context{Cluster: ContextName, AuthInfo: ContextName, Namespace: "default"}
	cfg.CurrentContext = ContextName
	return cfg
}

func writeKubeconfig(path string, cfg *clientcmdapi.Config) error {
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, data, 0o600)
}

// MergeKubeconfig merges the cluster, user and context "wharf" of the
// kubeconfig at path into <home>/.kube/config (creating it), replacing any
// older "wharf" entries. The context becomes current only when the file has
// no current context, or when use is true (`wharf kubeconfig --use`).
func MergeKubeconfig(path, home string, use bool) error {
	src, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return fmt.Errorf("read kubeconfig %s: %w", path, err)
	}
	if src.Clusters[ContextName] == nil || src.AuthInfos[ContextName] == nil || src.Contexts[ContextName] == nil {
		return fmt.Errorf("kubeconfig %s has no %q context", path, ContextName)
	}
	dst := filepath.Join(home, ".kube", "config")
	cfg := clientcmdapi.NewConfig()
	if _, err := os.Stat(dst); err == nil {
		if cfg, err = clientcmd.LoadFromFile(dst); err != nil {
			return fmt.Errorf("read kubeconfig %s: %w", dst, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	cfg.Clusters[ContextName] = src.Clusters[ContextName]
	cfg.AuthInfos[ContextName] = src.AuthInfos[ContextName]
	cfg.Contexts[ContextName] = src.Contexts[ContextName]
	if use || cfg.CurrentContext == "" {
		cfg.CurrentContext = ContextName
	}
	// LocationOfOrigin fields are not written by clientcmd.Write
	return writeKubeconfig(dst, cfg)
}
