/*
 * test_ctl_req.c — a control request has exactly one holder: the owner's finish and the
 * control thread's abandon race for it, and whichever loses leaves it to the winner
 * (dp_ctl_req.h). The race test frees the request on the side that ends up holding it:
 * under ASan a double free or a use after free (the old history timeout) fails the test.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "dp_ctl_req.h"

#define RACE_ROUNDS 20000

/* A stand-in for struct dp_req: its state and something the owner writes. */
struct fake_req {
    atomic_int state;
    uint64_t answer;
};

/* dp_ctl_req_free is the daemon's (dp_ctl.c); this test never calls it. */
void dp_ctl_req_free(struct dp_req *req)
{
    (void)req;
    fail_msg("not used by this test");
}

static void test_answered(void **state)
{
    (void)state;
    atomic_int s = DP_CTL_REQ_IDLE;
    dp_ctl_req_post(&s);
    assert_false(dp_ctl_req_answered(&s));
    assert_true(dp_ctl_req_finish(&s)); /* the owner hands it back */
    assert_true(dp_ctl_req_answered(&s));
    assert_int_equal(atomic_load(&s), DP_CTL_REQ_DONE);
    dp_ctl_req_post(&s); /* a DONE request may be asked again (history's retry) */
    assert_int_equal(atomic_load(&s), DP_CTL_REQ_POSTED);
}

static void test_abandoned_is_the_owners(void **state)
{
    (void)state;
    atomic_int s = DP_CTL_REQ_IDLE;
    dp_ctl_req_post(&s);
    assert_true(dp_ctl_req_abandon(&s)); /* the control thread must forget it */
    assert_int_equal(atomic_load(&s), DP_CTL_REQ_ABANDONED);
    assert_false(dp_ctl_req_finish(&s)); /* the owner must free it */
}

static void test_answer_wins_over_late_abandon(void **state)
{
    (void)state;
    atomic_int s = DP_CTL_REQ_IDLE;
    dp_ctl_req_post(&s);
    assert_true(dp_ctl_req_finish(&s));
    assert_false(dp_ctl_req_abandon(&s)); /* answered just in time: still the caller's */
    assert_int_equal(atomic_load(&s), DP_CTL_REQ_DONE);
}

static void test_withdraw(void **state)
{
    (void)state;
    atomic_int s = DP_CTL_REQ_IDLE;
    dp_ctl_req_post(&s);
    dp_ctl_req_withdraw(&s); /* the mailbox was full */
    assert_int_equal(atomic_load(&s), DP_CTL_REQ_IDLE);
    dp_ctl_req_post(&s);
    assert_int_equal(atomic_load(&s), DP_CTL_REQ_POSTED);
}

/* The owner side of the race: take requests from a one-slot mailbox, answer, and free the
 * ones abandoned meanwhile. */
struct race {
    _Atomic(struct fake_req *) mailbox;
    atomic_bool stop;
    atomic_uint owner_freed;
};

static void *race_owner(void *arg)
{
    struct race *r = arg;
    while (!atomic_load(&r->stop) || atomic_load(&r->mailbox)) {
        struct fake_req *req = atomic_exchange(&r->mailbox, NULL);
        if (!req)
            continue;
        req->answer = 42; /* writes the request: must never be after the control thread freed it */
        if (!dp_ctl_req_finish(&req->state)) {
            free(req);
            atomic_fetch_add(&r->owner_freed, 1);
        }
    }
    return NULL;
}

static void test_race_exactly_one_holder(void **state)
{
    (void)state;
    struct race r = { .mailbox = NULL };
    pthread_t owner;
    assert_int_equal(pthread_create(&owner, NULL, race_owner, &r), 0);
    unsigned control_freed = 0, answered = 0;
    for (unsigned i = 0; i < RACE_ROUNDS; i++) {
        struct fake_req *req = calloc(1, sizeof(*req));
        assert_non_null(req);
        dp_ctl_req_post(&req->state);
        while (atomic_load(&r.mailbox))
            ; /* one request in flight at a time, like one control thread */
        atomic_store(&r.mailbox, req);
        /* give up after a varying number of polls: sometimes before, sometimes after */
        bool done = false;
        for (unsigned spin = 0; spin < i % 64 && !done; spin++)
            done = dp_ctl_req_answered(&req->state);
        if (done || !dp_ctl_req_abandon(&req->state)) {
            assert_int_equal(req->answer, 42); /* the answer is visible once DONE */
            answered++;
            free(req);
            control_freed++;
        }
        /* else: abandoned, the owner frees it; req must not be touched again */
    }
    atomic_store(&r.stop, true);
    pthread_join(owner, NULL);
    assert_int_equal(control_freed + atomic_load(&r.owner_freed), RACE_ROUNDS);
    assert_int_equal(answered, control_freed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answered),
        cmocka_unit_test(test_abandoned_is_the_owners),
        cmocka_unit_test(test_answer_wins_over_late_abandon),
        cmocka_unit_test(test_withdraw),
        cmocka_unit_test(test_race_exactly_one_holder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
