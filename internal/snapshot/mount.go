package snapshot

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Overlay options that keep upper dirs representable as layer tars: no redirects (renamed
// lower directories) and no metacopy (metadata-only copy-ups), and no inode index, so the same
// lower layers can be shared by any number of mounts. Older kernels lack some; the mount is
// retried without the ones they reject.
var wantedOverlayOpts = []string{"index=off", "redirect_dir=off", "metacopy=off"}

func (s *Store) extraOpts() []string {
	if s.optsProbed {
		return s.overlayOpts
	}
	var opts []string
	for _, o := range wantedOverlayOpts {
		name := strings.SplitN(o, "=", 2)[0]
		// A loaded overlay module lists its parameters; when it is not loaded yet, assume a
		// modern kernel (mountOverlay falls back if the kernel disagrees).
		if _, err := os.Stat("/sys/module/overlay/parameters/" + name); err == nil || os.IsNotExist(statModule()) {
			opts = append(opts, o)
		}
	}
	return opts
}

func statModule() error { _, err := os.Stat("/sys/module/overlay"); return err }

// mountOverlay mounts overlay(lower…, upper) on target. lowers are top first. When the option
// string does not fit in one page (many layers), the new mount API passes each lower dir on its
// own ("lowerdir+", Linux 6.8+).
func (s *Store) mountOverlay(lowers []string, upper, work, target string) error {
	extra := s.extraOpts()
	err := s.tryMount(lowers, upper, work, target, extra)
	if err != nil && errors.Is(err, unix.EINVAL) && len(extra) > 0 {
		if err2 := s.tryMount(lowers, upper, work, target, nil); err2 == nil {
			s.overlayOpts, s.optsProbed = nil, true
			return nil
		}
	}
	if err == nil {
		s.overlayOpts, s.optsProbed = extra, true
	}
	return err
}

func (s *Store) tryMount(lowers []string, upper, work, target string, extra []string) error {
	opts := append([]string{"lowerdir=" + strings.Join(lowers, ":"), "upperdir=" + upper, "workdir=" + work}, extra...)
	data := strings.Join(opts, ",")
	if len(data) < os.Getpagesize()-1 {
		if err := unix.Mount("overlay", target, "overlay", 0, data); err != nil {
			return fmt.Errorf("mount overlay on %s: %w", target, err)
		}
		return nil
	}
	return mountOverlayFsconfig(lowers, upper, work, target, extra)
}

func mountOverlayFsconfig(lowers []string, upper, work, target string, extra []string) error {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("mount overlay on %s: %d layers need the new mount API: %w", target, len(lowers), err)
	}
	defer unix.Close(fsfd)
	set := func(k, v string) error {
		if err := unix.FsconfigSetString(fsfd, k, v); err != nil {
			return fmt.Errorf("mount overlay on %s: %s: %w", target, k, err)
		}
		return nil
	}
	if err := set("source", "overlay"); err != nil {
		return err
	}
	for _, l := range lowers {
		if err := set("lowerdir+", l); err != nil {
			return fmt.Errorf("%w (overlay needs Linux 6.8+ for %d layers)", err, len(lowers))
		}
	}
	if err := set("upperdir", upper); err != nil {
		return err
	}
	if err := set("workdir", work); err != nil {
		return err
	}
	for _, o := range extra {
		kv := strings.SplitN(o, "=", 2)
		if err := set(kv[0], kv[1]); err != nil {
			return err
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("mount overlay on %s: %w", target, err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("mount overlay on %s: %w", target, err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("mount overlay on %s: %w", target, err)
	}
	return nil
}
