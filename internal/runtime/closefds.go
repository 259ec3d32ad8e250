package runtime

/*
#define _GNU_SOURCE
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/resource.h>

// A shim lives as long as its container: it must not keep open what the
// daemon happened to inherit without close-on-exec (a pipe of whoever
// started the daemon, say). Before the Go runtime starts, close every
// descriptor above the start-report pipe (3) ("1"), or above the control pipe
// (4) of a shim that has one ("2"; "3" for an idle shim). Only when started as a shim.
__attribute__((constructor)) static void wharf_shim_close_fds(void) {
	const char *v = getenv("_WHARF_SHIM_CLOSE_FDS");
	if (v == NULL || (v[0] != '1' && v[0] != '2' && v[0] != '3')) return;
	unsigned int from = v[0] == '1' ? 4U : 5U;
	// An idle shim boots while the container that made it be started still runs: at the lowest
	// priority, so that it takes what CPU that one leaves. Every thread inherits it from here; all
	// are put back to normal once a container is handed over (warmShimID), before anything forks.
	if (v[0] == '3') setpriority(PRIO_PROCESS, 0, 19);
#ifdef SYS_close_range
	if (syscall(SYS_close_range, from, ~0U, 0U) == 0) return;
#endif
	long max = 1024;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 1048576) max = (long)rl.rlim_cur;
	for (long fd = from; fd < max; fd++) close((int)fd);
}
*/
import "C"

// shimCloseFdsEnv makes the shim close inherited descriptors before its Go runtime starts;
// shimCloseFdsCtlEnv does the same for a shim that keeps its control pipe (fd 4), and
// shimCloseFdsIdleEnv for an idle shim, which also boots at the lowest priority.
const (
	shimCloseFdsEnv     = "_WHARF_SHIM_CLOSE_FDS=1"
	shimCloseFdsCtlEnv  = "_WHARF_SHIM_CLOSE_FDS=2"
	shimCloseFdsIdleEnv = "_WHARF_SHIM_CLOSE_FDS=3"
)
