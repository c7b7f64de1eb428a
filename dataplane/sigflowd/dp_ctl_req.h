/*
 * dp_ctl_req.h — who holds a control request posted to an owner's mailbox.
 *
 * The control thread allocates a request (struct dp_req, with any buffers it hangs off it:
 * a describe's instance, a list's entries: dp_req.h), posts it to an owner's mailbox ring
 * and waits, up to a deadline, for the answer. A request is held by exactly one side at a time; its
 * `state` says which:
 *
 *   IDLE ──post──> POSTED ──owner: finish──> DONE       (the control thread's again)
 *                      └────control: abandon──> ABANDONED (the owner frees it on finishing)
 *
 * post: the control thread, before the enqueue (withdraw puts it back to IDLE when the ring
 * was full). finish and abandon both compare-and-swap POSTED away, so exactly one of them
 * wins: an owner that finishes first hands the answer back (release ordering: every write
 * to the request happens before the control thread sees DONE); a control thread that gives
 * up first forgets the request, and the owner, finding ABANDONED, frees it. A DONE request
 * may be posted again (history's retry). No lock, no allocation; DPDK-free.
 */
#ifndef DP_CTL_REQ_H
#define DP_CTL_REQ_H

#include <stdatomic.h>
#include <stdbool.h>

enum dp_ctl_req_state {
    DP_CTL_REQ_IDLE = 0,  /* the control thread's: never posted, or withdrawn */
    DP_CTL_REQ_POSTED,    /* in the mailbox or being answered: the owner's */
    DP_CTL_REQ_DONE,      /* answered: the control thread's */
    DP_CTL_REQ_ABANDONED, /* the control thread gave up: the owner frees it when it is done */
};

/** Control thread: mark the request posted, just before the enqueue. It must be IDLE or
 *  DONE (asserted). Can't fail. */
void dp_ctl_req_post(atomic_int *state);

/** Control thread: the enqueue failed, the request never reached the owner: back to IDLE.
 *  It must be POSTED (asserted). Can't fail. */
void dp_ctl_req_withdraw(atomic_int *state);

/** Control thread: has the owner answered? (acquire: the answer is then visible). */
bool dp_ctl_req_answered(atomic_int *state);

/** Control thread, on its deadline: give the request up. true: it is ABANDONED, the owner
 *  will free it, the caller must not touch it again. false: the owner answered meanwhile
 *  (DONE): the caller holds it as after a success. Can't fail. */
bool dp_ctl_req_abandon(atomic_int *state);

/** Owner, after writing its answer. true: DONE, the control thread takes the request back.
 *  false: it was ABANDONED: the owner must free the request now (dp_ctl_req_free). */
bool dp_ctl_req_finish(atomic_int *state);

struct dp_req;

/** Free an abandoned request and the buffers the control thread hung off it for its kind
 *  (dp_req.h; each NULL or its own malloc). Defined in dp_ctl.c, where they are allocated;
 *  called by the owner that finds the request abandoned. Can't fail. */
void dp_ctl_req_free(struct dp_req *req);

#endif
