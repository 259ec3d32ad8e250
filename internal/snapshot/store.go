package snapshot

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// Store keeps unpacked layers and container writable layers under one root:
//
//	<root>/layers/<chainID hex>/fs          read-only layer trees (overlay lower dirs)
//	<root>/layers/.tmp-*                     layers being unpacked or deleted (removed by New)
//	<root>/containers/<key>/{upper,work}     a container's writable layer
//	<root>/containers/<key>/rootfs           where its overlay is mounted
//	<root>/containers/<key>/lowers           the chain IDs it was prepared with
//	<root>/empty                             the lower dir of an image without layers
type Store struct {
	root string

	mu       sync.Mutex // guards inflight
	inflight map[string]*unpackCall

	mountMu sync.Mutex // serialises Prepare/Unmount/Remove/RemoveLayer

	overlayOpts []string // extra overlay options this kernel accepted (index=off, …)
	optsProbed  bool
}

var _ API = (*Store)(nil)

type unpackCall struct {
	done chan struct{}
	err  error
}

var keyRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// New opens (creating if needed) the snapshot store at root and removes what an interrupted
// unpack or delete left behind.
func New(root string) (*Store, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	s := &Store{root: root, inflight: map[string]*unpackCall{}}
	for _, d := range []string{s.layersDir(), s.containersDir(), s.emptyDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	os.Chmod(s.emptyDir(), 0o755)
	ents, err := os.ReadDir(s.layersDir())
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			if err := os.RemoveAll(filepath.Join(s.layersDir(), e.Name())); err != nil {
				return nil, err
			}
		}
	}
	// Container dirs whose removal was interrupted (never one with a mounted rootfs).
	if ents, err := os.ReadDir(s.containersDir()); err == nil {
		for _, e := range ents {
			p := filepath.Join(s.containersDir(), e.Name())
			if strings.HasPrefix(e.Name(), ".tmp-") && !mounted(filepath.Join(p, "rootfs")) {
				os.RemoveAll(p)
			}
		}
	}
	// The empty lower dir must stay empty.
	if ents, err := os.ReadDir(s.emptyDir()); err == nil && len(ents) > 0 {
		os.RemoveAll(s.emptyDir())
		if err := os.Mkdir(s.emptyDir(), 0o755); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Root returns the store's directory.
func (s *Store) Root() string { return s.root }

func (s *Store) layersDir() string     { return filepath.Join(s.root, "layers") }
func (s *Store) containersDir() string { return filepath.Join(s.root, "containers") }
func (s *Store) emptyDir() string      { return filepath.Join(s.root, "empty") }

func chainHex(chainID digest.Digest) (string, error) {
	if err := chainID.Validate(); err != nil || chainID.Algorithm() != digest.SHA256 {
		return "", fmt.Errorf("invalid chain ID %q", chainID)
	}
	return chainID.Encoded(), nil
}

// LayerDir returns the directory holding the unpacked tree of a layer (whether or not it exists).
func (s *Store) LayerDir(chainID digest.Digest) string {
	return filepath.Join(s.layersDir(), chainID.Encoded(), "fs")
}

// HasLayer implements API.
func (s *Store) HasLayer(chainID digest.Digest) bool {
	if _, err := chainHex(chainID); err != nil {
		return false
	}
	st, err := os.Stat(s.LayerDir(chainID))
	return err == nil && st.IsDir()
}

// Unpack implements API. The layer is extracted into a temp dir that is renamed into place
// when complete, so a half-unpacked layer is never visible; concurrent calls for one chain ID
// unpack it once.
func (s *Store) Unpack(chainID digest.Digest, open func() (io.ReadCloser, error)) error {
	hex, err := chainHex(chainID)
	if err != nil {
		return err
	}
	if s.HasLayer(chainID) {
		return nil
	}
	s.mu.Lock()
	if c, ok := s.inflight[hex]; ok {
		s.mu.Unlock()
		<-c.done
		return c.err
	}
	c := &unpackCall{done: make(chan struct{})}
	s.inflight[hex] = c
	s.mu.Unlock()

	c.err = s.unpack(chainID, hex, open)

	s.mu.Lock()
	delete(s.inflight, hex)
	s.mu.Unlock()
	close(c.done)
	return c.err
}

func (s *Store) unpack(chainID digest.Digest, hex string, open func() (io.ReadCloser, error)) error {
	if s.HasLayer(chainID) {
		return nil
	}
	tmp, err := os.MkdirTemp(s.layersDir(), ".tmp-"+hex[:12]+"-")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	fs := filepath.Join(tmp, "fs")
	if err := os.Mkdir(fs, 0o755); err != nil {
		return err
	}
	rc, err := open()
	if err != nil {
		return err
	}
	err = extractLayer(rc, fs)
	rc.Close()
	if err != nil {
		return fmt.Errorf("unpack layer %s: %w", chainID, err)
	}
	if err := os.Chmod(tmp, 0o700); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(s.layersDir(), hex)); err != nil {
		if s.HasLayer(chainID) { // someone else (another process) won the race
			return nil
		}
		return err
	}
	ok = true
	return nil
}

// RemoveLayer implements API. A layer that a prepared container still uses is not removed.
func (s *Store) RemoveLayer(chainID digest.Digest) error {
	hex, err := chainHex(chainID)
	if err != nil {
		return err
	}
	s.mountMu.Lock()
	defer s.mountMu.Unlock()
	if user := s.layerUser(chainID); user != "" {
		return fmt.Errorf("layer %s is in use by container %s", chainID, user)
	}
	dir := filepath.Join(s.layersDir(), hex)
	if _, err := os.Lstat(dir); os.IsNotExist(err) {
		return nil
	}
	tmp := filepath.Join(s.layersDir(), ".tmp-del-"+hex)
	os.RemoveAll(tmp)
	if err := os.Rename(dir, tmp); err != nil {
		return err
	}
	return os.RemoveAll(tmp)
}

func (s *Store) layerUser(chainID digest.Digest) string {
	ents, _ := os.ReadDir(s.containersDir())
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(s.containersDir(), e.Name(), "lowers"))
		if err != nil {
			continue
		}
		for _, l := range strings.Fields(string(b)) {
			if l == chainID.String() {
				return e.Name()
			}
		}
	}
	return ""
}

func (s *Store) keyDir(key string) (string, error) {
	if !keyRE.MatchString(key) {
		return "", fmt.Errorf("invalid snapshot key %q", key)
	}
	return filepath.Join(s.containersDir(), key), nil
}

// UpperDir implements API.
func (s *Store) UpperDir(key string) string {
	return filepath.Join(s.containersDir(), key, "upper")
}

// RootfsDir returns where key's rootfs is (or would be) mounted.
func (s *Store) RootfsDir(key string) string {
	return filepath.Join(s.containersDir(), key, "rootfs")
}

// Prepare implements API. Calling it again for a mounted key returns the mount; for an
// unmounted key (a stopped container, or after a daemon restart) it mounts again over the
// kept upper dir. The lowers must be the ones key was first prepared with.
func (s *Store) Prepare(key string, lowers []digest.Digest) (string, error) {
	dir, err := s.keyDir(key)
	if err != nil {
		return "", err
	}
	var lowerDirs []string
	for i := len(lowers) - 1; i >= 0; i-- { // overlay wants the top layer first
		if !s.HasLayer(lowers[i]) {
			return "", fmt.Errorf("prepare %s: layer %s is not unpacked", key, lowers[i])
		}
		lowerDirs = append(lowerDirs, s.LayerDir(lowers[i]))
	}
	if len(lowerDirs) == 0 {
		lowerDirs = []string{s.emptyDir()}
	}
	var ids []string
	for _, l := range lowers {
		ids = append(ids, l.String())
	}
	want := strings.Join(ids, "\n") + "\n"

	s.mountMu.Lock()
	defer s.mountMu.Unlock()
	rootfs := filepath.Join(dir, "rootfs")
	if b, err := os.ReadFile(filepath.Join(dir, "lowers")); err == nil && len(b) > 0 {
		if string(b) != want {
			return "", fmt.Errorf("prepare %s: snapshot exists with different layers", key)
		}
		if mounted(rootfs) {
			return rootfs, nil
		}
	} else if err != nil && !os.IsNotExist(err) {
		return "", err
	}
	for _, d := range []string{"upper", "work", "rootfs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", err
		}
	}
	// Not fsync'd (≈ 0.4 ms of every create): after a power loss the file is whole or empty, and an
	// empty one counts as missing (the check above); its content follows from the image anyway.
	if err := writeFileReplace(filepath.Join(dir, "lowers"), []byte(want)); err != nil {
		return "", err
	}
	if err := s.mountOverlay(lowerDirs, filepath.Join(dir, "upper"), filepath.Join(dir, "work"), rootfs); err != nil {
		return "", fmt.Errorf("prepare %s: %w", key, err)
	}
	return rootfs, nil
}

// Unmount implements API.
func (s *Store) Unmount(key string) error {
	dir, err := s.keyDir(key)
	if err != nil {
		return err
	}
	s.mountMu.Lock()
	defer s.mountMu.Unlock()
	return unmount(filepath.Join(dir, "rootfs"))
}

// Remove implements API.
func (s *Store) Remove(key string) error {
	dir, err := s.keyDir(key)
	if err != nil {
		return err
	}
	s.mountMu.Lock()
	defer s.mountMu.Unlock()
	rootfs := filepath.Join(dir, "rootfs")
	if err := unmount(rootfs); err != nil {
		return err
	}
	if mounted(rootfs) {
		return fmt.Errorf("remove %s: rootfs is still mounted", key)
	}
	tmp := filepath.Join(s.containersDir(), ".tmp-del-"+key)
	os.RemoveAll(tmp)
	if err := os.Rename(dir, tmp); err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	return os.RemoveAll(tmp)
}

// Diff implements API.
func (s *Store) Diff(key string, w io.Writer) error {
	if _, err := s.keyDir(key); err != nil {
		return err
	}
	return diffTree(s.UpperDir(key), w)
}

// mounted reports whether something is mounted on dir (its device differs from its parent's).
func mounted(dir string) bool {
	var st, pst unix.Stat_t
	if unix.Lstat(dir, &st) != nil || unix.Lstat(filepath.Dir(dir), &pst) != nil {
		return false
	}
	return st.Dev != pst.Dev
}

func unmount(target string) error {
	if !mounted(target) {
		return nil
	}
	err := unix.Unmount(target, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(target, unix.MNT_DETACH)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	return nil
}

// writeFileReplace replaces path with data through a temporary file and a rename (no fsync).
func writeFileReplace(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// Keys lists the writable layers there are (mounted or not), for sweeping those no container owns.
func (s *Store) Keys() ([]string, error) {
	ents, err := os.ReadDir(s.containersDir())
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var keys []string
	for _, e := range ents {
		if e.IsDir() && keyRE.MatchString(e.Name()) {
			keys = append(keys, e.Name())
		}
	}
	return keys, nil
}
