/* test_rt_fast — the owner core's fast path gives exactly what the general path gives: field
 * decoding straight into registers vs sf_fields_decode + the VM's field loading, the signal
 * plan's name lookup vs names compared byte by byte, whole runs through the fast path vs the
 * same runs forced through the general decoder (statuses, effects, digests, counts), and
 * the burst API (rt_prefetch_instance_ref + rt_apply_signal_ref) vs rt_apply_signal. */
#include "rt_internal.h"
#include "rt_test.h"

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

/* ---- field decoding ------------------------------------------------------------------ */

struct enc {
    uint8_t b[600];
    size_t n;
    bool fast_ok; /* only encodings the fast path is meant to take */
};

static void put_head(struct enc *e, unsigned major, uint64_t arg, unsigned width)
{
    if (width == 0 && arg >= 24)
        width = arg <= 0xff ? 1 : arg <= 0xffff ? 2 : arg <= 0xffffffffu ? 4 : 8;
    if (width == 0) {
        e->b[e->n++] = (uint8_t)(major << 5 | arg);
        return;
    }
    e->b[e->n++] = (uint8_t)(major << 5 | (width == 1   ? 24
                                           : width == 2 ? 25
                                           : width == 4 ? 26
                                                        : 27));
    for (unsigned i = width; i-- > 0;)
        e->b[e->n++] = (uint8_t)(arg >> (8 * i));
}

static unsigned rnd_width(uint64_t arg)
{
    unsigned min = arg < 24 ? 0 : arg <= 0xff ? 1 : arg <= 0xffff ? 2 : arg <= 0xffffffffu ? 4 : 8;
    static const unsigned w[5] = { 0, 1, 2, 4, 8 };
    unsigned k = (unsigned)(rnd() % 5);
    return w[k] < min ? min : w[k];
}

/* One random value of wire type t (0 null, else enum flow_type). Returns false when the
 * value is out of range (an integer beyond int64). */
static bool put_value(struct enc *e, unsigned t)
{
    bool in_range = true;
    switch (t) {
    case 0:
        e->b[e->n++] = 0xf6;
        break;
    case FLOW_T_INT: {
        uint64_t a = rnd() >> (rnd() % 64);
        if (rnd() % 16 == 0)
            a |= 1ull << 63; /* out of int64 range: refused */
        in_range = a <= (uint64_t)INT64_MAX;
        put_head(e, rnd() % 2 ? 0 : 1, a, rnd_width(a));
        break;
    }
    case FLOW_T_FLOAT: {
        unsigned k = (unsigned)(rnd() % 4);
        if (k == 0) { /* half */
            e->fast_ok = false;
            e->b[e->n++] = 0xf9;
            e->b[e->n++] = (uint8_t)rnd();
            e->b[e->n++] = (uint8_t)rnd();
        } else if (k == 1) { /* single */
            e->fast_ok = false;
            e->b[e->n++] = 0xfa;
            for (unsigned i = 0; i < 4; i++)
                e->b[e->n++] = (uint8_t)rnd();
        } else {
            uint64_t bits = rnd();
            e->b[e->n++] = 0xfb;
            for (unsigned i = 8; i-- > 0;)
                e->b[e->n++] = (uint8_t)(bits >> (8 * i));
        }
        break;
    }
    case FLOW_T_BOOL:
        e->b[e->n++] = rnd() % 2 ? 0xf5 : 0xf4;
        break;
    default: {
        unsigned len = (unsigned)(rnd() % 40);
        put_head(e, 3, len, rnd_width(len));
        for (unsigned i = 0; i < len; i++)
            e->b[e->n++] = (uint8_t)('a' + rnd() % 26);
    }
    }
    return in_range;
}

/* The general path: sf_fields_decode, the runtime's type check, the VM's field loading. */
static int ref_fields(const uint8_t *b, size_t len, const struct fb_sig_plan *sp,
                      union vm_reg *regs)
{
    struct sf_value v[FLOW_FIELDS_MAX];
    int n = sf_fields_decode(b, len, v, FLOW_FIELDS_MAX);
    if (n < 0)
        return -1;
    for (unsigned i = 0; i < sp->nfields; i++) {
        uint8_t want = sp->type[i];
        union vm_reg *r = &regs[i];
        if ((int)i >= n || v[i].type == SF_VAL_NULL) {
            r->t.p = "";
            r->t.n = 0;
            if (want != FLOW_T_TEXT)
                r->u = 0;
        } else if ((unsigned)v[i].type == want) {
            if (want == FLOW_T_TEXT) {
                r->t.p = v[i].text.ptr;
                r->t.n = v[i].text.len;
            } else if (want == FLOW_T_BOOL) {
                r->i = v[i].b;
            } else {
                memcpy(&r->u, &v[i].i, 8);
            }
        } else if (want == FLOW_T_FLOAT && v[i].type == SF_VAL_INT) {
            r->f = (double)v[i].i;
        } else {
            return -1;
        }
    }
    return 0;
}

static void check_one(const uint8_t *b, size_t len, const struct fb_sig_plan *sp, bool must_take,
                      unsigned *taken)
{
    union vm_reg fast[VM_REGS_MAX], ref[VM_REGS_MAX];
    memset(fast, 0xa5, sizeof(fast));
    memset(ref, 0x5a, sizeof(ref));
    int f = rt_fields_fast(b, len, sp, fast);
    int r = ref_fields(b, len, sp, ref);
    if (must_take)
        assert_int_equal(f, 0);
    if (f != 0)
        return; /* left to the general path: nothing claimed */
    (*taken)++;
    assert_int_equal(r, 0); /* the fast path accepts nothing the general path refuses */
    for (unsigned i = 0; i < sp->nfields; i++) {
        if (sp->type[i] == FLOW_T_TEXT) {
            assert_ptr_equal(fast[i].t.p, ref[i].t.p);
            assert_int_equal(fast[i].t.n, ref[i].t.n);
        } else {
            assert_int_equal(fast[i].u, ref[i].u);
        }
    }
}

static void test_fields_fast_vs_decoder(void **state)
{
    (void)state;
    unsigned taken = 0, total = 0, must = 0;
    for (unsigned iter = 0; iter < 200000; iter++) {
        struct fb_sig_plan sp = { .nfields = (uint8_t)(rnd() % 7) };
        for (unsigned i = 0; i < sp.nfields; i++)
            sp.type[i] = (uint8_t)(1 + rnd() % 4);
        struct enc e = { .n = 0, .fast_ok = true };
        unsigned count = (unsigned)(rnd() % 19);
        bool compat = true;
        if (rnd() % 8 == 0) {
            put_head(&e, 4, count, rnd_width(count));
        } else {
            put_head(&e, 4, count, 0);
        }
        if (count > FLOW_FIELDS_MAX || e.n != 1)
            e.fast_ok = false;
        for (unsigned i = 0; i < count; i++) {
            unsigned t = (unsigned)(rnd() % 5);
            if (i < sp.nfields && rnd() % 4 != 0)
                t = sp.type[i]; /* mostly the declared type */
            if (i < sp.nfields && rnd() % 16 == 0 && sp.type[i] == FLOW_T_FLOAT)
                t = FLOW_T_INT; /* an int for a float */
            if (!put_value(&e, t))
                compat = false;
            if (i < sp.nfields && t != 0 && t != sp.type[i] &&
                !(t == FLOW_T_INT && sp.type[i] == FLOW_T_FLOAT))
                compat = false;
        }
        bool empty = count == 0 && rnd() % 4 == 0; /* "no fields" as 0 bytes */
        size_t len = empty ? 0 : e.n;
        total++;
        must += e.fast_ok && compat;
        check_one(e.b, len, &sp, e.fast_ok && compat, &taken);
        /* damaged copies: a byte changed, truncated, a byte appended */
        if (len > 0) {
            uint8_t m[sizeof(e.b) + 1];
            memcpy(m, e.b, len);
            size_t at = (size_t)(rnd() % len);
            m[at] = (uint8_t)rnd();
            check_one(m, len, &sp, false, &taken);
            check_one(e.b, (size_t)(rnd() % len), &sp, false, &taken);
            memcpy(m, e.b, len);
            m[len] = (uint8_t)rnd();
            check_one(m, len + 1, &sp, false, &taken);
            total += 3;
        }
    }
    /* the usual encodings were common in the mix, and every one of them took the fast path */
    print_message("fast path: %u of %u inputs (%u had to)\n", taken, total, must);
    assert_true(must > 10000 && taken >= must);
}

/* ---- signal names -------------------------------------------------------------------- */

/* The plan's lookup, as the runtime makes it (flow_vm.h). */
static int plan_find(const struct flow_def *def, const char *name, size_t len)
{
    unsigned count;
    const struct fb_sig_plan *plans = flow_def_sig_plans(def, &count);
    assert_int_equal(count, flow_def_signal_count(def));
    return fb_sig_plan_find(plans, count, name, len);
}

/* The plan's lookup against a byte-by-byte search of the declared names. */
static void check_find(const struct flow_def *def, const char *name, size_t len)
{
    int want = -1;
    for (unsigned i = 0; i < flow_def_signal_count(def) && want < 0; i++) {
        const char *n = flow_def_signal_name(def, i);
        if (strlen(n) == len && memcmp(n, name, len) == 0)
            want = (int)i;
    }
    assert_int_equal(plan_find(def, name, len), want);
    assert_int_equal(flow_def_signal_index(def, name, len), want < 0 ? -ENOENT : want);
}

static void test_signal_find(void **state)
{
    (void)state;
    char src[8192];
    char names[40][FLOW_NAME_LEN_MAX + 1];
    size_t off = (size_t)snprintf(src, sizeof(src), "workflow names version 1\n");
    for (unsigned i = 0; i < 40; i++) { /* every length 1..31, distinct, not keywords */
        unsigned len = 1 + (i * 7) % FLOW_NAME_LEN_MAX;
        names[i][0] = (char)('a' + i % 26);
        for (unsigned k = 1; k < len; k++)
            names[i][k] = (char)('a' + (i * 31 + k * 7) % 26);
        if (len > 1)
            names[i][1] = 'q';
        if (i >= 26 && len > 1)
            names[i][len - 1] = (char)('0' + i % 10);
        names[i][len] = '\0';
        off += (size_t)snprintf(src + off, sizeof(src) - off, "signal %s()\n", names[i]);
    }
    snprintf(src + off, sizeof(src) - off, "state s:\n    on %s:\n        complete\n", names[0]);
    struct flow_def *def = rt_test_compile_src(src);
    assert_int_equal(flow_def_signal_count(def), 40);
    for (unsigned i = 0; i < 40; i++) {
        char buf[300];
        size_t len = strlen(names[i]);
        memset(buf, 'x', sizeof(buf));
        memcpy(buf, names[i], len);
        assert_int_equal(plan_find(def, buf, len), (int)i);
        check_find(def, buf, len);
        for (size_t k = 0; k < len; k++) { /* every one-byte change */
            char old = buf[k];
            buf[k] = (char)(old ^ (1 << (k % 8)));
            check_find(def, buf, len);
            buf[k] = '\0';
            check_find(def, buf, len);
            buf[k] = old;
        }
        for (size_t l = 0; l <= len + 2; l++) /* prefixes and longer names */
            check_find(def, buf, l);
        check_find(def, buf, 255);
    }
    flow_def_free(def);
}

/* rt_registry_type (word compares of padded names) against a byte-by-byte search. */
static void check_type(const struct rt_registry *reg, const char *name, size_t len)
{
    int want = -ENOENT;
    for (unsigned t = 0; t < reg->type_count && want < 0; t++)
        if (strlen(reg->types[t].name) == len && memcmp(reg->types[t].name, name, len) == 0)
            want = (int)t;
    assert_int_equal(rt_registry_type(reg, name, len), want);
}

static void test_registry_type(void **state)
{
    (void)state;
    struct rt_env e;
    rt_env_init(&e, 1, 10, 8, 8);
    static const char *more[4] = { "approval", "inbox", "order", "rollout" };
    for (unsigned i = 0; i < 4; i++)
        rt_test_deploy(&e, rt_test_compile(more[i]));
    rt_test_deploy(&e, rt_test_compile_src("workflow a version 1\nsignal s()\nstate x:\n"
                                           "    on s:\n        complete\n"));
    rt_test_deploy(&e, rt_test_compile_src("workflow abcdefghijklmnopqrstuvwxyz01234 version 1\n"
                                           "signal s()\nstate x:\n    on s:\n        complete\n"));
    assert_int_equal(e.reg->type_count, 8);
    for (unsigned t = 0; t < e.reg->type_count; t++) {
        char buf[300];
        size_t len = strlen(e.reg->types[t].name);
        memset(buf, 'z', sizeof(buf));
        memcpy(buf, e.reg->types[t].name, len);
        assert_int_equal(rt_registry_type(e.reg, buf, len), (int)t);
        for (size_t k = 0; k < len; k++) {
            char old = buf[k];
            buf[k] = (char)(old ^ 0x20);
            check_type(e.reg, buf, len);
            buf[k] = old;
        }
        for (size_t l = 0; l <= len + 2; l++)
            check_type(e.reg, buf, l);
        check_type(e.reg, buf, 255);
    }
    rt_env_free(&e);
}

/* ---- whole runs: fast path vs general path ------------------------------------------- */

static const char *probe_src = "workflow probe version 1\n"
                               "signal note(flag: bool, msg: text(16), x: float, n: int)\n"
                               "signal ping()\n"
                               "var flags: int = 0\n"
                               "var last: text(16) = \"\"\n"
                               "var sum: float = 0.0\n"
                               "var total: int = 0\n"
                               "state s:\n"
                               "    on note:\n"
                               "        if flag:\n"
                               "            flags += 1\n"
                               "        last = msg\n"
                               "        sum += x\n"
                               "        total += n\n"
                               "    on ping:\n"
                               "        total += 1\n";

static const char *loyalty_v2_src = "workflow loyalty version 2\n"
                                    "signal purchase(amount_cents: int)\n"
                                    "signal opt_out()\n"
                                    "var purchases: int = 0\n"
                                    "var bonus: int = 0\n"
                                    "state member:\n"
                                    "    on purchase:\n"
                                    "        purchases += 1\n"
                                    "        bonus += 2\n"
                                    "    on opt_out:\n"
                                    "        complete\n";

struct gen_ev {
    char type[16], id[16], signal[16];
    uint8_t fields[128];
    uint16_t fields_len;
    uint64_t event_id, now_ns;
};

/* A random signal: device / loyalty / probe, mostly well-typed fields, some not. */
static void gen_event(struct gen_ev *g, uint64_t *t, uint64_t step, unsigned ids)
{
    unsigned r = (unsigned)rnd();
    *t += (rnd() % 1000) * T_SEC;
    if (rnd() % 500 == 0)
        *t += 8 * T_DAY; /* tombstones expire (retention 7 days) */
    static const char *types[3] = { "device", "loyalty", "probe" };
    static const char *sigs[3][4] = { { "telemetry", "telemetry", "heartbeat", "decommission" },
                                      { "purchase", "purchase", "refund", "opt_out" },
                                      { "note", "note", "ping", "nosuch" } };
    unsigned ty = r % 3;
    snprintf(g->type, sizeof(g->type), "%s", types[ty]);
    snprintf(g->id, sizeof(g->id), "w-%u", (unsigned)(rnd() % ids));
    const char *sig = sigs[ty][(r >> 4) % 4];
    if (rnd() % 200 == 0)
        sig = "decommission"; /* rare completions */
    snprintf(g->signal, sizeof(g->signal), "%s", sig);
    struct sf_value v[6];
    unsigned n = 0;
    if (strcmp(sig, "telemetry") == 0) {
        v[n++] = (struct sf_value){ .type = SF_VAL_FLOAT, .f = (double)(rnd() % 900) / 8.0 };
        v[n++] = (struct sf_value){ .type = SF_VAL_INT, .i = rnd() % 4 == 0 ? 1 : 0 };
    } else if (strcmp(sig, "purchase") == 0 || strcmp(sig, "refund") == 0) {
        v[n++] = (struct sf_value){ .type = SF_VAL_INT, .i = (int64_t)(rnd() % 70000) - 1000 };
    } else if (strcmp(sig, "note") == 0) {
        static const char *msgs[3] = { "", "hello", "a much longer message than sixteen" };
        const char *m = msgs[rnd() % 3];
        v[n++] = (struct sf_value){ .type = SF_VAL_BOOL, .b = rnd() % 2 };
        v[n++] = (struct sf_value){ .type = SF_VAL_TEXT,
                                    .text = { .ptr = m, .len = (uint16_t)strlen(m) } };
        v[n++] = (struct sf_value){ .type = SF_VAL_FLOAT, .f = (double)(int64_t)rnd() / 1e9 };
        v[n++] = (struct sf_value){ .type = SF_VAL_INT, .i = (int64_t)rnd() };
    }
    /* variations: an int for a float, a null, a missing or extra field, a wrong type */
    unsigned k = (unsigned)(rnd() % 16);
    if (k == 0 && n > 0)
        v[0] = (struct sf_value){ .type = SF_VAL_INT, .i = 7 };
    else if (k == 1 && n > 0)
        v[n - 1] = (struct sf_value){ .type = SF_VAL_NULL };
    else if (k == 2 && n > 0)
        n--;
    else if (k == 3)
        v[n++] = (struct sf_value){ .type = SF_VAL_BOOL, .b = true };
    else if (k == 4 && n > 0)
        v[0] = (struct sf_value){ .type = SF_VAL_TEXT, .text = { .ptr = "x", .len = 1 } };
    int len = sf_fields_encode(g->fields, sizeof(g->fields), v, n);
    assert_true(len >= 0);
    g->fields_len = (uint16_t)len;
    g->event_id = rnd() % 10 == 0 ? step / 2 + 1 : step + 1; /* some duplicates and stale */
    g->now_ns = *t;
}

/* The same fields with a 2-byte array head: the fast path leaves them to the general one. */
static uint16_t slow_encoding(const uint8_t *in, uint16_t len, uint8_t *out)
{
    assert_true(len >= 1 && in[0] >= 0x80 && in[0] < 0x98);
    out[0] = 0x98;
    out[1] = (uint8_t)(in[0] - 0x80);
    memcpy(out + 2, in + 1, len - 1u);
    return (uint16_t)(len + 1);
}

static struct rt_event event_of(struct rt_env *e, const struct gen_ev *g, const uint8_t *fields,
                                uint16_t fields_len)
{
    struct rt_event ev = {
        .key = rt_key(g->type, g->id),
        .type = g->type,
        .id = g->id,
        .signal = g->signal,
        .fields = fields,
        .event_id = g->event_id,
        .now_ns = g->now_ns,
        .cause = ++e->lsn,
        .fields_len = fields_len,
        .type_len = (uint8_t)strlen(g->type),
        .id_len = (uint8_t)strlen(g->id),
        .signal_len = (uint8_t)strlen(g->signal),
        .has_event_id = true,
    };
    return ev;
}

static void assert_same_fx(const struct rt_effects *a, const struct rt_effects *b)
{
    assert_int_equal(a->inst_ref, b->inst_ref);
    assert_int_equal(a->def_id, b->def_id);
    assert_int_equal(a->tasks, b->tasks);
    assert_int_equal(a->cancels, b->cancels);
    assert_int_equal(a->completed, b->completed);
    assert_int_equal(a->vm_rc, b->vm_rc);
}

static void assert_same_env(struct rt_env *a, struct rt_env *b)
{
    for (unsigned i = 0; i < a->nparts; i++)
        assert_int_equal(rt_part_digest(a->part[i]), rt_part_digest(b->part[i]));
    struct rt_core_stats sa, sb;
    rt_core_stats_get(a->core, &sa);
    rt_core_stats_get(b->core, &sb);
    assert_memory_equal(&sa, &sb, sizeof(sa));
    for (unsigned d = 0; d < RT_DEFS_MAX; d++) {
        uint64_t ra, ca, rb, cb;
        rt_core_def_counts(a->core, d, &ra, &ca);
        rt_core_def_counts(b->core, d, &rb, &cb);
        assert_int_equal(ra, rb);
        assert_int_equal(ca, cb);
        for (unsigned s = 0; s < 4; s++)
            assert_int_equal(rt_core_state_count(a->core, d, s),
                             rt_core_state_count(b->core, d, s));
    }
}

/* Timers and activity results, the same on both sides. */
static void side_inputs(struct rt_env *e, uint64_t t, uint64_t r)
{
    rt_fire_due(e, t, NULL);
    struct rt_task task;
    if (rt_tasks_peek(e->core, &task) == 0) {
        rt_apply_activity_result(e->core, rt_part_of(e, task.key), task.key, task.act_index,
                                 task.seq, r % 3 == 0, 1, t, ++e->lsn, NULL);
        rt_tasks_pop(e->core);
    }
}

static void test_fast_path_same_state(void **state)
{
    (void)state;
    struct rt_env a, b;
    rt_env_init(&a, 3, 3000, 64, 512);
    rt_env_init(&b, 3, 3000, 64, 512);
    rt_test_deploy(&a, rt_test_compile_src(probe_src));
    rt_test_deploy(&b, rt_test_compile_src(probe_src));
    uint64_t t = T0;
    unsigned applied = 0, bad = 0;
    for (uint64_t s = 0; s < 20000; s++) {
        struct gen_ev g;
        gen_event(&g, &t, s, 400);
        uint8_t slow[160];
        uint16_t slow_len = slow_encoding(g.fields, g.fields_len, slow);
        struct rt_event ea = event_of(&a, &g, g.fields, g.fields_len);
        struct rt_event eb = event_of(&b, &g, slow, slow_len);
        struct rt_effects fa, fb;
        int sa = rt_apply_signal(a.core, rt_part_of(&a, ea.key), &ea, &fa);
        int sb = rt_apply_signal(b.core, rt_part_of(&b, eb.key), &eb, &fb);
        assert_int_equal(sa, sb);
        assert_same_fx(&fa, &fb);
        applied += sa == RT_APPLIED || sa == RT_CREATED;
        bad += sa == RT_BAD_FIELDS;
        if (s % 64 == 0) {
            uint64_t r = rnd();
            side_inputs(&a, t, r);
            side_inputs(&b, t, r);
        }
        if (s % 2500 == 0)
            assert_same_env(&a, &b);
    }
    assert_same_env(&a, &b);
    assert_true(applied > 5000 && bad > 100); /* both kinds were exercised */
    rt_env_free(&a);
    rt_env_free(&b);
}

/* ---- bursts: rt_apply_signal_ref vs rt_apply_signal ------------------------------------ */

static void test_apply_ref_burst(void **state)
{
    (void)state;
    struct rt_env a, b;
    rt_env_init(&a, 2, 2000, 64, 512);
    rt_env_init(&b, 2, 2000, 64, 512);
    rt_test_deploy(&a, rt_test_compile_src(probe_src));
    rt_test_deploy(&b, rt_test_compile_src(probe_src));
    uint64_t t = T0, step = 0;
    unsigned created = 0, restarted = 0;
    /* loyalty v1 workflows that complete now and get signals again after the v2 deploy */
    for (unsigned i = 0; i < 6; i++) {
        char id[16];
        snprintf(id, sizeof(id), "x-%u", i);
        struct rt_env *both[2] = { &a, &b };
        for (unsigned k = 0; k < 2; k++) {
            assert_int_equal(rt_purchase(both[k], id, 1, t, 100), RT_CREATED);
            assert_int_equal(rt_send(both[k], "loyalty", id, "opt_out", 2, t, NULL, 0), RT_APPLIED);
        }
    }
    for (unsigned burst = 0; burst < 1500; burst++) {
        if (burst == 700) { /* later restarts of loyalty tombstones land on another record */
            rt_test_deploy(&a, rt_test_compile_src(loyalty_v2_src));
            rt_test_deploy(&b, rt_test_compile_src(loyalty_v2_src));
        }
        unsigned n = 1 + (unsigned)(rnd() % 32);
        struct gen_ev g[32];
        struct rt_event eb[32];
        uint32_t ref[32];
        /* few ids: one burst creates, completes and restarts the same workflow */
        for (unsigned i = 0; i < n; i++) {
            gen_event(&g[i], &t, step++, 24);
            if (rnd() % 40 == 0)
                snprintf(g[i].signal, sizeof(g[i].signal), "%s",
                         strcmp(g[i].type, "loyalty") == 0 ? "opt_out" : "decommission");
        }
        for (unsigned i = 0; i < n; i++) {
            eb[i] = event_of(&b, &g[i], g[i].fields, g[i].fields_len);
            rt_prefetch(rt_part_of(&b, eb[i].key), eb[i].key);
        }
        for (unsigned i = 0; i < n; i++)
            ref[i] = rt_prefetch_instance_ref(rt_part_of(&b, eb[i].key), eb[i].key);
        for (unsigned i = 0; i < n; i++) {
            struct rt_event ea = event_of(&a, &g[i], g[i].fields, g[i].fields_len);
            struct rt_effects fa, fb;
            int sa = rt_apply_signal(a.core, rt_part_of(&a, ea.key), &ea, &fa);
            int sb = rt_apply_signal_ref(b.core, rt_part_of(&b, eb[i].key), &eb[i], ref[i], &fb);
            assert_int_equal(sa, sb);
            assert_same_fx(&fa, &fb);
            if (sa == RT_CREATED && ref[i] == RT_NONE)
                created++;
            else if (sa == RT_CREATED)
                restarted++;
        }
        uint64_t r = rnd();
        side_inputs(&a, t, r);
        side_inputs(&b, t, r);
    }
    /* one burst: two purchases for each expired v1 tombstone; the first restarts it on a v2
     * record, the second must find that record, not the tombstone its prefetch saw */
    t += 8 * T_DAY;
    struct gen_ev g[12];
    struct rt_event eb[12];
    uint32_t ref[12];
    for (unsigned i = 0; i < 12; i++) {
        memset(&g[i], 0, sizeof(g[i]));
        snprintf(g[i].type, sizeof(g[i].type), "loyalty");
        snprintf(g[i].id, sizeof(g[i].id), "x-%u", i % 6);
        snprintf(g[i].signal, sizeof(g[i].signal), "purchase");
        struct sf_value v = { .type = SF_VAL_INT, .i = 500 };
        g[i].fields_len = (uint16_t)sf_fields_encode(g[i].fields, sizeof(g[i].fields), &v, 1);
        g[i].event_id = 10 + i;
        g[i].now_ns = t;
        eb[i] = event_of(&b, &g[i], g[i].fields, g[i].fields_len);
        ref[i] = rt_prefetch_instance_ref(rt_part_of(&b, eb[i].key), eb[i].key);
        assert_int_not_equal(ref[i], RT_NONE);
    }
    for (unsigned i = 0; i < 12; i++) {
        struct rt_event ea = event_of(&a, &g[i], g[i].fields, g[i].fields_len);
        struct rt_effects fa, fb;
        int sa = rt_apply_signal(a.core, rt_part_of(&a, ea.key), &ea, &fa);
        int sb = rt_apply_signal_ref(b.core, rt_part_of(&b, eb[i].key), &eb[i], ref[i], &fb);
        assert_int_equal(sa, i < 6 ? RT_CREATED : RT_APPLIED);
        assert_int_equal(sb, sa);
        assert_same_fx(&fa, &fb);
    }
    assert_same_env(&a, &b);
    struct rt_part_stats ps;
    uint64_t reused = 0, abandoned = 0;
    for (unsigned i = 0; i < b.nparts; i++) {
        rt_part_stats_get(b.part[i], &ps);
        reused += ps.tombstones_reused;
        abandoned += ps.records_abandoned;
    }
    assert_true(created > 50 && restarted > 5 && reused > 5 && abandoned > 0);
    rt_env_free(&a);
    rt_env_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_fast_vs_decoder), cmocka_unit_test(test_signal_find),
        cmocka_unit_test(test_registry_type),          cmocka_unit_test(test_fast_path_same_state),
        cmocka_unit_test(test_apply_ref_burst),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
