// prctl(2) is variadic, which Swift cannot call: a fixed-arity wrapper for the one use hsmd has.
#ifndef HSMD_CPROCESSHARDENING_H
#define HSMD_CPROCESSHARDENING_H

#include <sys/prctl.h>

/// Marks the process non-dumpable: no core file, and no ptrace or /proc/PID/mem access by other
/// processes of the same user. Returns 0 on success, -1 with errno set.
static inline int hsmd_disable_dumping(void) {
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

#endif
