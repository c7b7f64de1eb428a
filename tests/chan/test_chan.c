/*
 * test_chan.c — the activity channel (dataplane/chan): geometry and file creation; the
 * rings' FIFO order across many wraps (and across the u64 wrap of the counters), full and
 * empty, slot zero-fill; a hostile peer's counters refused as -EBADMSG; chan_attach refusing
 * files that are not channels; the validity checks at both sides of each boundary; the
 * idempotency key; the handshake over a SEQPACKET socketpair (descriptors arrive and map the
 * same memory, none leak on any refusal); one million tasks through a forked control process
 * and their results back, in order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chan.h"
#include "rt.h"

#define TC_SLOTS          16u      /* the smallest ring: wraps often */
#define TC_WRAP_MSGS      100000u  /* messages through a 16-slot ring: ~6000 wraps */
#define TC_FORK_TASKS     1000000u /* the cross-process test */
#define TC_FORK_SLOTS     1024u
#define TC_FORK_TIMEOUT_S 120u
#define TC_RAW_FDS_MAX    80u /* more than CHAN_OWNERS_MAX: the receiver's control buffer */

/* ---- helpers --------------------------------------------------------------------------- */

/* Open descriptors of this process (the directory's own descriptor counts the same in every
 * call, so two counts compare). */
static int fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static struct chan_task task_make(uint32_t i)
{
    struct chan_task t = { .kind = CHAN_TASK_RUN,
                           .type_len = 6,
                           .id_len = 3,
                           .activity_len = 4,
                           .nargs = 1,
                           .args_len = 1,
                           .part_id = i % 64,
                           .seq = i,
                           .attempt = 1,
                           .key_hi = 0x1234,
                           .key_lo = i };
    memcpy(t.type, "device", 6);
    memcpy(t.id, "d-1", 3);
    memcpy(t.activity, "ping", 4);
    strcpy(t.param[0], "x");
    t.args[0] = 0x80; /* CBOR: empty array */
    return t;
}

static struct chan_result result_make(uint32_t i)
{
    return (struct chan_result){
        .kind = CHAN_RES_DONE, .has_result = 1, .seq = i, .attempt = 1, .result = (int64_t)i * 3
    };
}

/* A daemon side (created) and a control side (attached to the same file) of one channel. */
struct pair {
    int fd;
    struct chan daemon, control;
};

static void pair_open(struct pair *p, uint32_t task_slots, uint32_t result_slots)
{
    p->fd = chan_create(7, task_slots, result_slots, &p->daemon);
    assert_true(p->fd >= 0);
    assert_int_equal(chan_attach(p->fd, chan_file_bytes(task_slots, result_slots), &p->control), 0);
    assert_int_equal(p->control.owner, 7);
}

static void pair_close(struct pair *p)
{
    chan_detach(&p->control);
    chan_detach(&p->daemon);
    close(p->fd);
}

static int sock_pair(int sv[2])
{
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
}

static struct chan_hello hello_make(uint32_t owners)
{
    return (struct chan_hello){ .magic = CHAN_MAGIC,
                                .version = CHAN_VERSION,
                                .owner_count = owners,
                                .task_slots = TC_SLOTS,
                                .result_slots = TC_SLOTS,
                                .file_bytes = chan_file_bytes(TC_SLOTS, TC_SLOTS),
                                .pid = (int32_t)getpid() };
}

/* sendmsg of any bytes with n descriptors of fds, split over `cmsgs` control messages (1 or
 * 2), as a hostile peer may send it. Returns sendmsg's result. */
static ssize_t raw_send(int sock, const void *buf, size_t len, const int *fds, unsigned n,
                        unsigned cmsgs)
{
    union {
        char buf[2 * CMSG_SPACE(TC_RAW_FDS_MAX * sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (n > 0) {
        unsigned first = cmsgs == 2 ? n / 2 : n;
        msg.msg_control = u.buf;
        msg.msg_controllen = CMSG_SPACE(first * sizeof(int)) +
                             (cmsgs == 2 ? CMSG_SPACE((n - first) * sizeof(int)) : 0);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(first * sizeof(int));
        memcpy(CMSG_DATA(c), fds, first * sizeof(int));
        if (cmsgs == 2) {
            c = CMSG_NXTHDR(&msg, c);
            assert_non_null(c);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN((n - first) * sizeof(int));
            memcpy(CMSG_DATA(c), fds + first, (n - first) * sizeof(int));
        }
    }
    return sendmsg(sock, &msg, MSG_NOSIGNAL);
}

/* ---- geometry and creation ------------------------------------------------------------- */

static void test_geometry(void **state)
{
    (void)state;
    size_t min = chan_file_bytes(CHAN_SLOTS_MIN, CHAN_SLOTS_MIN);
    assert_int_equal(min % 4096, 0);
    assert_true(min >= 320 + CHAN_SLOTS_MIN * (CHAN_TASK_SLOT_BYTES + CHAN_RESULT_SLOT_BYTES));
    assert_true(min <
                320 + CHAN_SLOTS_MIN * (CHAN_TASK_SLOT_BYTES + CHAN_RESULT_SLOT_BYTES) + 4096);
    size_t max = chan_file_bytes(CHAN_SLOTS_MAX, CHAN_SLOTS_MAX);
    assert_int_equal(max, 4096 + (size_t)CHAN_SLOTS_MAX *
                                     (CHAN_TASK_SLOT_BYTES + CHAN_RESULT_SLOT_BYTES));
    assert_true(chan_file_bytes(CHAN_SLOTS_DEFAULT, CHAN_SLOTS_MIN) > 0);
    /* out of range on either side, on either count */
    const uint32_t bad[] = { 0,
                             1,
                             CHAN_SLOTS_MIN / 2,
                             CHAN_SLOTS_MIN - 1,
                             CHAN_SLOTS_MIN + 1,
                             24,
                             48,
                             3000,
                             CHAN_SLOTS_MAX - 1,
                             CHAN_SLOTS_MAX + 1,
                             CHAN_SLOTS_MAX * 2,
                             UINT32_C(1) << 31,
                             UINT32_MAX };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(chan_file_bytes(bad[i], CHAN_SLOTS_MIN), 0);
        assert_int_equal(chan_file_bytes(CHAN_SLOTS_MIN, bad[i]), 0);
    }
    int before = fd_count();
    struct chan ch = { 0 };
    assert_int_equal(chan_create(0, 24, CHAN_SLOTS_MIN, &ch), -EINVAL);
    assert_int_equal(chan_create(0, CHAN_SLOTS_MIN, CHAN_SLOTS_MAX * 2, &ch), -EINVAL);
    assert_null(ch.base);
    assert_int_equal(fd_count(), before);
}

static void test_create(void **state)
{
    (void)state;
    struct chan ch;
    int fd = chan_create(3, 64, 32, &ch);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal((size_t)st.st_size, chan_file_bytes(64, 32));
    assert_int_equal(ch.bytes, (size_t)st.st_size);
    int seals = fcntl(fd, F_GET_SEALS);
    assert_int_equal(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
                     F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_not_equal(ftruncate(fd, 4096), 0); /* sealed */
    const struct chan_file_hdr *h = ch.base;
    assert_true(h->magic == CHAN_MAGIC);
    assert_int_equal(h->version, CHAN_VERSION);
    assert_int_equal(h->task_slots, 64);
    assert_int_equal(h->result_slots, 32);
    assert_int_equal(h->owner, 3);
    assert_true(h->file_bytes == (uint64_t)st.st_size);
    /* the slots sit inside the file, one ring after the other */
    assert_ptr_equal(ch.results.slots, ch.tasks.slots + 64 * CHAN_TASK_SLOT_BYTES);
    assert_true(ch.results.slots + 32 * CHAN_RESULT_SLOT_BYTES <= (uint8_t *)ch.base + ch.bytes);
    assert_int_equal(chan_room(&ch.tasks), 64);
    assert_int_equal(chan_pending(&ch.results), 0);
    chan_detach(&ch);
    assert_null(ch.base);
    chan_detach(&ch); /* safe on a zeroed struct */
    close(fd);
}

/* ---- the rings ------------------------------------------------------------------------- */

/* Push and pop in uneven batches so that the ring wraps thousands of times, both rings. */
static void test_fifo_wraparound(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, TC_SLOTS, TC_SLOTS);
    uint32_t pushed = 0, popped = 0, res_pushed = 0, res_popped = 0;
    unsigned batch = 1;
    while (popped < TC_WRAP_MSGS) {
        for (unsigned k = 0; k < batch && pushed < TC_WRAP_MSGS; k++) {
            struct chan_task t = task_make(pushed);
            int rc = chan_push(&p.daemon.tasks, &t, sizeof(t));
            if (rc == -ENOSPC)
                break;
            assert_int_equal(rc, 0);
            pushed++;
        }
        for (unsigned k = 0; k < (batch * 7) % 17 + 1; k++) {
            struct chan_task t;
            int rc = chan_pop(&p.control.tasks, &t, sizeof(t));
            if (rc == -ENOENT)
                break;
            assert_int_equal(rc, 0);
            assert_true(chan_task_valid(&t));
            assert_int_equal(t.seq, popped);
            assert_true(t.key_lo == popped);
            popped++;
            struct chan_result r = result_make(t.seq);
            assert_int_equal(chan_push(&p.control.results, &r, sizeof(r)), 0);
            res_pushed++;
        }
        struct chan_result r;
        while (chan_pop(&p.daemon.results, &r, sizeof(r)) == 0) {
            assert_true(chan_result_valid(&r));
            assert_int_equal(r.seq, res_popped);
            assert_true(r.result == (int64_t)res_popped * 3);
            res_popped++;
        }
        batch = batch % 19 + 1;
    }
    assert_int_equal(pushed, TC_WRAP_MSGS);
    assert_int_equal(res_popped, TC_WRAP_MSGS);
    assert_int_equal(res_pushed, TC_WRAP_MSGS);
    assert_true(p.daemon.tasks.mine == TC_WRAP_MSGS);
    pair_close(&p);
}

static void test_full_and_empty(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, TC_SLOTS, TC_SLOTS);
    struct chan_task t = task_make(0), out;
    assert_int_equal(chan_pop(&p.control.tasks, &out, sizeof(out)), -ENOENT);
    assert_int_equal(chan_pending(&p.control.tasks), 0);
    for (uint32_t i = 0; i < TC_SLOTS; i++) {
        assert_int_equal(chan_room(&p.daemon.tasks), TC_SLOTS - i);
        t.seq = i;
        assert_int_equal(chan_push(&p.daemon.tasks, &t, sizeof(t)), 0);
    }
    assert_int_equal(chan_room(&p.daemon.tasks), 0);
    assert_int_equal(chan_push(&p.daemon.tasks, &t, sizeof(t)), -ENOSPC);
    assert_int_equal(chan_push(&p.daemon.tasks, &t, sizeof(t)), -ENOSPC); /* and stays so */
    assert_int_equal(chan_pending(&p.control.tasks), TC_SLOTS);
    assert_int_equal(chan_pop(&p.control.tasks, &out, sizeof(out)), 0);
    assert_int_equal(out.seq, 0);
    assert_int_equal(chan_room(&p.daemon.tasks), 1);
    t.seq = TC_SLOTS;
    assert_int_equal(chan_push(&p.daemon.tasks, &t, sizeof(t)), 0);
    assert_int_equal(chan_push(&p.daemon.tasks, &t, sizeof(t)), -ENOSPC);
    for (uint32_t i = 1; i <= TC_SLOTS; i++) {
        assert_int_equal(chan_pop(&p.control.tasks, &out, sizeof(out)), 0);
        assert_int_equal(out.seq, i);
    }
    assert_int_equal(chan_pop(&p.control.tasks, &out, sizeof(out)), -ENOENT);
    /* a message larger than a slot is refused, a slot-sized one taken */
    uint8_t big[CHAN_TASK_SLOT_BYTES + 1] = { 0 };
    assert_int_equal(chan_push(&p.daemon.tasks, big, sizeof(big)), -EINVAL);
    assert_int_equal(chan_push(&p.daemon.tasks, big, CHAN_TASK_SLOT_BYTES), 0);
    uint8_t rbig[CHAN_RESULT_SLOT_BYTES + 1] = { 0 };
    assert_int_equal(chan_push(&p.control.results, rbig, sizeof(rbig)), -EINVAL);
    /* the results ring: its own size */
    struct chan_result r = result_make(1);
    for (uint32_t i = 0; i < TC_SLOTS; i++)
        assert_int_equal(chan_push(&p.control.results, &r, sizeof(r)), 0);
    assert_int_equal(chan_push(&p.control.results, &r, sizeof(r)), -ENOSPC);
    assert_int_equal(chan_pending(&p.daemon.results), TC_SLOTS);
    pair_close(&p);
}

/* A short message over a slot that held a long one: the rest of the slot reads zero. A pop
 * into a smaller buffer copies only that much. */
static void test_slot_zero_fill(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, TC_SLOTS, TC_SLOTS);
    uint8_t full[CHAN_TASK_SLOT_BYTES], out[CHAN_TASK_SLOT_BYTES];
    memset(full, 0xa5, sizeof(full));
    for (uint32_t i = 0; i < TC_SLOTS; i++) {
        assert_int_equal(chan_push(&p.daemon.tasks, full, sizeof(full)), 0);
        assert_int_equal(chan_pop(&p.control.tasks, out, sizeof(out)), 0);
        assert_memory_equal(out, full, sizeof(full));
    }
    /* every slot held 0xa5 bytes: now a 10-byte message in each */
    for (uint32_t i = 0; i < TC_SLOTS; i++) {
        uint8_t msg[10];
        memset(msg, (int)i + 1, sizeof(msg));
        assert_int_equal(chan_push(&p.daemon.tasks, msg, sizeof(msg)), 0);
        memset(out, 0xee, sizeof(out));
        assert_int_equal(chan_pop(&p.control.tasks, out, sizeof(out)), 0);
        assert_memory_equal(out, msg, sizeof(msg));
        for (size_t b = sizeof(msg); b < sizeof(out); b++)
            assert_int_equal(out[b], 0);
    }
    /* a zero-length message is a slot of zeros; a small buffer gets the start of the slot */
    assert_int_equal(chan_push(&p.daemon.tasks, full, 0), 0);
    assert_int_equal(chan_push(&p.daemon.tasks, full, sizeof(full)), 0);
    memset(out, 0xee, sizeof(out));
    assert_int_equal(chan_pop(&p.control.tasks, out, sizeof(out)), 0);
    for (size_t b = 0; b < sizeof(out); b++)
        assert_int_equal(out[b], 0);
    memset(out, 0xee, sizeof(out));
    assert_int_equal(chan_pop(&p.control.tasks, out, 8), 0);
    for (size_t b = 0; b < sizeof(out); b++)
        assert_int_equal(out[b], b < 8 ? 0xa5 : 0xee);
    pair_close(&p);
}

/* The free-running counters across 2^64: start both sides a few slots before the wrap. */
static void test_counter_wrap(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, TC_SLOTS, TC_SLOTS);
    const uint64_t start = UINT64_MAX - 5;
    struct chan_end *prod = &p.daemon.tasks, *cons = &p.control.tasks;
    prod->mine = prod->other = cons->mine = cons->other = start;
    prod->ctl->tail = prod->ctl->head = start;
    for (uint32_t i = 0; i < 10 * TC_SLOTS; i++) {
        struct chan_task t = task_make(i), out;
        assert_int_equal(chan_push(prod, &t, sizeof(t)), 0);
        if (i % 3 == 2)
            continue; /* let a few pile up, so the ring is not always empty at the wrap */
        while (chan_pending(cons) > 0) {
            assert_int_equal(chan_pop(cons, &out, sizeof(out)), 0);
        }
    }
    struct chan_task out;
    while (chan_pop(cons, &out, sizeof(out)) == 0)
        ;
    assert_true(cons->mine == start + 10 * TC_SLOTS);
    assert_true(cons->mine < start); /* wrapped */
    /* fill across the wrap point exactly, then drain in order */
    prod->mine = prod->other = cons->mine = cons->other = UINT64_MAX - TC_SLOTS / 2;
    prod->ctl->tail = prod->ctl->head = prod->mine;
    for (uint32_t i = 0; i < TC_SLOTS; i++) {
        struct chan_task t = task_make(i);
        assert_int_equal(chan_push(prod, &t, sizeof(t)), 0);
    }
    struct chan_task t = task_make(TC_SLOTS);
    assert_int_equal(chan_push(prod, &t, sizeof(t)), -ENOSPC);
    assert_int_equal(chan_pending(cons), TC_SLOTS);
    for (uint32_t i = 0; i < TC_SLOTS; i++) {
        assert_int_equal(chan_pop(cons, &out, sizeof(out)), 0);
        assert_int_equal(out.seq, i);
    }
    assert_int_equal(chan_pop(cons, &out, sizeof(out)), -ENOENT);
    pair_close(&p);
}

/* A producer's tail that moved backwards or beyond one ring, seen by the consumer. */
static void test_hostile_tail(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, TC_SLOTS, TC_SLOTS);
    struct chan_end *cons = &p.control.tasks;
    struct chan_task t = task_make(0), out;
    for (uint32_t i = 0; i < 5; i++)
        assert_int_equal(chan_push(&p.daemon.tasks, &t, sizeof(t)), 0);
    for (uint32_t i = 0; i < 5; i++)
        assert_int_equal(chan_pop(cons, &out, sizeof(out)), 0);
    uint64_t head = cons->mine; /* 5 */
    const uint64_t bad[] = {
        head - 1,           0, head + TC_SLOTS + 1, head + TC_SLOTS * 2, UINT64_MAX, UINT64_MAX / 2,
        head + (1ull << 32)
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        __atomic_store_n(&cons->ctl->tail, bad[i], __ATOMIC_RELEASE);
        assert_int_equal(chan_pop(cons, &out, sizeof(out)), -EBADMSG);
        assert_int_equal(chan_pending(cons), 0);
        assert_true(cons->mine == head); /* nothing consumed, head not moved */
        assert_true(cons->ctl->head == head);
    }
    /* the edges that are valid: empty (tail == head) and exactly one ring ahead (full) */
    __atomic_store_n(&cons->ctl->tail, head, __ATOMIC_RELEASE);
    assert_int_equal(chan_pop(cons, &out, sizeof(out)), -ENOENT);
    __atomic_store_n(&cons->ctl->tail, head + TC_SLOTS, __ATOMIC_RELEASE);
    assert_int_equal(chan_pending(cons), TC_SLOTS);
    for (uint32_t i = 0; i < TC_SLOTS; i++)
        assert_int_equal(chan_pop(cons, &out, sizeof(out)), 0); /* stale bytes, in bounds */
    assert_int_equal(chan_pop(cons, &out, sizeof(out)), -ENOENT);
    /* the same on the results ring, which the daemon consumes */
    struct chan_end *dres = &p.daemon.results;
    struct chan_result r;
    __atomic_store_n(&dres->ctl->tail, TC_SLOTS + 1, __ATOMIC_RELEASE);
    assert_int_equal(chan_pop(dres, &r, sizeof(r)), -EBADMSG);
    __atomic_store_n(&dres->ctl->tail, UINT64_MAX, __ATOMIC_RELEASE);
    assert_int_equal(chan_pop(dres, &r, sizeof(r)), -EBADMSG);
    pair_close(&p);
}

/* A consumer's head ahead of the tail, or more than one ring behind, seen by the producer
 * (which reads it when the ring looks full, and in chan_room). */
static void test_hostile_head(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, TC_SLOTS, TC_SLOTS);
    struct chan_end *prod = &p.daemon.tasks;
    struct chan_task t = task_make(0);
    for (uint32_t i = 0; i < TC_SLOTS; i++)
        assert_int_equal(chan_push(prod, &t, sizeof(t)), 0);
    assert_int_equal(chan_push(prod, &t, sizeof(t)), -ENOSPC);
    uint64_t tail = prod->mine; /* 16, head 0 */
    const uint64_t bad[] = { tail + 1, tail + 1000, UINT64_MAX, 1ull << 63 };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        __atomic_store_n(&prod->ctl->head, bad[i], __ATOMIC_RELEASE);
        assert_int_equal(chan_push(prod, &t, sizeof(t)), -EBADMSG);
        assert_int_equal(chan_room(prod), 0);
        assert_true(prod->mine == tail); /* nothing written */
        assert_true(prod->ctl->tail == tail);
    }
    /* valid: head == tail (all consumed) */
    __atomic_store_n(&prod->ctl->head, tail, __ATOMIC_RELEASE);
    assert_int_equal(chan_room(prod), TC_SLOTS);
    for (uint32_t i = 0; i < TC_SLOTS; i++)
        assert_int_equal(chan_push(prod, &t, sizeof(t)), 0);
    /* more than one ring behind the tail: 2 * slots pushed, head moved back to 0 */
    __atomic_store_n(&prod->ctl->head, tail - 1, __ATOMIC_RELEASE);
    assert_int_equal(chan_push(prod, &t, sizeof(t)), -EBADMSG);
    assert_int_equal(chan_room(prod), 0);
    /* the results ring, produced by the control side */
    struct chan_end *cres = &p.control.results;
    struct chan_result r = result_make(0);
    for (uint32_t i = 0; i < TC_SLOTS; i++)
        assert_int_equal(chan_push(cres, &r, sizeof(r)), 0);
    __atomic_store_n(&cres->ctl->head, TC_SLOTS + 1, __ATOMIC_RELEASE);
    assert_int_equal(chan_push(cres, &r, sizeof(r)), -EBADMSG);
    pair_close(&p);
}

/* ---- chan_attach ----------------------------------------------------------------------- */

static void test_attach_refuses(void **state)
{
    (void)state;
    struct chan ch, other;
    int fd = chan_create(1, TC_SLOTS, TC_SLOTS, &ch);
    assert_true(fd >= 0);
    size_t bytes = chan_file_bytes(TC_SLOTS, TC_SLOTS);
    memset(&other, 0x5a, sizeof(other));
    /* wrong size */
    assert_int_equal(chan_attach(fd, bytes + 4096, &other), -EBADMSG);
    assert_int_equal(chan_attach(fd, bytes - 4096, &other), -EBADMSG);
    assert_int_equal(chan_attach(fd, 0, &other), -EBADMSG);
    assert_int_equal(chan_attach(fd, chan_file_bytes(TC_SLOTS * 2, TC_SLOTS), &other), -EBADMSG);
    /* each header field broken in turn, then restored */
    struct chan_file_hdr *h = ch.base, good = *h;
    h->magic ^= 1;
    assert_int_equal(chan_attach(fd, bytes, &other), -EBADMSG);
    *h = good;
    h->version = CHAN_VERSION + 1;
    assert_int_equal(chan_attach(fd, bytes, &other), -EBADMSG);
    *h = good;
    h->task_slot_bytes = CHAN_TASK_SLOT_BYTES / 2;
    assert_int_equal(chan_attach(fd, bytes, &other), -EBADMSG);
    *h = good;
    h->result_slot_bytes = CHAN_RESULT_SLOT_BYTES * 2;
    assert_int_equal(chan_attach(fd, bytes, &other), -EBADMSG);
    *h = good;
    h->file_bytes = bytes + 1;
    assert_int_equal(chan_attach(fd, bytes, &other), -EBADMSG);
    *h = good;
    h->task_slots = TC_SLOTS * 4; /* more slots than the file holds */
    assert_int_equal(chan_attach(fd, bytes, &other), -EBADMSG);
    *h = good;
    h->task_slots = TC_SLOTS + 1; /* not a power of two */
    assert_int_equal(chan_attach(fd, bytes, &other), -EBADMSG);
    *h = good;
    h->result_slots = 0;
    assert_int_equal(chan_attach(fd, bytes, &other), -EBADMSG);
    *h = good;
    assert_int_equal(chan_attach(fd, bytes, &other), 0);
    assert_int_equal(other.owner, 1);
    assert_ptr_not_equal(other.base, ch.base);
    chan_detach(&other);
    chan_detach(&ch);
    close(fd);

    /* a memfd with a channel's size and header but no seals: it could shrink under us */
    int raw = memfd_create("not-sealed", MFD_CLOEXEC);
    assert_true(raw >= 0);
    assert_int_equal(ftruncate(raw, (off_t)bytes), 0);
    assert_int_equal(pwrite(raw, &good, sizeof(good), 0), (ssize_t)sizeof(good));
    assert_int_equal(chan_attach(raw, bytes, &other), -EBADMSG);
    close(raw);
    /* not a file at all */
    int sv[2];
    assert_int_equal(pipe(sv), 0);
    assert_int_equal(chan_attach(sv[0], bytes, &other), -EBADMSG);
    close(sv[0]);
    close(sv[1]);
    assert_int_equal(chan_attach(-1, bytes, &other), -EBADF);
}

/* ---- validity of what crosses the boundary --------------------------------------------- */

static void test_result_valid(void **state)
{
    (void)state;
    struct chan_result r = result_make(9);
    assert_true(chan_result_valid(&r));
    const uint8_t kinds_ok[] = { CHAN_RES_DONE, CHAN_RES_FAILED, CHAN_RES_ATTEMPT_FAILED };
    for (size_t i = 0; i < sizeof(kinds_ok); i++) {
        r.kind = kinds_ok[i];
        assert_true(chan_result_valid(&r));
    }
    const uint8_t kinds_bad[] = { 0, CHAN_RES_ATTEMPT_FAILED + 1, 0x80, 0xff };
    for (size_t i = 0; i < sizeof(kinds_bad); i++) {
        r.kind = kinds_bad[i];
        assert_false(chan_result_valid(&r));
    }
    r = result_make(9);
    r.has_result = 0;
    assert_true(chan_result_valid(&r));
    r.has_result = 2;
    assert_false(chan_result_valid(&r));
    r = result_make(9);
    r.reason_len = CHAN_REASON_MAX;
    assert_true(chan_result_valid(&r));
    r.reason_len = CHAN_REASON_MAX + 1;
    assert_false(chan_result_valid(&r));
    r.reason_len = UINT16_MAX;
    assert_false(chan_result_valid(&r));
    r = result_make(9);
    r.attempt = 0;
    assert_false(chan_result_valid(&r));
    r.attempt = UINT32_MAX;
    assert_true(chan_result_valid(&r));
    for (size_t b = 0; b < sizeof(r.reserved); b++) {
        r = result_make(9);
        r.reserved[b] = 1;
        assert_false(chan_result_valid(&r));
    }
}

static void test_task_valid(void **state)
{
    (void)state;
    struct chan_task t = task_make(1);
    assert_true(chan_task_valid(&t));
    t.kind = CHAN_TASK_CANCEL;
    assert_true(chan_task_valid(&t));
    const uint8_t kinds_bad[] = { 0, CHAN_TASK_CANCEL + 1, 0xff };
    for (size_t i = 0; i < sizeof(kinds_bad); i++) {
        t.kind = kinds_bad[i];
        assert_false(chan_task_valid(&t));
    }
    /* each length at 0, 1, its maximum and one past */
    struct {
        size_t off;
        unsigned max;
        bool zero_ok;
    } const len8[] = {
        { offsetof(struct chan_task, type_len), CHAN_TYPE_MAX, false },
        { offsetof(struct chan_task, id_len), CHAN_ID_MAX, false },
        { offsetof(struct chan_task, activity_len), CHAN_NAME_MAX - 1, false },
        { offsetof(struct chan_task, nargs), CHAN_PARAMS_MAX, true },
    };
    for (size_t i = 0; i < sizeof(len8) / sizeof(len8[0]); i++) {
        const unsigned values[] = { 0, 1, len8[i].max, len8[i].max + 1, 255 };
        for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
            t = task_make(1);
            for (unsigned a = 0; a < CHAN_PARAMS_MAX; a++)
                snprintf(t.param[a], CHAN_NAME_MAX, "p%u", a);
            ((uint8_t *)&t)[len8[i].off] = (uint8_t)values[v];
            bool ok = values[v] <= len8[i].max && (values[v] > 0 || len8[i].zero_ok);
            assert_int_equal(chan_task_valid(&t), ok);
        }
    }
    t = task_make(1);
    t.args_len = CHAN_ARGS_MAX;
    assert_true(chan_task_valid(&t));
    t.args_len = CHAN_ARGS_MAX + 1;
    assert_false(chan_task_valid(&t));
    t.args_len = 0;
    assert_true(chan_task_valid(&t));
    t = task_make(1);
    t.attempt = 0;
    assert_false(chan_task_valid(&t));
    /* parameter names: NUL-terminated within CHAN_NAME_MAX, not empty, for i < nargs only */
    t = task_make(1);
    memset(t.param[0], 'a', CHAN_NAME_MAX - 1);
    t.param[0][CHAN_NAME_MAX - 1] = '\0';
    assert_true(chan_task_valid(&t));
    memset(t.param[0], 'a', CHAN_NAME_MAX);
    assert_false(chan_task_valid(&t));
    t = task_make(1);
    t.param[0][0] = '\0';
    assert_false(chan_task_valid(&t));
    t = task_make(1);
    memset(t.param[1], 'b', CHAN_NAME_MAX); /* beyond nargs: not looked at */
    assert_true(chan_task_valid(&t));
    t.nargs = 2;
    assert_false(chan_task_valid(&t));
}

static void test_idempotency_key(void **state)
{
    (void)state;
    char buf[CHAN_IDEM_KEY_MAX];
    int n =
        chan_idempotency_key(0x0123456789abcdefull, 0xfedcba9876543210ull, 42, buf, sizeof(buf));
    assert_int_equal(n, 35);
    assert_string_equal(buf, "0123456789abcdeffedcba9876543210-42");
    n = chan_idempotency_key(0, 1, 0, buf, sizeof(buf));
    assert_string_equal(buf, "00000000000000000000000000000001-0");
    /* the longest key fits CHAN_IDEM_KEY_MAX */
    n = chan_idempotency_key(UINT64_MAX, UINT64_MAX, UINT32_MAX, buf, sizeof(buf));
    assert_int_equal(n, 32 + 1 + 10);
    assert_true((size_t)n < CHAN_IDEM_KEY_MAX);
    assert_string_equal(buf, "ffffffffffffffffffffffffffffffff-4294967295");
    /* cap: n + 1 fits, n does not */
    assert_int_equal(chan_idempotency_key(UINT64_MAX, UINT64_MAX, UINT32_MAX, buf, 44), 43);
    assert_int_equal(chan_idempotency_key(UINT64_MAX, UINT64_MAX, UINT32_MAX, buf, 43), -ENOSPC);
    assert_int_equal(chan_idempotency_key(1, 2, 3, NULL, 0), -ENOSPC);
    /* the same key as the runtime gives the task */
    const uint64_t his[] = { 0, 1, 0xdeadbeefull, UINT64_MAX };
    const uint32_t seqs[] = { 0, 7, 1000000, UINT32_MAX };
    for (size_t i = 0; i < 4; i++) {
        struct rt_task rt = { .seq = seqs[i], .key = { .lo = ~his[i], .hi = his[i] } };
        char want[64];
        assert_int_equal(rt_task_idempotency_key(&rt, want, sizeof(want)),
                         chan_idempotency_key(his[i], ~his[i], seqs[i], buf, sizeof(buf)));
        assert_string_equal(buf, want);
    }
}

/* ---- the handshake --------------------------------------------------------------------- */

/* Three owners' files through one hello: they map the memory the daemon's side maps. */
static void test_hello_fds_map_same_memory(void **state)
{
    (void)state;
    int before = fd_count();
    int sv[2];
    assert_int_equal(sock_pair(sv), 0);
    struct chan d[3], c[3];
    int fds[3], got[3] = { -1, -1, -1 };
    for (uint32_t i = 0; i < 3; i++) {
        fds[i] = chan_create(i, TC_SLOTS, TC_SLOTS, &d[i]);
        assert_true(fds[i] >= 0);
    }
    /* the control process says hello first, without descriptors */
    struct chan_hello ctl = hello_make(0), h;
    assert_int_equal(chan_hello_send(sv[1], &ctl, NULL, 0), 0);
    assert_int_equal(chan_hello_recv(sv[0], &h, NULL, 0), 0);
    assert_int_equal(h.pid, getpid());
    struct chan_hello dh = hello_make(3);
    assert_int_equal(chan_hello_send(sv[0], &dh, fds, 3), 0);
    assert_int_equal(chan_hello_recv(sv[1], &h, got, 3), 3);
    assert_memory_equal(&h, &dh, sizeof(h));
    for (uint32_t i = 0; i < 3; i++) {
        close(fds[i]); /* the daemon keeps only its mapping */
        assert_true(fcntl(got[i], F_GETFD) & FD_CLOEXEC);
        assert_int_equal(chan_attach(got[i], h.file_bytes, &c[i]), 0);
        close(got[i]);
        assert_int_equal(c[i].owner, i);
    }
    for (uint32_t i = 0; i < 3; i++) {
        struct chan_task t = task_make(100 + i), tout;
        assert_int_equal(chan_push(&d[i].tasks, &t, sizeof(t)), 0);
        assert_int_equal(chan_pop(&c[i].tasks, &tout, sizeof(tout)), 0);
        assert_int_equal(tout.seq, 100 + i);
        struct chan_result r = result_make(200 + i), rout;
        assert_int_equal(chan_push(&c[i].results, &r, sizeof(r)), 0);
        assert_int_equal(chan_pop(&d[i].results, &rout, sizeof(rout)), 0);
        assert_int_equal(rout.seq, 200 + i);
        /* the same bytes, seen through both mappings */
        ((uint8_t *)d[i].base)[d[i].bytes - 1] = (uint8_t)(0x40 + i);
        assert_int_equal(((uint8_t *)c[i].base)[c[i].bytes - 1], 0x40 + i);
    }
    for (uint32_t i = 0; i < 3; i++) {
        chan_detach(&c[i]);
        chan_detach(&d[i]);
    }
    close(sv[0]);
    close(sv[1]);
    assert_int_equal(fd_count(), before);
}

/* More descriptors than the receiver takes: the rest are closed, none stay open. */
static void test_hello_more_than_max(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(sock_pair(sv), 0);
    int fds[5];
    for (int i = 0; i < 5; i++)
        fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    struct chan_hello dh = hello_make(5), h;
    assert_int_equal(chan_hello_send(sv[0], &dh, fds, 5), 0);
    for (int i = 0; i < 5; i++)
        close(fds[i]);
    int before = fd_count();
    int got[2] = { -1, -1 };
    assert_int_equal(chan_hello_recv(sv[1], &h, got, 2), 2);
    assert_int_equal(fd_count(), before + 2);
    close(got[0]);
    close(got[1]);
    /* none at all taken */
    for (int i = 0; i < 5; i++)
        fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_int_equal(chan_hello_send(sv[0], &dh, fds, 5), 0);
    for (int i = 0; i < 5; i++)
        close(fds[i]);
    assert_int_equal(chan_hello_recv(sv[1], &h, NULL, 0), 0);
    assert_int_equal(fd_count(), before);
    /* the sender refuses more than one handshake carries */
    int many[CHAN_OWNERS_MAX + 1] = { 0 };
    assert_int_equal(chan_hello_send(sv[0], &dh, many, CHAN_OWNERS_MAX + 1), -EMSGSIZE);
    close(sv[0]);
    close(sv[1]);
}

/* Messages that are not a hello, each with descriptors attached: -EBADMSG, none kept. */
static void test_hello_garbage(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(sock_pair(sv), 0);
    int fds[TC_RAW_FDS_MAX];
    for (unsigned i = 0; i < TC_RAW_FDS_MAX; i++)
        fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int before = fd_count();
    struct chan_hello good = hello_make(2), bad_magic = good, bad_version = good;
    bad_magic.magic ^= 1ull << 40;
    bad_version.version = CHAN_VERSION + 1;
    uint8_t longer[sizeof(good) + 8] = { 0 };
    memcpy(longer, &good, sizeof(good));
    const struct {
        const void *buf;
        size_t len;
        unsigned nfds;
    } cases[] = {
        { &good, 10, 2 },                       /* truncated */
        { &good, sizeof(good) - 1, 2 },         /* one byte short */
        { &good, 0, 2 },                        /* empty, descriptors attached */
        { longer, sizeof(longer), 2 },          /* longer than a hello: MSG_TRUNC */
        { &bad_magic, sizeof(good), 2 },        /* not ours */
        { &bad_version, sizeof(good), 2 },      /* another version */
        { &good, sizeof(good), TC_RAW_FDS_MAX } /* more than fit: MSG_CTRUNC */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(raw_send(sv[0], cases[i].buf, cases[i].len, fds, cases[i].nfds, 1),
                         (ssize_t)cases[i].len);
        int got[CHAN_OWNERS_MAX];
        struct chan_hello h;
        memset(&h, 0x77, sizeof(h));
        assert_int_equal(chan_hello_recv(sv[1], &h, got, CHAN_OWNERS_MAX), -EBADMSG);
        assert_int_equal(h.magic, 0x7777777777777777ull); /* not written */
        assert_int_equal(fd_count(), before);
    }
    /* garbage without descriptors, then a good hello still goes through */
    assert_int_equal(raw_send(sv[0], "xyz", 3, NULL, 0, 1), 3);
    struct chan_hello h;
    assert_int_equal(chan_hello_recv(sv[1], &h, NULL, 0), -EBADMSG);
    /* two SCM_RIGHTS control messages in one send: every descriptor counted or closed */
    assert_int_equal(raw_send(sv[0], &good, sizeof(good), fds, 6, 2), (ssize_t)sizeof(good));
    int got[CHAN_OWNERS_MAX];
    int n = chan_hello_recv(sv[1], &h, got, CHAN_OWNERS_MAX);
    assert_int_equal(n, 6);
    for (int i = 0; i < n; i++)
        close(got[i]);
    assert_int_equal(raw_send(sv[0], &good, sizeof(good), fds, 6, 2), (ssize_t)sizeof(good));
    assert_int_equal(chan_hello_recv(sv[1], &h, got, 4), 4);
    for (int i = 0; i < 4; i++)
        close(got[i]);
    assert_int_equal(fd_count(), before);
    for (unsigned i = 0; i < TC_RAW_FDS_MAX; i++)
        close(fds[i]);
    close(sv[0]);
    close(sv[1]);
}

static void test_hello_peer_close(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(sock_pair(sv), 0);
    struct chan_hello h;
    /* an empty message without descriptors reads as the close (SEQPACKET cannot tell) */
    assert_int_equal(raw_send(sv[0], "", 0, NULL, 0, 1), 0);
    assert_int_equal(chan_hello_recv(sv[1], &h, NULL, 0), -ECONNRESET);
    close(sv[0]);
    assert_int_equal(chan_hello_recv(sv[1], &h, NULL, 0), -ECONNRESET);
    assert_int_equal(chan_hello_recv(sv[1], &h, NULL, 0), -ECONNRESET);
    struct chan_hello dh = hello_make(0);
    assert_int_equal(chan_hello_send(sv[1], &dh, NULL, 0), -EPIPE); /* MSG_NOSIGNAL */
    close(sv[1]);
    /* nothing to read on a non-blocking socket: -EAGAIN, not a message */
    assert_int_equal(sock_pair(sv), 0);
    assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(chan_hello_recv(sv[1], &h, NULL, 0), -EAGAIN);
    close(sv[0]);
    close(sv[1]);
}

/* ---- across processes ------------------------------------------------------------------ */

enum fork_status {
    FORK_OK = 0,
    FORK_HELLO = 10,
    FORK_ATTACH,
    FORK_POP,
    FORK_INVALID,
    FORK_ORDER,
    FORK_PUSH,
};

/* The control process: takes the file from the hello, consumes every task in order and
 * answers each with a result. Exit status: enum fork_status. */
static int fork_control(int sock)
{
    struct chan_hello h;
    int fd = -1;
    if (chan_hello_recv(sock, &h, &fd, 1) != 1 || h.owner_count != 1)
        return FORK_HELLO;
    struct chan c;
    if (chan_attach(fd, h.file_bytes, &c) != 0)
        return FORK_ATTACH;
    close(fd);
    for (uint32_t next = 0; next < TC_FORK_TASKS;) {
        struct chan_task t;
        int rc = chan_pop(&c.tasks, &t, sizeof(t));
        if (rc == -ENOENT) {
            sched_yield();
            continue;
        }
        if (rc != 0)
            return FORK_POP;
        if (!chan_task_valid(&t))
            return FORK_INVALID;
        if (t.seq != next || t.key_lo != next)
            return FORK_ORDER;
        struct chan_result r = result_make(next);
        while ((rc = chan_push(&c.results, &r, sizeof(r))) == -ENOSPC)
            sched_yield();
        if (rc != 0)
            return FORK_PUSH;
        next++;
    }
    chan_detach(&c);
    return FORK_OK;
}

static void test_cross_process(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(sock_pair(sv), 0);
    struct chan d;
    int fd = chan_create(5, TC_FORK_SLOTS, TC_FORK_SLOTS, &d);
    assert_true(fd >= 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sv[0]);
        close(fd);
        chan_detach(&d); /* the child sees the file only through the handshake */
        alarm(TC_FORK_TIMEOUT_S);
        _exit(fork_control(sv[1]));
    }
    close(sv[1]);
    struct chan_hello dh = hello_make(1);
    dh.task_slots = dh.result_slots = TC_FORK_SLOTS;
    dh.file_bytes = chan_file_bytes(TC_FORK_SLOTS, TC_FORK_SLOTS);
    assert_int_equal(chan_hello_send(sv[0], &dh, &fd, 1), 0);
    close(fd);
    uint32_t pushed = 0, got = 0;
    uint64_t idle = 0;
    while (got < TC_FORK_TASKS) {
        bool progress = false;
        while (pushed < TC_FORK_TASKS) {
            struct chan_task t = task_make(pushed);
            int rc = chan_push(&d.tasks, &t, sizeof(t));
            if (rc == -ENOSPC)
                break;
            assert_int_equal(rc, 0);
            pushed++;
            progress = true;
        }
        struct chan_result r;
        int rc;
        while ((rc = chan_pop(&d.results, &r, sizeof(r))) == 0) {
            if (!chan_result_valid(&r) || r.seq != got || r.result != (int64_t)got * 3)
                fail_msg("result %u: seq %u result %lld", got, r.seq, (long long)r.result);
            got++;
            progress = true;
        }
        assert_int_equal(rc, -ENOENT);
        if (!progress) {
            int status;
            if (++idle % 1024 == 0 && waitpid(pid, &status, WNOHANG) == pid)
                fail_msg("control process ended early: status 0x%x", status);
            sched_yield();
        }
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), FORK_OK);
    assert_int_equal(pushed, TC_FORK_TASKS);
    assert_true(d.tasks.mine == TC_FORK_TASKS && d.results.mine == TC_FORK_TASKS);
    chan_detach(&d);
    close(sv[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_geometry),
        cmocka_unit_test(test_create),
        cmocka_unit_test(test_fifo_wraparound),
        cmocka_unit_test(test_full_and_empty),
        cmocka_unit_test(test_slot_zero_fill),
        cmocka_unit_test(test_counter_wrap),
        cmocka_unit_test(test_hostile_tail),
        cmocka_unit_test(test_hostile_head),
        cmocka_unit_test(test_attach_refuses),
        cmocka_unit_test(test_result_valid),
        cmocka_unit_test(test_task_valid),
        cmocka_unit_test(test_idempotency_key),
        cmocka_unit_test(test_hello_fds_map_same_memory),
        cmocka_unit_test(test_hello_more_than_max),
        cmocka_unit_test(test_hello_garbage),
        cmocka_unit_test(test_hello_peer_close),
        cmocka_unit_test(test_cross_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
