package runtime

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestValidateSysctl(t *testing.T) {
	for _, tc := range []struct {
		name             string
		hostIPC, hostNet bool
		ok               bool
	}{
		{"net.ipv4.ip_forward", false, false, true},
		{"net.ipv4.ip_forward", false, true, false},
		{"kernel.shmmax", false, false, true},
		{"kernel.sem", false, false, true},
		{"fs.mqueue.msg_max", false, false, true},
		{"kernel.msgmax", true, false, false},
		{"kernel.hostname", false, false, false}, // UTS: docker wants --hostname
		{"vm.swappiness", false, false, false},
	} {
		if err := ValidateSysctl(tc.name, tc.hostIPC, tc.hostNet); (err == nil) != tc.ok {
			t.Errorf("%s (hostIPC %v hostNet %v): %v", tc.name, tc.hostIPC, tc.hostNet, err)
		}
	}
}

func TestRlimits(t *testing.T) {
	rl, err := rlimits([]Ulimit{{Name: "nofile", Soft: 100, Hard: 200}, {Name: "core", Soft: -1, Hard: -1}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[int][2]uint64{}
	for _, r := range rl {
		got[r.Type] = [2]uint64{r.Soft, r.Hard}
	}
	if got[unix.RLIMIT_NOFILE] != [2]uint64{100, 200} || got[unix.RLIMIT_CORE] != [2]uint64{unix.RLIM_INFINITY, unix.RLIM_INFINITY} || len(rl) != 2 {
		t.Fatalf("rlimits: %v", rl)
	}
	for _, bad := range []Ulimit{{Name: "bogus", Soft: 1, Hard: 1}, {Name: "nofile", Soft: 10, Hard: 5}} {
		if _, err := rlimits([]Ulimit{bad}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
