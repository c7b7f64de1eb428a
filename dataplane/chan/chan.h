/*
 * chan.h — the activity channel between sigflowd's owner cores and sigflow-control: per
 * owner, one shared memory file (memfd) holding two single-producer/single-consumer rings
 * of fixed-size slots. No DPDK, no syscalls on the data path: a producer copies a slot in
 * and publishes its tail, a consumer copies a slot out and publishes its head.
 *
 *   TASKS   owner core → sigflow-control   struct chan_task (CHAN_TASK_SLOT_BYTES)
 *   RESULTS sigflow-control → owner core   struct chan_result (CHAN_RESULT_SLOT_BYTES)
 *
 * Why shared memory and not a SEQPACKET socket: the owner core polls its inbound work
 * every loop pass; a ring costs it one cache line read when empty, a socket a syscall
 * (perf/chan/README.md has the figures; docs/control.md "The channel").
 *
 * FILE LAYOUT (both processes on one host: native byte order, one ABI; CHAN_VERSION names it)
 *
 *      0  struct chan_file_hdr   magic, version, slot sizes and counts, file bytes   64 B
 *     64  struct chan_ring_ctl   TASKS: tail (producer's line), head (consumer's)    128 B
 *    192  struct chan_ring_ctl   RESULTS                                             128 B
 *    320  task slots   (task_slots × CHAN_TASK_SLOT_BYTES)
 *      …  result slots (result_slots × CHAN_RESULT_SLOT_BYTES)
 *
 * Indices are free-running u64 counters; slot i lives at i mod slots (a power of two).
 * TRUST: sigflowd creates the file and is the only one who sizes it; each side validates
 * the other's counters (a head/tail that moved backwards or past the ring is -EBADMSG, and
 * the daemon then drops the connection) and copies a slot out before validating it, so a
 * peer writing into the shared pages cannot make the reader act on bytes it did not check.
 *
 * The handshake (chan_hello, over a unix SEQPACKET socket DIR/activity.sock): the control
 * process sends struct chan_hello; the daemon answers with its own, owner_count file
 * descriptors attached (SCM_RIGHTS). The connection stays open: when it closes, the daemon
 * knows the control process is gone; a new connection gets new files, and every task
 * without a logged outcome is dispatched again (at least once).
 */
#ifndef CHAN_H
#define CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHAN_MAGIC             0x314e414843465347ull /* "GSFCHAN1" */
#define CHAN_VERSION           1u
#define CHAN_TASK_SLOT_BYTES   1024u
#define CHAN_RESULT_SLOT_BYTES 256u
#define CHAN_SLOTS_MIN         16u
#define CHAN_SLOTS_MAX         (1u << 20)
#define CHAN_SLOTS_DEFAULT     4096u
#define CHAN_OWNERS_MAX        64u /* file descriptors in one handshake */

#define CHAN_TYPE_MAX     32u  /* == SF_TYPE_LEN_MAX */
#define CHAN_ID_MAX       64u  /* == SF_ID_LEN_MAX */
#define CHAN_NAME_MAX     32u  /* activity and parameter names: FLOW_NAME_LEN_MAX + 1 */
#define CHAN_PARAMS_MAX   8u   /* == FLOW_PARAMS_MAX */
#define CHAN_ARGS_MAX     208u /* == RT_TASK_ARGS_BYTES: CBOR array of the arguments */
#define CHAN_REASON_MAX   192u
#define CHAN_IDEM_KEY_MAX 48u /* "KEYHEX-SEQ": 32 hex digits, '-', up to 10 digits, NUL */

enum chan_task_kind {
    CHAN_TASK_RUN = 1,    /* execute one attempt sequence of an activity run */
    CHAN_TASK_CANCEL = 2, /* the run was cancelled or replaced: abandon it (advisory) */
};

/** One task, owner → control. Names are not NUL-terminated: their lengths say. */
struct chan_task {
    uint8_t kind; /* enum chan_task_kind */
    uint8_t type_len, id_len, activity_len;
    uint8_t nargs;
    uint8_t reserved0;
    uint16_t args_len;
    uint32_t part_id;
    uint16_t act_index;
    uint16_t owner;
    uint32_t seq;          /* the run's sequence number in its workflow */
    uint32_t attempt;      /* the attempt this dispatch starts with: 1 + attempts logged */
    uint32_t max_attempts; /* 0: forever */
    uint32_t reserved1;
    uint64_t key_hi, key_lo;
    uint64_t backoff_initial_ns, backoff_max_ns;
    double backoff_multiplier;
    uint64_t start_to_close_ns; /* one attempt */
    uint64_t deadline_ns;       /* schedule-to-close (realtime): the owner fails it then; 0 none */
    uint64_t dispatched_ns;     /* realtime, when the owner pushed it */
    char type[CHAN_TYPE_MAX];
    char id[CHAN_ID_MAX];
    char activity[CHAN_NAME_MAX];
    char param[CHAN_PARAMS_MAX][CHAN_NAME_MAX]; /* NUL-terminated names */
    uint8_t args[CHAN_ARGS_MAX];
};
_Static_assert(sizeof(struct chan_task) <= CHAN_TASK_SLOT_BYTES, "a task fits its slot");

enum chan_result_kind {
    CHAN_RES_DONE = 1,           /* the run succeeded (result if has_result) */
    CHAN_RES_FAILED = 2,         /* the run failed for good: attempts exhausted or permanent */
    CHAN_RES_ATTEMPT_FAILED = 3, /* attempt `attempt` failed and will be retried */
};

/** One result, control → owner. */
struct chan_result {
    uint8_t kind; /* enum chan_result_kind */
    uint8_t has_result;
    uint16_t act_index;
    uint32_t part_id;
    uint32_t seq;
    uint32_t attempt;
    uint64_t key_hi, key_lo;
    int64_t result;
    uint16_t reason_len;
    uint8_t reserved[6];
    char reason[CHAN_REASON_MAX]; /* not NUL-terminated */
};
_Static_assert(sizeof(struct chan_result) <= CHAN_RESULT_SLOT_BYTES, "a result fits its slot");

struct chan_file_hdr {
    uint64_t magic;
    uint32_t version;
    uint32_t task_slot_bytes, result_slot_bytes;
    uint32_t task_slots, result_slots;
    uint32_t owner;
    uint64_t file_bytes;
    uint8_t reserved[24];
};
_Static_assert(sizeof(struct chan_file_hdr) == 64, "header is one line");

struct chan_ring_ctl {
    _Alignas(64) uint64_t tail; /* written by the producer only */
    _Alignas(64) uint64_t head; /* written by the consumer only */
};
_Static_assert(sizeof(struct chan_ring_ctl) == 128, "two lines");

/** The handshake message, both directions. */
struct chan_hello {
    uint64_t magic;
    uint32_t version;
    uint32_t owner_count; /* daemon: files attached; control: 0 */
    uint32_t task_slots, result_slots;
    uint64_t file_bytes;
    int32_t pid;
    uint32_t reserved;
};

/** One end of one ring in this process. Plain struct, owned by one thread. */
struct chan_end {
    struct chan_ring_ctl *ctl;
    uint8_t *slots;
    uint32_t slot_bytes, mask;
    uint64_t mine;  /* producer: next tail; consumer: next head */
    uint64_t other; /* last value read of the other side's counter */
};

/** A mapped channel file: the two rings, seen from one side. */
struct chan {
    void *base;
    size_t bytes;
    uint32_t owner;
    struct chan_end tasks, results;
};

/** Bytes of a channel file with these slot counts (each a power of two in range), or 0. */
size_t chan_file_bytes(uint32_t task_slots, uint32_t result_slots);

/**
 * Create a channel file for `owner` (memfd, sealed against resizing) and map it.
 * Returns the file descriptor (≥ 0) with *ch ready for the daemon's side (producer of
 * TASKS, consumer of RESULTS), or -EINVAL (slot counts), -errno of memfd_create, ftruncate,
 * fcntl or mmap. On error nothing is left open or mapped.
 */
int chan_create(uint32_t owner, uint32_t task_slots, uint32_t result_slots, struct chan *ch);

/**
 * Map the channel file fd received in a handshake, for the control side (consumer of TASKS,
 * producer of RESULTS). Checks the file's size against `expect_bytes` (fstat), that it is
 * sealed against shrinking (a mapped file that shrinks faults the reader), and its header
 * (magic, version, geometry) before using any of it. Returns 0, -EBADMSG for a file that is
 * not a channel of this version, or -errno of fstat/fcntl/mmap. Does not close fd.
 */
int chan_attach(int fd, size_t expect_bytes, struct chan *ch);

/** Unmap. Safe on a zeroed struct. */
void chan_detach(struct chan *ch);

/** Push one slot (len ≤ the ring's slot size; the rest of the slot is zeroed).
 *  Returns 0, -EINVAL when len is larger than a slot, -ENOSPC when the ring is full,
 *  -EBADMSG when the consumer's head is not within the ring (a broken peer). */
int chan_push(struct chan_end *e, const void *msg, size_t len);

/** Copy the oldest slot out (cap bytes at most). Returns 0, -ENOENT when the ring is empty,
 *  -EBADMSG when the producer's tail is not within the ring (a broken peer). */
int chan_pop(struct chan_end *e, void *out, size_t cap);

/** Free slots the producer can push now (refreshes its view of the consumer's head). */
uint32_t chan_room(struct chan_end *e);

/** Slots waiting for the consumer (refreshes its view of the producer's tail). */
uint32_t chan_pending(struct chan_end *e);

/**
 * Check a result the control process wrote (copied out of the ring): kind, lengths and
 * reserved bytes. Returns true when every field is in range; the owner still checks that
 * the run exists (a result for an unknown run is ignored by the runtime).
 */
bool chan_result_valid(const struct chan_result *r);

/** Check a task the daemon wrote (the control side's view): kind, lengths, NUL names. */
bool chan_task_valid(const struct chan_task *t);

/** The run's idempotency key "KEYHEX-SEQ" (as rt_task_idempotency_key): length, or
 *  -ENOSPC when cap is too small. */
int chan_idempotency_key(uint64_t key_hi, uint64_t key_lo, uint32_t seq, char *buf, size_t cap);

/**
 * Send the daemon's hello with fds[0..n) attached (SCM_RIGHTS) on a SEQPACKET socket, or
 * the control's hello (n = 0). Returns 0 or -errno (-EMSGSIZE for n > CHAN_OWNERS_MAX).
 */
int chan_hello_send(int sock, const struct chan_hello *h, const int *fds, unsigned n);

/**
 * Receive a hello and up to max descriptors. Returns the number of descriptors received
 * (closing any beyond max or of a truncated message), -EBADMSG for a message that is not
 * a hello of this version (its descriptors closed, also for an empty message that carried
 * some), -ECONNRESET when the peer closed (or sent an empty message without descriptors:
 * SEQPACKET reads both as 0 bytes), or -errno of recvmsg.
 */
int chan_hello_recv(int sock, struct chan_hello *h, int *fds, unsigned max);

#endif
