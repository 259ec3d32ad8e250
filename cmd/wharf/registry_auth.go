package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// Credentials live where the docker CLI keeps them ($DOCKER_CONFIG/config.json, else ~/.docker/config.json),
// as base64 "user:password" in "auths", so wharf and docker share logins.

const defaultRegistry = "https://index.docker.io/v1/"

func configDir(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "/root"
	}
	return filepath.Join(home, ".docker")
}

// configFile is the part of config.json wharf reads and writes; other keys are kept as they are.
type configFile struct {
	path  string
	raw   map[string]json.RawMessage
	Auths map[string]authEntry
}

type authEntry struct {
	Auth          string `json:"auth,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
}

func loadConfigFile(dir string) (*configFile, error) {
	cf := &configFile{path: filepath.Join(dir, "config.json"), raw: map[string]json.RawMessage{}, Auths: map[string]authEntry{}}
	data, err := os.ReadFile(cf.path)
	if errors.Is(err, os.ErrNotExist) {
		return cf, nil
	}
	if err != nil {
		return nil, err
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return cf, nil
	}
	if err := json.Unmarshal(data, &cf.raw); err != nil {
		return nil, fmt.Errorf("loading config file: %s: %w", cf.path, err)
	}
	if a, ok := cf.raw["auths"]; ok {
		_ = json.Unmarshal(a, &cf.Auths)
	}
	return cf, nil
}

// save writes config.json atomically (temp file, fsync, rename), mode 0600.
func (cf *configFile) save() error {
	auths, err := json.Marshal(cf.Auths)
	if err != nil {
		return err
	}
	cf.raw["auths"] = auths
	data, err := json.MarshalIndent(cf.raw, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(cf.path), 0o700); err != nil {
		return err
	}
	return writeFileAtomic(cf.path, data, 0o600)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
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
	return os.Rename(tmp, path)
}

// registryKey is the config.json key for an image's registry.
func registryKey(domain string) string {
	if domain == "" || domain == "docker.io" || domain == "index.docker.io" || domain == "registry-1.docker.io" {
		return defaultRegistry
	}
	return domain
}

func (cf *configFile) lookup(key string) (registry.AuthConfig, bool) {
	for _, k := range []string{key, "https://" + key, "http://" + key, strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")} {
		e, ok := cf.Auths[k]
		if !ok {
			continue
		}
		ac := registry.AuthConfig{ServerAddress: key, IdentityToken: e.IdentityToken}
		if e.Auth != "" {
			if dec, err := base64.StdEncoding.DecodeString(e.Auth); err == nil {
				ac.Username, ac.Password, _ = strings.Cut(string(dec), ":")
			}
		}
		return ac, true
	}
	return registry.AuthConfig{ServerAddress: key}, false
}

// registryAuthFor returns the X-Registry-Auth value for an image reference ("" when nothing is stored).
func registryAuthFor(img string) string {
	named, err := reference.ParseNormalizedNamed(img)
	if err != nil {
		return ""
	}
	cf, err := loadConfigFile(configDir(""))
	if err != nil {
		return ""
	}
	ac, ok := cf.lookup(registryKey(reference.Domain(named)))
	if !ok {
		return ""
	}
	enc, err := authconfig.Encode(ac)
	if err != nil {
		return ""
	}
	return enc
}

type loginOptions struct {
	server        string
	user          string
	password      string
	passwordStdin bool
}

func (c *cli) newLoginCommand() *cobra.Command {
	var o loginOptions
	cmd := &cobra.Command{
		Use:   "login [OPTIONS] [SERVER]",
		Short: "Authenticate to a registry",
		Args:  requiresMaxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				o.server = args[0]
			}
			return c.runLogin(&o)
		},
	}
	flags := cmd.Flags()
	flags.StringVarP(&o.user, "username", "u", "", "Username")
	flags.StringVarP(&o.password, "password", "p", "", "Password or Personal Access Token (PAT)")
	flags.BoolVar(&o.passwordStdin, "password-stdin", false, "Take the Password or Personal Access Token (PAT) from stdin")
	return cmd
}

func (c *cli) runLogin(o *loginOptions) error {
	if o.password != "" {
		fmt.Fprintln(c.err, "WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
		if o.passwordStdin {
			return errors.New("--password and --password-stdin are mutually exclusive")
		}
	}
	if o.passwordStdin {
		if o.user == "" {
			return errors.New("Must provide --username with --password-stdin")
		}
		b, err := io.ReadAll(c.in)
		if err != nil {
			return err
		}
		o.password = strings.TrimRight(strings.TrimSuffix(string(b), "\n"), "\r")
	}
	server := o.server
	if server == "" {
		server = defaultRegistry
	}
	reader := bufio.NewReader(c.in)
	if o.user == "" {
		fmt.Fprintf(c.out, "Username: ")
		line, _ := reader.ReadString('\n')
		o.user = strings.TrimSpace(line)
		if o.user == "" {
			return errors.New("Error: Non-null Username Required")
		}
	}
	if o.password == "" {
		fmt.Fprintf(c.out, "Password: ")
		if fd, ok := isTerminal(c.in); ok {
			b, err := term.ReadPassword(int(fd))
			fmt.Fprintln(c.out)
			if err != nil {
				return err
			}
			o.password = string(b)
		} else {
			line, _ := reader.ReadString('\n')
			o.password = strings.TrimRight(line, "\r\n")
		}
		if o.password == "" {
			return errors.New("Error: Password Required")
		}
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	res, err := api.RegistryLogin(c.ctx, client.RegistryLoginOptions{Username: o.user, Password: o.password, ServerAddress: server})
	if err != nil {
		return err
	}
	cf, err := loadConfigFile(configDir(c.opts.config))
	if err != nil {
		return err
	}
	entry := authEntry{Auth: base64.StdEncoding.EncodeToString([]byte(o.user + ":" + o.password))}
	if res.Auth.IdentityToken != "" {
		entry = authEntry{IdentityToken: res.Auth.IdentityToken, Auth: base64.StdEncoding.EncodeToString([]byte(o.user + ":"))}
	}
	cf.Auths[server] = entry
	if err := cf.save(); err != nil {
		return fmt.Errorf("Error saving credentials: %w", err)
	}
	status := res.Auth.Status
	if status == "" {
		status = "Login Succeeded"
	}
	fmt.Fprintln(c.out, status)
	return nil
}

func (c *cli) newLogoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Log out from a registry",
		Args:  requiresMaxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := defaultRegistry
			if len(args) > 0 {
				server = args[0]
			}
			cf, err := loadConfigFile(configDir(c.opts.config))
			if err != nil {
				return err
			}
			found := false
			for _, k := range []string{server, "https://" + server, "http://" + server} {
				if _, ok := cf.Auths[k]; ok {
					delete(cf.Auths, k)
					found = true
				}
			}
			if !found {
				fmt.Fprintf(c.out, "Not logged in to %s\n", server)
				return nil
			}
			fmt.Fprintf(c.out, "Removing login credentials for %s\n", server)
			return cf.save()
		},
	}
}
