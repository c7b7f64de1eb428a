/*
 * rt.h — the workflow runtime of an owner core, on plain memory (no DPDK, no I/O).
 *
 * Everything an owner core needs to run workflow instances: per-partition instance state
 * (table, record arenas, key store, in-flight activity tasks), the apply functions for the
 * three inputs (signals, timer firings, activity results), a per-core hierarchical timer
 * wheel and a per-core bounded outbound task queue.
 *
 * DETERMINISM. The partition state (struct rt_part and its region) is a pure function of
 * the sequence of apply calls made on it (rt_apply_signal, rt_apply_timer,
 * rt_apply_activity_result, rt_note_attempt, rt_sweep_tombstones) and the registry's
 * deploy sequence: the same
 * calls in the same order give byte-identical state (rt_part_digest; the timer-node words
 * inside each instance are core-side links and are excluded). The wheel, the outbound
 * queue and the counters of struct rt_core are volatile core state: they are rebuilt from
 * the partitions after recovery (rt_timers_rebuild, rt_tasks_reset, rt_core_recount).
 *
 * OWNER LOOP (what the daemon does, in this order):
 *   signal:  key = wf_key_make(type, id); part = the partition of key;
 *            [burst: rt_prefetch(part, key) then rt_prefetch_instance(part, key)]
 *            reserve log space → log the event (with its receive time) → LSN
 *            st = rt_apply_signal(core, part, &ev /+ now_ns, cause = LSN/, &res)
 *            ACK st (rt_status_ack) once LSN is durable.
 *   timers:  n = rt_timers_due(core, now_ns, max, firings);   (nothing applied yet)
 *            for each firing: log (partition, key, slot, due_ns) → LSN;
 *            rt_apply_timer(core, part, key, slot, due_ns, LSN, &res)
 *            EVERY yielded firing must be applied (or the wheel rebuilt): a yielded timer
 *            is out of the wheel until its firing is applied.
 *   result:  log (partition, key, activity index, seq, done/failed, result) → LSN;
 *            rt_apply_activity_result(...);  attempts: log, then rt_note_attempt(...)
 *   tasks:   while (rt_tasks_peek(core, &t) == 0 && t.cause <= durable_lsn)
 *                send t to the control plane; rt_tasks_pop(core);
 *   deploy:  compile off the data path, store the blob, rt_registry_deploy → publish the
 *            new registry (a release store; registries never change and are never freed
 *            while the node runs) → rt_core_set_registry(core, reg) at the top of the loop.
 *   sweep:   now and then, outside a burst (not between rt_prefetch_instance_ref and
 *            rt_apply_signal_ref, not between rt_tasks_peek and rt_tasks_pop): log
 *            (partition, now_ns, budget) → LSN; rt_sweep_tombstones(core, part, now_ns,
 *            budget). Replay makes the same call from the record.
 *   recovery: load snapshot partitions, deploy the logged defs, replay the logged inputs
 *            through the same apply functions (do NOT call rt_timers_due meanwhile), then
 *            rt_timers_rebuild(core), rt_tasks_reset(core) (re-dispatches every in-flight
 *            activity: at-least-once), and resume. Timers due while the node was down sit
 *            in the wheel below its position and fire, in due order, at the next
 *            rt_timers_due.
 *
 * MEMORY. A partition is one caller-allocated region (sf_mem_alloc), sized by
 * rt_part_mem_size(cfg) from configuration, laid out by rt_part_init:
 *   struct rt_part                header (deterministic state only)
 *   wf_table                      128-bit key → instance ref (wf_table.h)
 *   key store                     entries u8 id_len, id bytes (at least 5 bytes); an
 *                                 instance's key_ref is the offset of its entry (the type
 *                                 comes from def_id); freed entries are reused (rt_sweep.c)
 *   task pool                     tasks_max x struct rt_task_slot (256 B): in-flight
 *                                 activities with their encoded arguments
 *   chunk directory               u16 def id per chunk (RT_DEF_NONE: free)
 *   chunks                        chunk_count x RT_CHUNK_BYTES; a chunk belongs to one def
 *                                 (type, version) and holds instances of its stride; freed
 *                                 instance slots go to a per-def free list, taken first
 * An instance ref is chunk << RT_CHUNK_SLOT_BITS | index in chunk. An instance is
 *   struct rt_inst (64 B) | rt_tnode per timer slot (16 B each) | the VM record.
 * Nothing is allocated per event. When the table, the chunks or the key store are full a
 * new instance is refused with RT_FULL (counted per cause). Activities: while the task pool
 * has at least as many free slots as the definition has activities, every input runs.
 * Below that, a signal or timer runs its handler first on a copy of the record (a dry run:
 * the VM only writes the record and its command list) and is refused with RT_BUSY, nothing
 * changed, only when the handler would schedule more activity runs than there are free
 * slots — so a pool held by slow activities refuses only what would start another one, and
 * every other input keeps flowing. Deterministic (the same state decides the same way on
 * replay). The daemon answers RT_FULL "full" and RT_BUSY "busy".
 *
 * DEDUPE. Per instance a high-water mark H (largest event id applied) and a 64-bit window:
 * bit i set = id H-1-i was applied. An id > H is new (the window slides); H itself or a set
 * bit is a duplicate; an id below H-64 is stale; an unset bit inside the window is applied
 * and set. Events without event id (JSON without "event_id") skip dedupe. The first
 * signal of a new instance always applies and starts the window.
 *
 * TOMBSTONES. A completed instance stays in the table with its record and dedupe state;
 * signals to it return RT_COMPLETED and change nothing (results of its still running
 * activities are accepted only to free their tasks). After tombstone_retention_ns
 * (completion time, in ~1.07 s units, + retention <= now) the tombstone has expired:
 *  - the next signal to that id starts a new instance of the newest version in its place
 *    (RT_CREATED; the old record is re-initialised when the def is the same, otherwise the
 *    new version's slot is taken and the old one goes back to its def's free list; counted
 *    in tombstones_reused / records_abandoned);
 *  - rt_sweep_tombstones, which the daemon logs and calls now and then, removes it for
 *    good: tasks dropped, key deleted from the table, instance slot and key store entry
 *    given back for reuse (tombstones_expired). A later signal to a swept id starts a
 *    fresh instance (RT_CREATED) like any new id. So under steady churn (workflows that
 *    start, complete and are never signalled again) table, chunks and key store level off.
 * rt_list with RT_LIST_COMPLETED reports the tombstones not yet swept.
 *
 * Single writer: the owner core. Nothing here is thread safe except reading a registry.
 */
#ifndef RT_H
#define RT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt_registry.h"
#include "flow.h"
#include "wf_key.h"
#include "sf_proto.h"
#include "wf_table.h"

/* ---- limits ---------------------------------------------------------------------------- */

#define RT_CHUNK_BYTES      16384u /* arena chunk: the unit a (type, version) grows by */
#define RT_CHUNK_SLOT_BITS  8u     /* instances per chunk < 256 (min stride 64 B) */
#define RT_CHUNKS_MAX       (1u << 24)
#define RT_TASK_SLOT_BYTES  256u
#define RT_TASK_ARGS_BYTES  208u /* CBOR array of an activity's arguments */
#define RT_CMDS_MAX         64u  /* commands of one VM call the core can hold */
#define RT_DEDUPE_WINDOW    64u  /* event ids kept behind the high-water mark */
#define RT_WHEEL_LEVELS     6u
#define RT_WHEEL_BUCKETS    256u
#define RT_WHEEL_TICK_SHIFT 20u /* one tick = 2^20 ns = 1.048576 ms */
#define RT_NONE             UINT32_MAX
#define RT_PART_MAGIC       0x52545032u /* "RTP2": free lists, sweep cursor (was "RTPT") */
#define RT_CORE_PARTS_MAX   65536u      /* partitions of one core (16 bits in timer links) */

_Static_assert(RT_CHUNK_BYTES / 64u <= (1u << RT_CHUNK_SLOT_BITS), "slot bits hold a chunk");
_Static_assert(RT_WHEEL_LEVELS * 8u >= 64u - RT_WHEEL_TICK_SHIFT, "levels cover u64 ns");

/* ---- status ---------------------------------------------------------------------------- */

enum rt_status {
    RT_APPLIED = 0,        /* applied to a running instance */
    RT_CREATED = 1,        /* signal-with-start: new instance created, then applied */
    RT_DUPLICATE = 2,      /* event id already applied: nothing changed */
    RT_STALE = 3,          /* event id older than the dedupe window: nothing changed */
    RT_UNKNOWN_TYPE = 4,   /* no deployed type of that name */
    RT_UNKNOWN_SIGNAL = 5, /* the instance's version declares no such signal */
    RT_BAD_FIELDS = 6,     /* fields malformed or not matching the signal's declaration */
    RT_COMPLETED = 7,      /* the instance has completed (tombstone): nothing changed */
    RT_FULL = 8,           /* no room (table, arena, key store or tasks): refused */
    RT_NOT_FOUND = 9,      /* timer / activity input for an instance that does not exist */
    RT_IGNORED = 10,       /* timer or activity result no longer current (cancelled,
                              re-armed, superseded): nothing changed */
    RT_BUSY = 11,          /* the handler would start more activities than the partition's
                              task pool has free slots: refused, nothing changed */
    RT_TEXT_TOO_LONG = 12, /* a text field is longer than its declared text(N): refused,
                              nothing changed (well-formed otherwise; ACK malformed) */
};
#define RT_STATUS_COUNT 13

/** Stable snake_case name of a status ("applied", ...). Can't fail. */
const char *rt_status_name(int st);

/** The ACK status a signal's rt_status maps to (duplicate/completed → duplicate, full →
 *  full, busy → busy, unknown type/signal → unknown, bad fields and text too long →
 *  malformed). Can't fail. */
enum sf_ack_status rt_status_ack(int st);

/* ---- partition ------------------------------------------------------------------------- */

struct rt_part_config {
    uint32_t instances_max;  /* table capacity (instances incl. tombstones) */
    uint32_t chunk_count;    /* arena chunks of RT_CHUNK_BYTES */
    uint32_t tasks_max;      /* in-flight activity tasks */
    uint64_t keystore_bytes; /* id bytes + 1 per instance */
};

/**
 * Configuration for a partition that holds `instances` instances of stride `stride_max`
 * bytes (the largest def stride expected), `defs_expected` defs growing arenas at the same
 * time, ids of id_len_avg bytes and tasks_max tasks. Can't fail (clamps to the limits).
 */
void rt_part_config_for(struct rt_part_config *cfg, uint32_t instances, uint32_t stride_max,
                        uint32_t defs_expected, uint32_t id_len_avg, uint32_t tasks_max);

/** Bytes a partition of cfg needs, 0 when cfg is out of range. Can't fail. */
size_t rt_part_mem_size(const struct rt_part_config *cfg);

struct rt_part; /* one partition's state, in its region */

/**
 * Initialise an empty partition `part_id` in mem[0..mem_bytes) (64-byte aligned, e.g. a
 * slice of an sf_mem_alloc region). Returns the partition, or NULL when cfg is out of
 * range, mem is misaligned or too small.
 */
struct rt_part *rt_part_init(void *mem, size_t mem_bytes, const struct rt_part_config *cfg,
                             uint32_t part_id);

/** Per-partition counters (deterministic: part of the partition state). */
struct rt_part_stats {
    uint64_t instances;          /* instances created (tombstone reuses included) */
    uint64_t completed;          /* instances that completed */
    uint64_t full_table;         /* refused: table full */
    uint64_t full_arena;         /* refused: no free chunk */
    uint64_t full_keystore;      /* refused: key store full */
    uint64_t full_tasks;         /* refused busy: the task pool could not hold the handler's runs */
    uint64_t tombstones_reused;  /* expired tombstones restarted by a signal */
    uint64_t records_abandoned;  /* restarts on another version (the old record's slot goes
                                    back to its def's free list since tombstone sweeping) */
    uint64_t args_truncated;     /* task arguments shortened to RT_TASK_ARGS_BYTES */
    uint64_t tombstones_expired; /* tombstones removed by rt_sweep_tombstones (and rt_delete) */
    uint64_t sweep_slots;        /* table slot positions examined by rt_sweep_tombstones */
    uint64_t slots_reused;       /* instances placed in a freed slot */
    uint64_t keys_reused;        /* key store entries taken from the free lists */
};

/**
 * Bytes at the start of p's region that hold its state: the header, table, key store, task
 * pool, chunk directory and the chunks in use (chunks are taken in order and never given
 * back). Everything after it is still as rt_part_init left it: zero, on zeroed memory.
 * A snapshot needs only this prefix. Can't fail.
 */
size_t rt_part_used_bytes(const struct rt_part *p);

/**
 * Check that bytes[0..len) is a partition image (rt_part_used_bytes long) of a partition
 * whose region is region_bytes (same configuration), before it is copied over a fresh,
 * zeroed region. Returns 0 or -EBADMSG.
 */
int rt_part_image_check(const void *bytes, size_t len, size_t region_bytes);

uint32_t rt_part_id(const struct rt_part *p);
uint32_t rt_part_count(const struct rt_part *p); /* instances in the table */
void rt_part_stats_get(const struct rt_part *p, struct rt_part_stats *out);
/** Bytes in use: chunks taken x RT_CHUNK_BYTES, key store bytes, table and task pool
 *  bytes, as separate numbers (memory reporting). Can't fail. */
void rt_part_usage(const struct rt_part *p, uint64_t *chunk_bytes, uint64_t *keystore_bytes,
                   uint64_t *table_bytes, uint64_t *task_bytes);

/** Space freed for reuse: free instance slots (all defs) and bytes in free key store
 *  entries (both already counted in rt_part_usage's numbers). Can't fail. */
void rt_part_reclaimable(const struct rt_part *p, uint64_t *free_slots, uint64_t *free_key_bytes);

struct rt_core; /* an owner core's runtime (below) */

/**
 * Remove expired tombstones of partition p (owned by core c): examine at most `budget`
 * table slot positions (bucket_count x 3 of them, empty ones included), starting at the
 * partition's sweep cursor and wrapping around, and remove every completed instance whose
 * tombstone has expired at now_ns (see TOMBSTONES): its in-flight tasks are dropped (stale
 * queue entries are skipped), its timer nodes unlinked, its key deleted from the table,
 * its instance slot and key store entry given back for reuse. The cursor is saved, so
 * successive calls cover the whole table. Deterministic: a pure function of the partition
 * state, now_ns, budget and the core's tombstone_retention_ns; log (now_ns, budget) and
 * replay the call. Not inside a burst (see OWNER LOOP). Cost O(budget) plus the removed
 * instances' tasks. Returns the number removed (0..min(budget, INT_MAX)). Can't fail.
 */
int rt_sweep_tombstones(struct rt_core *c, struct rt_part *p, uint64_t now_ns, unsigned budget);

/**
 * Delete the instance of key from p (an operator's `workflow delete`), running or completed,
 * as the sweep removes a tombstone: its in-flight tasks dropped (stale queue entries are
 * skipped), its timer nodes unlinked, its key deleted from the table, its slot and key
 * store entry given back. Nothing of it remains: a later signal to the id creates a new
 * instance. Deterministic: log the call and replay it. Not inside a burst. Returns
 * RT_APPLIED, or RT_NOT_FOUND (nothing changed). Can't fail otherwise.
 */
int rt_delete(struct rt_core *c, struct rt_part *p, struct wf_key key);

/**
 * 64-bit digest of the partition's deterministic state (header, table, key store, task
 * pool, chunk directory, every instance header and record; not the timer links). Two
 * partitions fed the same inputs have the same digest. O(size). Can't fail.
 */
uint64_t rt_part_digest(const struct rt_part *p);

/* ---- core -------------------------------------------------------------------------------- */

struct rt_core_config {
    uint32_t parts_max;              /* partitions this core owns (<= RT_CORE_PARTS_MAX) */
    uint32_t outbound_cap;           /* tasks the outbound queue holds (power of two) */
    uint64_t tombstone_retention_ns; /* how long a completed instance refuses signals */
    uint64_t start_ns;               /* wheel position at start (e.g. the boot time) */
};

struct rt_core;

/** Bytes a core of cfg needs; 0 when cfg is out of range. Can't fail. */
size_t rt_core_mem_size(const struct rt_core_config *cfg);

/** Initialise a core in mem (64-byte aligned, zeroed or not). Returns it or NULL (bad cfg,
 *  misaligned, too small). */
struct rt_core *rt_core_init(void *mem, size_t mem_bytes, const struct rt_core_config *cfg);

/** Make the core own partition p (initialised). Returns its core-local index (>= 0), or
 *  -ENOSPC (parts_max reached), -EEXIST (already attached). */
int rt_core_attach(struct rt_core *c, struct rt_part *p);

/** Use registry `reg` from now on (call at a quiescent point: between inputs). Every
 *  def an instance of this core uses must be in reg (registries only grow). Can't fail. */
void rt_core_set_registry(struct rt_core *c, const struct rt_registry *reg);

const struct rt_registry *rt_core_registry(const struct rt_core *c);

/** Per-core volatile counters (summed over cores by the reader). */
struct rt_core_stats {
    uint64_t status[RT_STATUS_COUNT]; /* results of the apply calls, by status */
    uint64_t timers_fired;            /* firings yielded by rt_timers_due */
    uint64_t timers_armed;            /* nodes linked into the wheel */
    uint64_t tasks_queued;            /* tasks put into the outbound queue */
    uint64_t tasks_flagged;           /* tasks that found the queue full (sent later) */
    uint64_t tasks_popped;
    uint64_t cancels_dropped; /* cancel notices that found the queue full */
};

void rt_core_stats_get(const struct rt_core *c, struct rt_core_stats *out);

/** Instances of def_id on this core: running and completed (tombstones). Can't fail. */
void rt_core_def_counts(const struct rt_core *c, unsigned def_id, uint64_t *running,
                        uint64_t *completed);

/** Running instances of def_id in state `state` on this core (live view). Can't fail. */
uint64_t rt_core_state_count(const struct rt_core *c, unsigned def_id, unsigned state);

/** Recompute the per-def and per-state counts from the attached partitions (after a
 *  snapshot load). O(instances). Can't fail. */
void rt_core_recount(struct rt_core *c);

/* ---- history links ---------------------------------------------------------------------- */

/**
 * An instance's history link: 16 bytes the runtime stores for the daemon and never reads
 * (the location of the instance's newest logged input; all zero = none). It is part of the
 * deterministic partition state: set it only from the logged input being applied (live and
 * replay alike) so that snapshots and replays agree.
 */
struct rt_hlink {
    uint64_t a, b;
};

/** The instance of key in p, RT_NONE when the key is not in the table. Can't fail. */
uint32_t rt_inst_find(const struct rt_part *p, struct wf_key key);

/** The history link of instance ref (a ref from rt_inst_find, rt_prefetch_instance_ref or
 *  rt_effects.inst_ref of p). Can't fail. */
struct rt_hlink rt_inst_hlink(const struct rt_part *p, uint32_t ref);

/** Set the history link of instance ref. Can't fail. */
void rt_inst_set_hlink(struct rt_part *p, uint32_t ref, struct rt_hlink link);

/* ---- inputs ------------------------------------------------------------------------------ */

/** One signal, as the daemon logged it. Strings are views (not NUL-terminated). */
struct rt_event {
    struct wf_key key; /* wf_key_make(type, id) */
    const char *type;
    const char *id;
    const char *signal;
    const uint8_t *fields; /* raw CBOR array, or raw JSON fields object when fields_json */
    uint64_t event_id;
    uint64_t now_ns; /* the node's receive time: the handler's `now` */
    uint64_t cause;  /* opaque (the LSN of the logged event): copied to tasks */
    uint16_t fields_len;
    uint8_t type_len, id_len, signal_len;
    bool has_event_id;
    bool fields_json;
};

/** Fill *out from a parsed protocol event. Can't fail. */
void rt_event_from_sf(struct rt_event *out, const struct sf_event *ev, struct wf_key key,
                      uint64_t now_ns, uint64_t cause);

/** What one apply did (optional out-parameter). */
/** One activity run: activity index in its definition, and its sequence number. */
struct rt_run_id {
    uint16_t act;
    uint32_t seq;
};

#define RT_EFFECT_RUNS 8 /* runs an rt_effects lists (it counts them all in `tasks`) */

struct rt_effects {
    uint32_t inst_ref; /* RT_NONE when no instance was involved */
    uint16_t def_id;
    uint16_t tasks; /* activity tasks created: the first RT_EFFECT_RUNS are in runs[] */
    struct rt_run_id runs[RT_EFFECT_RUNS]; /* in the order the handler scheduled them */
    uint16_t cancels;                      /* activity runs cancelled */
    bool completed;                        /* this call completed the instance */
    int vm_rc;                             /* the VM's return (commands) or enum vm_err */
};

/** Burst stage 1: prefetch the table line of key. Can't fail. */
void rt_prefetch(const struct rt_part *p, struct wf_key key);
/** Burst stage 2 (after stage 1 had time to land): prefetch the instance of key, if any.
 *  Can't fail. */
void rt_prefetch_instance(const struct rt_part *p, struct wf_key key);

/** Burst stage 2, keeping what it found: prefetch the instance of key and return its ref
 *  (RT_NONE when the key is not in the table) for rt_apply_signal_ref. Can't fail. */
uint32_t rt_prefetch_instance_ref(const struct rt_part *p, struct wf_key key);

/**
 * Apply signal ev to partition p (owned by core c): signal-with-start, dedupe, decode the
 * fields by the signal's declaration (CBOR positional, JSON by name; a field of the wrong
 * type is RT_BAD_FIELDS, a text longer than its text(N) — N bytes, counted as carried: UTF-8
 * in CBOR, as written between the quotes in JSON — RT_TEXT_TOO_LONG), run the handler,
 * then apply its commands: timers (re)linked in the wheel, activities stored as tasks and
 * queued, complete → tombstone. Deterministic and bounded. Returns the enum rt_status;
 * *fx (may be NULL) says what happened. Only RT_APPLIED and RT_CREATED change state.
 */
int rt_apply_signal(struct rt_core *c, struct rt_part *p, const struct rt_event *ev,
                    struct rt_effects *fx);

/**
 * rt_apply_signal for a burst, without the table lookup: `ref` is what
 * rt_prefetch_instance_ref(p, ev->key) returned earlier in the same burst (between the two,
 * only apply calls on p; no snapshot load or re-init of p). Events of the burst applied in
 * between may have created the key or restarted its tombstone on another record: such refs
 * (RT_NONE, a completed instance, or a slot freed by that restart) are looked up again. No
 * rt_sweep_tombstones on p in between (a swept slot may be reused by another key). Same
 * result, effects and state as rt_apply_signal(c, p, ev, fx).
 */
int rt_apply_signal_ref(struct rt_core *c, struct rt_part *p, const struct rt_event *ev,
                        uint32_t ref, struct rt_effects *fx);

/**
 * The instance of key now (what rt_inst_find would return), given `ref` from
 * rt_prefetch_instance_ref(p, key) earlier in the same burst under the conditions of
 * rt_apply_signal_ref: ref itself when it still names key's live instance (no lookup),
 * else a fresh lookup. RT_NONE when key has no instance. Can't fail.
 */
uint32_t rt_inst_current(const struct rt_part *p, struct wf_key key, uint32_t ref);

/**
 * rt_apply_signal with `ref` = rt_inst_current(p, ev->key, ...) taken since the last change
 * to p (no lookup at all). Same result, effects and state as rt_apply_signal.
 */
int rt_apply_signal_current(struct rt_core *c, struct rt_part *p, const struct rt_event *ev,
                            uint32_t ref, struct rt_effects *fx);

/**
 * Fire timer `slot` of instance key, armed for due_ns (a firing from rt_timers_due, as
 * logged). The handler runs at time due_ns. Returns RT_APPLIED, RT_IGNORED (not armed for
 * exactly due_ns any more), RT_NOT_FOUND, RT_COMPLETED, RT_FULL (task pool), RT_UNKNOWN_TYPE
 * (def missing from the registry).
 */
int rt_apply_timer(struct rt_core *c, struct rt_part *p, struct wf_key key, unsigned slot,
                   uint64_t due_ns, uint64_t cause, struct rt_effects *fx);

/**
 * Deliver activity `act` run `seq` of instance key: done with `result` (failed == false)
 * or failed. Frees the task. The handler runs at now_ns. Returns RT_APPLIED, RT_IGNORED
 * (seq not the pending run), RT_NOT_FOUND, RT_COMPLETED (instance completed; the task is
 * freed all the same), RT_FULL, RT_UNKNOWN_TYPE.
 */
int rt_apply_activity_result(struct rt_core *c, struct rt_part *p, struct wf_key key, unsigned act,
                             uint32_t seq, bool failed, int64_t result, uint64_t now_ns,
                             uint64_t cause, struct rt_effects *fx);

/** Attempt `attempt` of activity `act` run `seq` failed (the control plane retries it): the
 *  run's attempt count becomes `attempt` unless it is already that high (a report repeated
 *  after a reconnect counts once). Returns RT_APPLIED, RT_IGNORED (stale seq, or not
 *  higher), RT_NOT_FOUND, RT_UNKNOWN_TYPE. */
int rt_note_attempt(struct rt_core *c, struct rt_part *p, struct wf_key key, unsigned act,
                    uint32_t seq, uint32_t attempt);

/* ---- timers -------------------------------------------------------------------------------- */

/** One due timer, not yet applied. */
struct rt_firing {
    struct rt_part *part;
    uint32_t part_id;
    uint32_t slot;
    struct wf_key key;
    uint64_t due_ns;
};

/**
 * Advance the wheel to now_ns and yield up to max firings whose due time lies before the
 * tick that contains now_ns (so a timer fires at most one tick, ~1 ms, late; its handler
 * sees its exact due time). Firings come in due order (tick order across instances, exact
 * due order within one instance). Nothing is applied: the caller logs each firing, then
 * calls rt_apply_timer. Returns the number yielded (0..max). Bounded by max plus the
 * cascades of the ticks crossed. Can't fail.
 */
unsigned rt_timers_due(struct rt_core *c, uint64_t now_ns, unsigned max, struct rt_firing *out);

/** Timer nodes linked in the wheel (armed and not yet yielded). Can't fail. */
uint64_t rt_timers_armed(const struct rt_core *c);

/**
 * Rebuild the wheel from the attached partitions' records (after snapshot load + replay):
 * every armed timer slot of every running instance is linked again, the wheel starts at
 * the earliest due time found, so timers that came due while the node was down fire first,
 * in order. O(instances). Can't fail.
 */
void rt_timers_rebuild(struct rt_core *c);

/* ---- outbound tasks ---------------------------------------------------------------------- */

enum rt_task_kind {
    RT_TASK_RUN = 1,    /* run the activity (attempt, args) */
    RT_TASK_CANCEL = 2, /* advisory: the workflow cancelled run `seq`; stop retrying it */
};

/** One activity task for the control plane (views valid until the next call on the core). */
struct rt_task {
    uint8_t kind; /* enum rt_task_kind */
    uint32_t part_id;
    uint16_t act_index;
    uint8_t nargs;
    uint8_t type_len, id_len;
    uint32_t seq;     /* activity sequence number in its instance */
    uint32_t attempt; /* 1 + attempts counted so far */
    struct wf_key key;
    const char *type, *id, *activity;
    const uint8_t *args; /* CBOR array of the arguments (sf_fields_decode) */
    uint16_t args_len;
    uint64_t cause;             /* the cause of the apply call that scheduled it (LSN) */
    uint64_t serial;            /* partition-wide task number */
    const struct flow_def *def; /* the instance's definition: the activity's policy, names */
    uint64_t deadline_ns;       /* schedule-to-close (realtime, whole seconds); 0 = none */
};

/**
 * The oldest queued task, without removing it. Returns 0, or -ENOENT when no task is
 * queued. Tasks whose activity ended (result, cancel) before they were popped are skipped.
 */
int rt_tasks_peek(struct rt_core *c, struct rt_task *out);

/** Remove the task rt_tasks_peek returned, refill from tasks flagged while the queue was
 *  full. Returns 0 or -ENOENT. */
int rt_tasks_pop(struct rt_core *c);

/** Tasks in the outbound queue (some may be stale) and tasks waiting for room. */
void rt_tasks_pending(const struct rt_core *c, uint32_t *queued, uint64_t *flagged);

/** Forget the queue and queue every in-flight task of every attached partition again, in
 *  creation order (after recovery: at-least-once re-dispatch). Can't fail. */
void rt_tasks_reset(struct rt_core *c);

/**
 * The runs in flight (scheduled, no result applied yet) of the core's partitions, in
 * partition order and, within one, oldest first: skips the first `skip`, copies at most max
 * into out (kind RT_TASK_RUN; views valid until the next call on the core). Returns the
 * number copied. O(skip + max) over in-flight runs; can't fail.
 */
unsigned rt_tasks_list(const struct rt_core *c, uint64_t skip, struct rt_task *out, unsigned max);

/** A run whose schedule-to-close deadline passed (rt_tasks_expired). */
struct rt_expired {
    struct wf_key key;
    uint32_t part_id;
    uint16_t act;
    uint32_t seq;
};

/**
 * Runs in flight whose schedule-to-close deadline is at or before now_ns, looking at up to
 * parts_max partitions from where the previous call stopped (round robin). Copies at most
 * max into out and returns the count. Nothing changes: the caller logs each expiry as the
 * run's failure (rt_apply_activity_result with failed) — an input like any other, so replay
 * sees the same. Can't fail.
 */
unsigned rt_tasks_expired(struct rt_core *c, uint64_t now_ns, unsigned parts_max,
                          struct rt_expired *out, unsigned max);

/** The idempotency key "KEYHEX-SEQ" of a task into buf (>= 45 bytes). Returns its
 *  length or -ENOSPC. */
int rt_task_idempotency_key(const struct rt_task *t, char *buf, size_t cap);

/* ---- inspection ---------------------------------------------------------------------------- */

struct rt_describe_var {
    const char *name;
    struct sf_value value; /* text: view into the record */
};

struct rt_describe_queue {
    const char *name;
    unsigned len;
    struct sf_value items[FLOW_QUEUE_CAP_MAX];
};

struct rt_describe_timer {
    const char *name, *kind;
    unsigned slot;
    uint64_t due_ns;
};

struct rt_describe_activity {
    const char *name;
    unsigned index;
    uint32_t seq, attempts;
};

struct rt_describe {
    const char *type;
    const char *id; /* view into the key store */
    uint8_t id_len;
    uint16_t def_id;
    uint32_t version;
    const char *state;
    bool completed;
    uint64_t signals, last_event_id, dedupe_hwm, created_ns;
    unsigned nvars, nqueues, ntimers, nactivities;
    struct rt_describe_var vars[FLOW_VARS_MAX];
    struct rt_describe_queue queues[FLOW_QUEUES_MAX];
    struct rt_describe_timer timers[FLOW_TIMER_SLOTS_MAX];
    struct rt_describe_activity activities[FLOW_ACTIVITIES_MAX]; /* pending runs */
};

/** Describe instance key of partition p. Returns 0, -ENOENT (no such instance), -EINVAL
 *  (its def is not in the core's registry). */
int rt_describe(const struct rt_core *c, const struct rt_part *p, struct wf_key key,
                struct rt_describe *out);

#define RT_LIST_RUNNING   0x1u
#define RT_LIST_COMPLETED 0x2u

struct rt_list_filter {
    int type_id;       /* -1: any type */
    const char *state; /* NULL: any state */
    unsigned which;    /* RT_LIST_RUNNING | RT_LIST_COMPLETED (0 means both) */
};

struct rt_list_entry {
    struct wf_key key;
    uint16_t def_id;
    uint8_t id_len;
    bool completed;
    const char *type, *id, *state;
};

/**
 * List up to max instances of p matching f (NULL: all), starting at *cursor (0 first) and
 * advancing it; the walk is in table order and stays valid while no instance is created.
 * Returns the number stored; 0 with *cursor == UINT64_MAX at the end. Bounded: examines at
 * most 64 * max + 64 slots per call (returns early, cursor saved). A walk across instance
 * creations or sweeps may miss or repeat entries. Can't fail.
 */
unsigned rt_list(const struct rt_core *c, const struct rt_part *p, const struct rt_list_filter *f,
                 uint64_t *cursor, struct rt_list_entry *out, unsigned max);

#endif /* RT_H */
