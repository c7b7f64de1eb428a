/* test_rt_text — a text field longer than its declared text(N) is refused whole
 * (RT_TEXT_TOO_LONG, ACK malformed, counted), never cut: CBOR and JSON, at N - 1, N and
 * N + 1 bytes of multi-byte UTF-8; replay decides alike; a store that may not fit does not
 * compile. */
#include "rt_test.h"

#define E2 "\xc3\xa9" /* é: 2 bytes, 1 code point */

/* inbox.flow: signal message(msg_id: int, body: text(32)), queue bodies: text(32)[4]. */
static const char *const body_31 = "a" E2 E2 E2 E2 E2 E2 E2 E2 E2 E2 E2 E2 E2 E2 E2;
static const char *const body_32 = E2 E2 E2 E2 E2 E2 E2 E2 E2 E2 E2 E2 E2 E2 E2 E2;
static const char *const body_33 = "a" E2 E2 E2 E2 E2 E2 E2 E2 E2 E2 E2 E2 E2 E2 E2 E2;

static int send_cbor(struct rt_env *e, const char *id, uint64_t eid, int64_t msg, const char *body)
{
    struct sf_value v[2] = { { .type = SF_VAL_INT, .i = msg },
                             { .type = SF_VAL_TEXT,
                               .text = { .ptr = body, .len = (uint16_t)strlen(body) } } };
    return rt_send(e, "inbox", id, "message", eid, T0 + eid * T_SEC, v, 2);
}

static int send_json(struct rt_env *e, const char *id, uint64_t eid, int64_t msg, const char *body)
{
    static char buf[256];
    snprintf(buf, sizeof(buf), "{\"msg_id\":%lld,\"body\":\"%s\"}", (long long)msg, body);
    return rt_send_json(e, "inbox", id, "message", eid, true, T0 + eid * T_SEC, buf);
}

typedef int (*send_fn)(struct rt_env *, const char *, uint64_t, int64_t, const char *);

/* The same sequence through one form; returns the partition digest of "u". */
static uint64_t run_sizes(struct rt_env *e, send_fn send)
{
    assert_int_equal(strlen(body_31), 31);
    assert_int_equal(strlen(body_32), 32);
    assert_int_equal(strlen(body_33), 33); /* 17 code points: bytes are what counts */
    struct rt_part *p = rt_part_of(e, rt_key("inbox", "u"));
    /* too long on a new id: nothing is created */
    assert_int_equal(send(e, "u", 1, 1, body_33), RT_TEXT_TOO_LONG);
    assert_int_equal(rt_part_count(p), 0);
    assert_int_equal(send(e, "u", 1, 1, body_31), RT_CREATED); /* runs process(1) */
    /* while process runs, bodies are queued: 32 bytes fit whole, 33 change nothing */
    assert_int_equal(send(e, "u", 2, 2, body_32), RT_APPLIED);
    uint64_t before = rt_part_digest(p);
    assert_int_equal(send(e, "u", 3, 3, body_33), RT_TEXT_TOO_LONG);
    assert_int_equal(rt_part_digest(p), before);
    /* event 3 was not applied: its id is still free for a body that fits */
    assert_int_equal(send(e, "u", 3, 3, body_31), RT_APPLIED);
    struct rt_describe d;
    rt_describe_of(e, "inbox", "u", &d);
    assert_int_equal(rt_var_int(&d, "received"), 3); /* 1, 2 and 3, not the refused ones */
    const struct rt_describe_queue *q = NULL;
    for (unsigned i = 0; i < d.nqueues; i++)
        if (strcmp(d.queues[i].name, "bodies") == 0)
            q = &d.queues[i];
    assert_non_null(q);
    assert_int_equal(q->len, 2);
    assert_int_equal(q->items[0].text.len, 32);
    assert_memory_equal(q->items[0].text.ptr, body_32, 32);
    assert_int_equal(q->items[1].text.len, 31);
    assert_memory_equal(q->items[1].text.ptr, body_31, 31);
    return rt_part_digest(p);
}

static void test_cbor_and_json_sizes(void **state)
{
    (void)state;
    struct rt_env e, j;
    rt_env_init(&e, 1, 100, 64, 64);
    rt_env_init(&j, 1, 100, 64, 64);
    rt_test_deploy(&e, rt_test_compile("inbox"));
    rt_test_deploy(&j, rt_test_compile("inbox"));
    uint64_t dc = run_sizes(&e, send_cbor);
    uint64_t dj = run_sizes(&j, send_json);
    assert_int_equal(dc, dj); /* both forms decide alike */
    struct rt_core_stats cs;
    rt_core_stats_get(e.core, &cs);
    assert_int_equal(cs.status[RT_TEXT_TOO_LONG], 2);
    assert_int_equal(cs.status[RT_BAD_FIELDS], 0);
    rt_core_stats_get(j.core, &cs);
    assert_int_equal(cs.status[RT_TEXT_TOO_LONG], 2);
    assert_int_equal(rt_status_ack(RT_TEXT_TOO_LONG), SF_ACK_MALFORMED);
    assert_string_equal(rt_status_name(RT_TEXT_TOO_LONG), "text_too_long");
    /* a wrong type is still bad_fields, before any length is looked at */
    struct sf_value bad[2] = { { .type = SF_VAL_TEXT, .text = { "x", 1 } },
                               { .type = SF_VAL_TEXT, .text = { body_33, 33 } } };
    assert_int_equal(rt_send(&e, "inbox", "v", "message", 1, T0, bad, 2), RT_BAD_FIELDS);
    rt_env_free(&e);
    rt_env_free(&j);
}

/* Replay: the same logged inputs on a fresh partition give the same decisions and bytes. */
static void test_replay_decides_alike(void **state)
{
    (void)state;
    struct rt_env a, b;
    rt_env_init(&a, 1, 100, 64, 64);
    rt_env_init(&b, 1, 100, 64, 64);
    rt_test_deploy(&a, rt_test_compile("inbox"));
    rt_test_deploy(&b, rt_test_compile("inbox"));
    static const char *const bodies[] = { body_33, body_31, body_32, body_33, "", body_32 };
    for (unsigned i = 0; i < 6; i++) {
        int sa = send_cbor(&a, "w", i + 1, (int64_t)i, bodies[i]);
        int sb = send_cbor(&b, "w", i + 1, (int64_t)i, bodies[i]);
        assert_int_equal(sa, sb);
        assert_int_equal(sa == RT_TEXT_TOO_LONG, strlen(bodies[i]) > 32);
    }
    assert_int_equal(rt_part_digest(a.part[0]), rt_part_digest(b.part[0]));
    rt_env_free(&a);
    rt_env_free(&b);
}

/* A handler's store: a value that may be longer than its destination does not compile
 * (docs/flow.md §4), so nothing is cut at run time. */
static void test_store_must_fit(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "workflow t version 1\nsignal s(b: text)\nvar v: text(8)\n"
        "state a:\n    on s:\n        v = b\n",
        "workflow t version 1\nsignal s(b: text(9))\nqueue q: text(8)[2]\n"
        "state a:\n    on s:\n        q.push(b)\n",
        "workflow t version 1\nsignal s()\nvar v: text(8)\nvar w: text(4)\n"
        "state a:\n    on s:\n        w = v\n",
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct flow_def *def = NULL;
        struct flow_errors errs;
        assert_int_not_equal(flow_compile_buffer("t.flow", bad[i], strlen(bad[i]), &def, &errs), 0);
        assert_null(def);
    }
    /* text(8) into text(8) compiles, and a field of 9 bytes is refused before the handler */
    struct flow_def *def = rt_test_compile_src("workflow t version 1\nsignal s(b: text(8))\n"
                                               "var v: text(8)\nstate a:\n    on s:\n"
                                               "        v = b\n");
    struct rt_env e;
    rt_env_init(&e, 1, 100, 64, 64);
    rt_test_deploy(&e, def);
    struct sf_value v = { .type = SF_VAL_TEXT, .text = { "123456789", 9 } };
    assert_int_equal(rt_send(&e, "t", "x", "s", 1, T0, &v, 1), RT_TEXT_TOO_LONG);
    v.text.len = 8;
    assert_int_equal(rt_send(&e, "t", "x", "s", 1, T0, &v, 1), RT_CREATED);
    struct rt_describe d;
    rt_describe_of(&e, "t", "x", &d);
    assert_int_equal(d.vars[0].value.text.len, 8);
    rt_env_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cbor_and_json_sizes),
        cmocka_unit_test(test_replay_decides_alike),
        cmocka_unit_test(test_store_must_fit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
