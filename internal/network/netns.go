package network

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// removeNetNS unmounts and removes a network namespace file. Missing files are not an error.
func removeNetNS(path string) error {
	if path == "" || path == "host" {
		return nil
	}
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting network namespace %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing network namespace %s: %w", path, err)
	}
	return nil
}
