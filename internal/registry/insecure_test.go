package registry

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestNormalizeInsecureRegistries(t *testing.T) {
	got, err := NormalizeInsecureRegistries([]string{"198.18.0.0/15", "http://myreg:5000", "https://10.1.2.3:443/", "myreg:5000", "[::2]:5000", "reg.example", "10.9.8.7/8"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"198.18.0.0/15", "myreg:5000", "10.1.2.3:443", "[::2]:5000", "reg.example", "10.0.0.0/8"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"ftp://x:5000", "x:notaport", "x:0", "a..b", "-x.example", "x y", ""} {
		if _, err := NormalizeInsecureRegistries([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := NormalizeInsecureRegistries([]string{"ftp://x"}); err == nil || err.Error() != "insecure registry ftp://x should not contain '://'" {
		t.Errorf("scheme: %v", err)
	}
}

func TestInsecureCIDRAndNames(t *testing.T) {
	c := &Client{Insecure: []string{"198.18.0.0/15", "myreg:5000", "bare.example", "127.0.0.0/8"}}
	for host, want := range map[string]bool{
		"198.18.3.4:5000": true, "198.19.255.1": true, "198.20.0.1:5000": false,
		"myreg:5000": true, "myreg:5001": false, "bare.example:443": true, "bare.example": true,
		"localhost:5000": true, "[::1]:5000": true, "10.0.0.1:5000": false,
	} {
		if got := c.plainHTTPAllowed(host); got != want {
			t.Errorf("%s: %v, want %v", host, got, want)
		}
	}
	// Names are resolved for CIDR matches, as dockerd does ("localhost" → 127.0.0.1).
	if !(&Client{Insecure: []string{"127.0.0.0/8"}}).insecureHost("localhost:5000") {
		t.Error("localhost not matched by 127.0.0.0/8")
	}
}

func TestServiceConfig(t *testing.T) {
	c := &Client{Insecure: []string{"198.18.0.0/15", "myreg:5000"}}
	b, _ := json.Marshal(c.ServiceConfig())
	var sc struct {
		InsecureRegistryCIDRs []string
		IndexConfigs          map[string]struct {
			Name     string
			Secure   bool
			Official bool
			Mirrors  []string
		}
	}
	if err := json.Unmarshal(b, &sc); err != nil {
		t.Fatal(err)
	}
	if strings.Join(sc.InsecureRegistryCIDRs, ",") != "::1/128,127.0.0.0/8,198.18.0.0/15" {
		t.Errorf("CIDRs: %v", sc.InsecureRegistryCIDRs)
	}
	if ic := sc.IndexConfigs["myreg:5000"]; ic.Name != "myreg:5000" || ic.Secure || ic.Official || ic.Mirrors == nil {
		t.Errorf("myreg: %+v", ic)
	}
	if ic := sc.IndexConfigs["docker.io"]; !ic.Secure || !ic.Official {
		t.Errorf("docker.io: %+v", ic)
	}
	if len(sc.IndexConfigs) != 2 {
		t.Errorf("index configs: %s", b)
	}
}

func TestTokenAuthConfig(t *testing.T) {
	c := &ServerConfig{Root: t.TempDir(), Addr: "127.0.0.1:0", Token: &TokenAuth{Realm: "http://127.0.0.1:1/token"}}
	if _, err := c.configuration(); err == nil || !strings.Contains(err.Error(), "token authentication needs") {
		t.Errorf("incomplete token config: %v", err)
	}
	c.Htpasswd = "/nonexistent"
	if _, err := c.configuration(); err == nil || !strings.Contains(err.Error(), "exclusive") {
		t.Errorf("htpasswd and token: %v", err)
	}
	c.Htpasswd = ""
	c.Token = &TokenAuth{Realm: "http://127.0.0.1:1/token", Service: "s", Issuer: "i", RootCertBundle: "/x/ca.pem"}
	cfg, err := c.configuration()
	if err != nil {
		t.Fatal(err)
	}
	tok, ok := cfg.Auth["token"]
	if !ok || tok["realm"] != "http://127.0.0.1:1/token" || tok["service"] != "s" || tok["issuer"] != "i" || tok["rootcertbundle"] != "/x/ca.pem" {
		t.Errorf("auth section: %v", cfg.Auth)
	}
}
