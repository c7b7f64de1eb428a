/*
 * chan.c — the activity channel's rings and handshake (chan.h has the file layout).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chan.h"

#define CHAN_CTL_OFF      64u
#define CHAN_SLOTS_OFF    (CHAN_CTL_OFF + 2 * sizeof(struct chan_ring_ctl))
#define CHAN_PAGE_BYTES   4096u
#define CHAN_HELLO_SPACES (CHAN_OWNERS_MAX * sizeof(int))

/* The counters are shared between two processes: their atomics must be plain instructions,
 * not libatomic's lock table (which is per process). */
_Static_assert(__atomic_always_lock_free(sizeof(uint64_t), 0), "u64 atomics are lock-free");

static bool chan_slots_ok(uint32_t n)
{
    return n >= CHAN_SLOTS_MIN && n <= CHAN_SLOTS_MAX && (n & (n - 1)) == 0;
}

size_t chan_file_bytes(uint32_t task_slots, uint32_t result_slots)
{
    if (!chan_slots_ok(task_slots) || !chan_slots_ok(result_slots))
        return 0;
    size_t bytes = CHAN_SLOTS_OFF + (size_t)task_slots * CHAN_TASK_SLOT_BYTES +
                   (size_t)result_slots * CHAN_RESULT_SLOT_BYTES;
    return (bytes + CHAN_PAGE_BYTES - 1) / CHAN_PAGE_BYTES * CHAN_PAGE_BYTES;
}

/* Point ch's two ends into the mapping at base, by the checked header h (a private copy:
 * the shared one may change under us). */
static void chan_layout(struct chan *ch, void *base, size_t bytes, const struct chan_file_hdr *h,
                        bool daemon_side)
{
    uint8_t *b = base;
    ch->base = base;
    ch->bytes = bytes;
    ch->owner = h->owner;
    struct chan_ring_ctl *ctl = (struct chan_ring_ctl *)(b + CHAN_CTL_OFF);
    ch->tasks = (struct chan_end){ .ctl = &ctl[0],
                                   .slots = b + CHAN_SLOTS_OFF,
                                   .slot_bytes = CHAN_TASK_SLOT_BYTES,
                                   .mask = h->task_slots - 1 };
    ch->results = (struct chan_end){ .ctl = &ctl[1],
                                     .slots = b + CHAN_SLOTS_OFF +
                                              (size_t)h->task_slots * CHAN_TASK_SLOT_BYTES,
                                     .slot_bytes = CHAN_RESULT_SLOT_BYTES,
                                     .mask = h->result_slots - 1 };
    /* each side starts where the shared counters say (zero in a new file) */
    ch->tasks.mine = __atomic_load_n(daemon_side ? &ctl[0].tail : &ctl[0].head, __ATOMIC_ACQUIRE);
    ch->tasks.other = ch->tasks.mine;
    ch->results.mine = __atomic_load_n(daemon_side ? &ctl[1].head : &ctl[1].tail, __ATOMIC_ACQUIRE);
    ch->results.other = ch->results.mine;
}

int chan_create(uint32_t owner, uint32_t task_slots, uint32_t result_slots, struct chan *ch)
{
    size_t bytes = chan_file_bytes(task_slots, result_slots);
    if (bytes == 0)
        return -EINVAL;
    char name[32];
    snprintf(name, sizeof(name), "sigflow-chan-%" PRIu32, owner);
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    int rc;
    if (ftruncate(fd, (off_t)bytes) != 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        rc = -errno;
        goto out_close_fd;
    }
    void *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        rc = -errno;
        goto out_close_fd;
    }
    struct chan_file_hdr *h = base;
    *h = (struct chan_file_hdr){ .magic = CHAN_MAGIC,
                                 .version = CHAN_VERSION,
                                 .task_slot_bytes = CHAN_TASK_SLOT_BYTES,
                                 .result_slot_bytes = CHAN_RESULT_SLOT_BYTES,
                                 .task_slots = task_slots,
                                 .result_slots = result_slots,
                                 .owner = owner,
                                 .file_bytes = bytes };
    chan_layout(ch, base, bytes, h, true);
    return fd;

out_close_fd:
    close(fd);
    return rc;
}

int chan_attach(int fd, size_t expect_bytes, struct chan *ch)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (st.st_size < 0 || (size_t)st.st_size != expect_bytes || expect_bytes < CHAN_SLOTS_OFF)
        return -EBADMSG;
    /* The size just checked must hold while mapped: a file that can still shrink would turn
     * our next load from the rings into SIGBUS. chan_create seals it; a file without seals
     * (not a memfd, F_GET_SEALS fails with EINVAL) is not a channel. */
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0)
        return errno == EINVAL ? -EBADMSG : -errno;
    if (!(seals & F_SEAL_SHRINK))
        return -EBADMSG;
    void *base = mmap(NULL, expect_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        return -errno;
    struct chan_file_hdr h;
    memcpy(&h, base, sizeof(h)); /* one copy: the checks below and the layout read the same */
    if (h.magic != CHAN_MAGIC || h.version != CHAN_VERSION ||
        h.task_slot_bytes != CHAN_TASK_SLOT_BYTES ||
        h.result_slot_bytes != CHAN_RESULT_SLOT_BYTES || h.file_bytes != expect_bytes ||
        chan_file_bytes(h.task_slots, h.result_slots) != expect_bytes) {
        munmap(base, expect_bytes);
        return -EBADMSG;
    }
    chan_layout(ch, base, expect_bytes, &h, false);
    return 0;
}

void chan_detach(struct chan *ch)
{
    if (ch->base)
        munmap(ch->base, ch->bytes);
    memset(ch, 0, sizeof(*ch));
}

/* ORDERING: a producer fills a slot, then stores its tail (release); a consumer loads the
 * tail (acquire), copies the slot out, then stores its head (release); the producer loads
 * the head (acquire) before it writes over a slot. The counters are free-running u64 and
 * compared by difference (mod 2^64), so they stay right across a wrap: the peer's counter is
 * valid when it is within one ring of ours on its side, and a counter that moved backwards
 * or past the ring is a distance larger than the ring. */

/* The consumer's head, as the producer read it: at most one ring behind the tail. */
static bool chan_head_ok(const struct chan_end *e, uint64_t head)
{
    return e->mine - head <= (uint64_t)e->mask + 1;
}

/* The producer's tail, as the consumer read it: at most one ring ahead of the head. */
static bool chan_tail_ok(const struct chan_end *e, uint64_t tail)
{
    return tail - e->mine <= (uint64_t)e->mask + 1;
}

uint32_t chan_room(struct chan_end *e)
{
    uint64_t head = __atomic_load_n(&e->ctl->head, __ATOMIC_ACQUIRE);
    if (!chan_head_ok(e, head))
        return 0; /* broken peer: chan_push says so */
    e->other = head;
    return (uint32_t)((uint64_t)e->mask + 1 - (e->mine - head));
}

uint32_t chan_pending(struct chan_end *e)
{
    uint64_t tail = __atomic_load_n(&e->ctl->tail, __ATOMIC_ACQUIRE);
    if (!chan_tail_ok(e, tail))
        return 0; /* broken peer: chan_pop says so */
    e->other = tail;
    return (uint32_t)(tail - e->mine);
}

int chan_push(struct chan_end *e, const void *msg, size_t len)
{
    if (len > e->slot_bytes)
        return -EINVAL;
    if (e->mine - e->other > e->mask) { /* full as last seen: look again */
        uint64_t head = __atomic_load_n(&e->ctl->head, __ATOMIC_ACQUIRE);
        if (!chan_head_ok(e, head))
            return -EBADMSG;
        e->other = head;
        if (e->mine - head > e->mask)
            return -ENOSPC;
    }
    uint8_t *slot = e->slots + (size_t)(e->mine & e->mask) * e->slot_bytes;
    memcpy(slot, msg, len);
    memset(slot + len, 0, e->slot_bytes - len);
    e->mine++;
    __atomic_store_n(&e->ctl->tail, e->mine, __ATOMIC_RELEASE);
    return 0;
}

int chan_pop(struct chan_end *e, void *out, size_t cap)
{
    if (e->mine == e->other) { /* empty as last seen: look again */
        uint64_t tail = __atomic_load_n(&e->ctl->tail, __ATOMIC_ACQUIRE);
        if (!chan_tail_ok(e, tail))
            return -EBADMSG;
        e->other = tail;
        if (tail == e->mine)
            return -ENOENT;
    }
    const uint8_t *slot = e->slots + (size_t)(e->mine & e->mask) * e->slot_bytes;
    memcpy(out, slot, cap < e->slot_bytes ? cap : e->slot_bytes);
    e->mine++;
    __atomic_store_n(&e->ctl->head, e->mine, __ATOMIC_RELEASE);
    return 0;
}

static bool chan_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

bool chan_result_valid(const struct chan_result *r)
{
    if (r->kind != CHAN_RES_DONE && r->kind != CHAN_RES_FAILED &&
        r->kind != CHAN_RES_ATTEMPT_FAILED)
        return false;
    if (r->has_result > 1 || r->reason_len > CHAN_REASON_MAX || r->attempt == 0)
        return false;
    return chan_zero(r->reserved, sizeof(r->reserved));
}

static bool chan_name_ok(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

bool chan_task_valid(const struct chan_task *t)
{
    if (t->kind != CHAN_TASK_RUN && t->kind != CHAN_TASK_CANCEL)
        return false;
    if (t->type_len == 0 || t->type_len > CHAN_TYPE_MAX || t->id_len == 0 ||
        t->id_len > CHAN_ID_MAX || t->activity_len == 0 || t->activity_len >= CHAN_NAME_MAX)
        return false;
    if (t->nargs > CHAN_PARAMS_MAX || t->args_len > CHAN_ARGS_MAX || t->attempt == 0)
        return false;
    for (unsigned i = 0; i < t->nargs; i++)
        if (!chan_name_ok(t->param[i], CHAN_NAME_MAX) || t->param[i][0] == '\0')
            return false;
    return true;
}

int chan_idempotency_key(uint64_t key_hi, uint64_t key_lo, uint32_t seq, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%016" PRIx64 "%016" PRIx64 "-%" PRIu32, key_hi, key_lo, seq);
    if (n < 0 || (size_t)n >= cap)
        return -ENOSPC;
    return n;
}

int chan_hello_send(int sock, const struct chan_hello *h, const int *fds, unsigned n)
{
    if (n > CHAN_OWNERS_MAX)
        return -EMSGSIZE;
    union {
        char buf[CMSG_SPACE(CHAN_HELLO_SPACES)];
        struct cmsghdr align;
    } u;
    struct iovec iov = { .iov_base = (void *)h, .iov_len = sizeof(*h) };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (n > 0) {
        memset(&u, 0, sizeof(u));
        msg.msg_control = u.buf;
        msg.msg_controllen = CMSG_SPACE(n * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(n * sizeof(int));
        memcpy(CMSG_DATA(c), fds, n * sizeof(int));
    }
    ssize_t w = sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (w < 0)
        return -errno;
    return w == (ssize_t)sizeof(*h) ? 0 : -EIO;
}

int chan_hello_recv(int sock, struct chan_hello *h, int *fds, unsigned max)
{
    union {
        char buf[CMSG_SPACE(CHAN_HELLO_SPACES)];
        struct cmsghdr align;
    } u;
    struct chan_hello got;
    struct iovec iov = { .iov_base = &got, .iov_len = sizeof(got) };
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)
    };
    ssize_t r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (r < 0)
        return -errno;
    /* Descriptors first: they are ours once recvmsg returned, whatever the message is. A
     * SEQPACKET message of zero bytes can carry SCM_RIGHTS (recvmsg returns 0 with them
     * installed), so 0 is only "the peer closed" when nothing came with it. */
    unsigned n = 0;
    int rc = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
            if (n < max)
                fds[n++] = fd;
            else
                close(fd);
        }
    }
    if (r == 0 && msg.msg_controllen == 0)
        rc = -ECONNRESET;
    else if ((size_t)r != sizeof(got) || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
             got.magic != CHAN_MAGIC || got.version != CHAN_VERSION)
        rc = -EBADMSG;
    if (rc != 0) {
        for (unsigned i = 0; i < n; i++)
            close(fds[i]);
        return rc;
    }
    *h = got;
    return (int)n;
}
