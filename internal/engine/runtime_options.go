package engine

import (
	"github.com/moby/moby/api/types/container"

	"github.com/wharfhq/wharf/internal/runtime"
)

// validateRuntimeOptions checks --ulimit, --sysctl and --shm-size at create, as dockerd does, so a bad one fails `docker create`, not a later start.
func validateRuntimeOptions(hc *container.HostConfig) error {
	for _, u := range runtimeUlimits(hc) {
		if err := runtime.ValidateUlimit(u); err != nil {
			return Invalid("%v", err)
		}
	}
	for k := range hc.Sysctls {
		if err := runtime.ValidateSysctl(k, hc.IpcMode.IsHost(), hc.NetworkMode.IsHost()); err != nil {
			return Invalid("%v", err)
		}
	}
	if hc.ShmSize < 0 {
		return Invalid("SHM size can not be less than 0")
	}
	// a missing --device fails at start, as with dockerd (docker run then exits 127)
	return nil
}

func runtimeUlimits(hc *container.HostConfig) []runtime.Ulimit {
	var out []runtime.Ulimit
	for _, u := range hc.Ulimits {
		if u != nil {
			out = append(out, runtime.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
		}
	}
	return out
}

func runtimeDevices(hc *container.HostConfig) []runtime.Device {
	var out []runtime.Device
	for _, d := range hc.Devices {
		out = append(out, runtime.Device{PathOnHost: d.PathOnHost, PathInContainer: d.PathInContainer, Permissions: d.CgroupPermissions})
	}
	return out
}
