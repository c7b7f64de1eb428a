/*
 * dp_ctl.h — the control socket (dp_ctl*.c): a unix socket whose JSON-lines requests
 * (docs/architecture.md) the control thread answers, asking owner cores through their mailboxes.
 */
#ifndef DP_CTL_H
#define DP_CTL_H

#include "dp.h"

/** Start / stop the control socket thread (unix socket at path). Returns 0 or -errno. */
int dp_ctl_start(struct dp_node *node, const char *path);
void dp_ctl_stop(void);

#endif /* DP_CTL_H */
