package runtime

import (
	"os"
	"path/filepath"
	"testing"
)

// The flag is set through a private mount that is undone, keeps the root flags already set, and a
// second call finds it on and changes nothing.
func TestFavorDynmods(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if !inInitCgroupNS() {
		t.Skip("not in the host's cgroup namespace")
	}
	before, found, err := cgroup2Flags()
	if err != nil {
		t.Fatal(err)
	}
	scratch := filepath.Join(t.TempDir(), "cg2")
	on, _, err := FavorDynmods(scratch)
	if err != nil {
		t.Fatal(err)
	}
	if !on {
		t.Fatal("favordynmods is not on after FavorDynmods")
	}
	if _, err := os.Stat(scratch); !os.IsNotExist(err) {
		t.Errorf("scratch mount point left behind: %v", err)
	}
	if found {
		after, _, _ := cgroup2Flags()
		if !after[favorDynmodsFlag] {
			t.Errorf("the host's cgroup2 mount does not show %s: %v", favorDynmodsFlag, after)
		}
		for f := range before {
			if cgroup2RootFlags[f] && !after[f] {
				t.Errorf("root flag %s was cleared", f)
			}
		}
	}
	on, changed, err := FavorDynmods(scratch)
	if err != nil || !on || (found && changed) { // with no cgroup2 mounted, the flag cannot be read back
		t.Errorf("second call: on=%v changed=%v err=%v, want on, unchanged", on, changed, err)
	}
}
