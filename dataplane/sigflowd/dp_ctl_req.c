/*
 * dp_ctl_req.c — the ownership state machine of a control request (see dp_ctl_req.h).
 */
#include "dp_ctl_req.h"

#include <stdlib.h>

void dp_ctl_req_post(atomic_int *state)
{
    int s = atomic_load_explicit(state, memory_order_relaxed);
    if (s != DP_CTL_REQ_IDLE && s != DP_CTL_REQ_DONE)
        abort(); /* posting a request the owner still holds: a programmer error */
    /* relaxed: the mailbox enqueue that follows publishes the request with release */
    atomic_store_explicit(state, DP_CTL_REQ_POSTED, memory_order_relaxed);
}

void dp_ctl_req_withdraw(atomic_int *state)
{
    int expected = DP_CTL_REQ_POSTED;
    if (!atomic_compare_exchange_strong_explicit(state, &expected, DP_CTL_REQ_IDLE,
                                                 memory_order_relaxed, memory_order_relaxed))
        abort(); /* withdrawn after the owner could see it */
}

bool dp_ctl_req_answered(atomic_int *state)
{
    return atomic_load_explicit(state, memory_order_acquire) == DP_CTL_REQ_DONE;
}

bool dp_ctl_req_abandon(atomic_int *state)
{
    int expected = DP_CTL_REQ_POSTED;
    if (atomic_compare_exchange_strong_explicit(state, &expected, DP_CTL_REQ_ABANDONED,
                                                memory_order_acq_rel, memory_order_acquire))
        return true;
    if (expected != DP_CTL_REQ_DONE)
        abort(); /* abandoned twice, or never posted */
    return false;
}

bool dp_ctl_req_finish(atomic_int *state)
{
    int expected = DP_CTL_REQ_POSTED;
    if (atomic_compare_exchange_strong_explicit(state, &expected, DP_CTL_REQ_DONE,
                                                memory_order_acq_rel, memory_order_acquire))
        return true;
    if (expected != DP_CTL_REQ_ABANDONED)
        abort(); /* answered twice, or never posted */
    return false;
}
