/*
 * flow.h — the workflow language: .flow compiler (flow_*) and register VM (vm_*).
 *
 * A workflow type is a .flow text (docs/flow.md) compiled off the data path into a
 * `struct flow_def`: one contiguous, versioned, serializable blob (layout in flow_def.c)
 * plus pointers into it. The blob is what gets logged on deploy and reloaded on recovery;
 * flow_def_load() validates every byte of it (bytecode included), so a bad blob is an
 * error, never a crash.
 *
 * Every workflow instance is a fixed-size byte record laid out by the compiler
 * (flow_def_record_size()). The VM runs one handler on one record: no allocation, no I/O,
 * no clock reads, at most the compiler's instruction bound per handler, and emits commands
 * (timers to arm or cancel, activities to schedule or cancel, complete) into a caller
 * array. Determinism: integer arithmetic wraps (two's complement), x / 0 == 0 and
 * x % 0 == 0, float to int saturates (NaN -> 0), floats are IEEE binary64 without
 * contraction. The same def, record, inputs and times always give the same record and
 * commands.
 *
 * Threading: a def is immutable after compile/load and may be shared by all cores; a
 * record belongs to one core. None of the functions keep global state.
 */
#ifndef SF_FLOW_H
#define SF_FLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sf_proto.h"

/* ---- limits (named, documented in docs/flow.md) ---------------------------------------- */

#define FLOW_NAME_LEN_MAX    31u /* identifiers: workflow, signal, var, state, ... */
#define FLOW_STATES_MAX      64u
#define FLOW_SIGNALS_MAX     64u
#define FLOW_FIELDS_MAX      16u /* fields of one signal (== SF_JSON_FIELDS_MAX) */
#define FLOW_VARS_MAX        64u
#define FLOW_QUEUES_MAX      8u
#define FLOW_QUEUE_CAP_MAX   255u
#define FLOW_TEXT_CAP_MAX    255u /* text(N): N bytes at most */
#define FLOW_ACTIVITIES_MAX  32u
#define FLOW_PARAMS_MAX      8u /* parameters of one activity == VM_ARGS_MAX */
#define FLOW_TIMER_SLOTS_MAX 32u
#define FLOW_RECORD_SIZE_MAX 4096u  /* bytes of one instance record */
#define FLOW_CODE_MAX        65536u /* instructions of one definition */
#define FLOW_ERRORS_MAX      64u    /* errors kept from one compile */
#define FLOW_ERROR_LEN_MAX   240u
#define FLOW_BLOB_FORMAT     1u /* version of the serialized definition format */
/* Nesting: the compiler's passes recurse over these, so each is bounded (and so is the stack
 * a hostile source can make them use). */
/* '(', '-', 'not' and call arguments inside one another */
#define FLOW_EXPR_NEST_MAX 64u
/* operators from an expression's root to a leaf: a + b + c is 2 */
#define FLOW_EXPR_DEPTH_MAX 256u
/* if/elif/else bodies inside one another (one-line or indented) */
#define FLOW_BLOCK_NEST_MAX 32u

_Static_assert(FLOW_FIELDS_MAX == SF_JSON_FIELDS_MAX, "signal fields fit one JSON event");

/** Value types of the language. */
enum flow_type {
    FLOW_T_INT = 1,   /* int64, wraps on overflow */
    FLOW_T_FLOAT = 2, /* IEEE binary64 */
    FLOW_T_BOOL = 3,
    FLOW_T_TEXT = 4, /* text(N) in the record; unbounded (view) in fields and arguments */
};

struct flow_def; /* opaque: a compiled, validated definition */

/** One compile error; `text` is the whole "file:line:col: message" line. */
struct flow_error {
    unsigned line, col;
    char text[FLOW_ERROR_LEN_MAX];
};

/** Errors of one compile, in source order (as many as one pass finds). */
struct flow_errors {
    unsigned count;   /* entries used in err[] */
    unsigned dropped; /* further errors found but not stored */
    struct flow_error err[FLOW_ERRORS_MAX];
};

/* ---- compiler ------------------------------------------------------------------------ */

/**
 * Compile .flow source src[0..len) (need not be NUL-terminated); `file` names it in error
 * messages. On success stores a new def in *out (free with flow_def_free) and returns 0.
 * Errors: -EINVAL when the source has errors (errs lists them, *out untouched);
 * -ENOMEM. `errs` may be NULL when the caller does not want the messages.
 */
int flow_compile_buffer(const char *file, const char *src, size_t len, struct flow_def **out,
                        struct flow_errors *errs);

/**
 * Read and compile the file at `path`. Same contract as flow_compile_buffer, plus
 * -errno (e.g. -ENOENT, -EACCES, -EFBIG past 1 MiB) when the file can't be read; in that
 * case errs holds one "path: reason" entry with line 0.
 */
int flow_compile_file(const char *path, struct flow_def **out, struct flow_errors *errs);

/** Free a def from flow_compile_* or flow_def_load. NULL is fine. Can't fail. */
void flow_def_free(struct flow_def *def);

/* ---- serialized form ----------------------------------------------------------------- */

/**
 * The def's blob: *blob points inside the def (valid until flow_def_free), *len is its
 * size. Byte-identical for identical source. Can't fail.
 */
void flow_def_serialize(const struct flow_def *def, const void **blob, size_t *len);

/**
 * Validate blob[0..len) completely (magic, format, checksum, every table, every
 * instruction, jump, register type and record offset, each handler's bound) and make a
 * def of a private copy. Returns 0 and *out, -EINVAL for any invalid blob (never crashes,
 * never reads outside [blob, blob+len)), -ENOMEM.
 */
int flow_def_load(const void *blob, size_t len, struct flow_def **out);

/* ---- lookups (all O(names) at most; cache the indexes on hot paths) ------------------ */

const char *flow_def_name(const struct flow_def *def);     /* workflow type name */
uint32_t flow_def_version(const struct flow_def *def);     /* `version N` */
uint32_t flow_def_record_size(const struct flow_def *def); /* bytes, multiple of 8 */
/** Upper bound of commands one vm_run_* call can emit: size cmds[] with it. */
unsigned flow_def_cmds_max(const struct flow_def *def);
unsigned flow_def_timer_slot_count(const struct flow_def *def);

unsigned flow_def_state_count(const struct flow_def *def);
/** Name of state i (< count) or NULL. */
const char *flow_def_state_name(const struct flow_def *def, unsigned i);

unsigned flow_def_signal_count(const struct flow_def *def);
/** Index of the signal named name[0..len), or -ENOENT. */
int flow_def_signal_index(const struct flow_def *def, const char *name, size_t len);
const char *flow_def_signal_name(const struct flow_def *def, unsigned sig); /* NULL if bad */
/** Number of fields of signal `sig`, or -EINVAL for a bad index. */
int flow_def_signal_field_count(const struct flow_def *def, unsigned sig);
/** Type of field i of signal sig (declaration order = CBOR array position); 0 if bad. */
enum flow_type flow_def_signal_field_type(const struct flow_def *def, unsigned sig, unsigned i);
const char *flow_def_signal_field_name(const struct flow_def *def, unsigned sig, unsigned i);
/** Position of the field named name[0..len) of signal sig (for JSON), or -ENOENT. */
int flow_def_signal_field_index(const struct flow_def *def, unsigned sig, const char *name,
                                size_t len);

/** Retry/timeout policy of an activity, for the control plane. Durations in ns. */
struct flow_activity_info {
    const char *name;
    unsigned nparams;
    uint32_t max_attempts; /* 0 = retry forever */
    uint64_t backoff_initial_ns, backoff_max_ns;
    double backoff_multiplier;
    uint64_t start_to_close_ns;    /* one attempt */
    uint64_t schedule_to_close_ns; /* all attempts; 0 = no limit */
};

unsigned flow_def_activity_count(const struct flow_def *def);
/** Index of the activity named name[0..len), or -ENOENT. */
int flow_def_activity_index(const struct flow_def *def, const char *name, size_t len);
/** Fill *info for activity i; returns 0 or -EINVAL for a bad index. */
int flow_def_activity(const struct flow_def *def, unsigned i, struct flow_activity_info *info);
const char *flow_def_activity_param_name(const struct flow_def *def, unsigned act, unsigned i);

/** A variable (or queue) as laid out in the record, for `workflow describe`. */
struct flow_var_info {
    const char *name;
    enum flow_type type; /* queues: element type */
    uint32_t text_cap;   /* text(N): N, else 0 */
    uint32_t offset;     /* in the record */
    uint32_t size;       /* bytes in the record (queues: header + storage) */
    uint32_t queue_cap;  /* queues: capacity; variables: 0 */
};

unsigned flow_def_var_count(const struct flow_def *def);
int flow_def_var(const struct flow_def *def, unsigned i, struct flow_var_info *info);
unsigned flow_def_queue_count(const struct flow_def *def);
int flow_def_queue(const struct flow_def *def, unsigned i, struct flow_var_info *info);

/** A timer slot's meaning in a state (slots are shared by states; see docs/flow.md). */
struct flow_timer_info {
    const char *name; /* `as NAME`, or the kind: "after", "every", "silence" */
    const char *kind; /* "after", "every", "silence" */
    uint64_t period_ns;
    unsigned slot;
};

/**
 * The timer that `slot` means while in `state` (timers of `any:` have the same meaning in
 * every state). Returns 0, or -ENOENT when the slot is unused in that state.
 */
int flow_def_timer(const struct flow_def *def, unsigned state, unsigned slot,
                   struct flow_timer_info *info);

/** One compiled handler block: all handlers of one trigger in one state. */
struct flow_handler_info {
    const char *state; /* state name, "any", or the state name for `on enter` */
    char trigger[48];  /* "on purchase", "on notify.done", "every 30d", "on enter" ... */
    unsigned line;     /* line of its first handler */
    unsigned bound;    /* worst-case VM instructions, including the enter handlers it
                          may trigger and the `any` fallback */
    unsigned cmds;     /* worst-case commands */
};

unsigned flow_def_handler_count(const struct flow_def *def);
int flow_def_handler(const struct flow_def *def, unsigned i, struct flow_handler_info *info);

/**
 * `sigflowctl definition check FILE...`: compile each file offline and print its record
 * size and each handler's bound, or its errors (stderr). argv[0] is the command name;
 * `--json` prints one JSON object per file on stdout instead. Returns a sysexits code:
 * 0 all good, 64 usage, 65 compile errors, 66 a file could not be read.
 */
int flow_check_main(int argc, char **argv);

/* ---- VM ------------------------------------------------------------------------------ */

#define VM_ARGS_MAX 8u  /* arguments of one activity run */
#define VM_REGS_MAX 64u /* registers of the VM (compiler limit on expression depth) */

enum vm_err {
    VM_ERR_COMPLETED = -1,     /* the instance has completed: nothing applied */
    VM_ERR_BAD_INDEX = -2,     /* signal / activity / timer slot index out of range */
    VM_ERR_FIELD_TYPE = -3,    /* a field value does not fit its declared type */
    VM_ERR_NO_SPACE = -4,      /* cmds_max < flow_def_cmds_max(): nothing applied */
    VM_ERR_BAD_RECORD = -5,    /* vm_record_check: record inconsistent with its def */
    VM_ERR_TEXT_TOO_LONG = -6, /* a text field is longer than its declared text(N) bytes:
                                  nothing applied */
};

enum vm_cmd_kind {
    VM_CMD_TIMER_ARM = 1,       /* arm timer `slot` at due_ns (replaces an armed one) */
    VM_CMD_TIMER_CANCEL = 2,    /* disarm timer `slot` */
    VM_CMD_ACTIVITY_RUN = 3,    /* schedule activity `index` with seq, args */
    VM_CMD_ACTIVITY_CANCEL = 4, /* cancel activity `index` attempt `seq` */
    VM_CMD_COMPLETE = 5,        /* the instance completed (last command of its call) */
};

#define VM_CMD_TEXT_MAX (VM_ARGS_MAX * FLOW_TEXT_CAP_MAX + 8u)

/**
 * One command. Text arguments point into the command's own `text` (values that came from
 * the record are copied there, as they were when `run` executed) or into the fields / id
 * given to the call: copy them before reusing cmds[] or the fields.
 */
struct vm_cmd {
    uint8_t kind;   /* enum vm_cmd_kind */
    uint8_t nargs;  /* ACTIVITY_RUN: args used */
    uint16_t index; /* timer slot or activity index */
    uint32_t seq;   /* activity sequence number (1, 2, ... per instance) */
    uint64_t due_ns;
    struct sf_value args[VM_ARGS_MAX];
    char text[VM_CMD_TEXT_MAX];
};

/**
 * Initialise a fresh record (flow_def_record_size bytes) for workflow id[0..id_len):
 * initial variable values, empty queues, no timers; the instance starts (enters its
 * initial state, arms its timers) at the first vm_run_* call. Can't fail.
 */
void vm_record_init(const struct flow_def *def, void *record, const char *id, size_t id_len,
                    uint64_t now_ns);

/**
 * Deliver signal `sig` with field values fields[0..nfields) (declaration order; missing
 * or NULL fields read as zero/false/""; extra ones are ignored; an int is accepted for a
 * float field) at event time now_ns. Runs the state's matching handler, else the `any:`
 * one, then resets the state's silence timer. Returns the number of commands written to
 * cmds[] (>= 0), or VM_ERR_COMPLETED, VM_ERR_BAD_INDEX, VM_ERR_FIELD_TYPE, VM_ERR_NO_SPACE,
 * VM_ERR_TEXT_TOO_LONG (a text longer than its field's text(N)); on error the record is
 * unchanged.
 */
int vm_run_signal(const struct flow_def *def, void *record, unsigned sig,
                  const struct sf_value *fields, unsigned nfields, const char *id, size_t id_len,
                  uint64_t now_ns, struct vm_cmd *cmds, unsigned cmds_max);

/**
 * Fire timer `slot` armed for due_ns (the handler's time is due_ns). A slot that is not
 * armed for exactly due_ns (cancelled or re-armed since) is stale: returns 0 and changes
 * nothing. `every` timers re-arm at due_ns + period before the handler runs.
 * Errors as vm_run_signal.
 */
int vm_run_timer(const struct flow_def *def, void *record, unsigned slot, uint64_t due_ns,
                 const char *id, size_t id_len, struct vm_cmd *cmds, unsigned cmds_max);

/**
 * Deliver the result of activity `act` run `seq`: `.done` with `result`. A seq that is not
 * the activity's pending run is stale: returns 0 and changes nothing. Errors as
 * vm_run_signal.
 */
int vm_run_activity_done(const struct flow_def *def, void *record, unsigned act, uint32_t seq,
                         int64_t result, const char *id, size_t id_len, uint64_t now_ns,
                         struct vm_cmd *cmds, unsigned cmds_max);

/** Same for `.failed` (retries exhausted or timed out). */
int vm_run_activity_failed(const struct flow_def *def, void *record, unsigned act, uint32_t seq,
                           const char *id, size_t id_len, uint64_t now_ns, struct vm_cmd *cmds,
                           unsigned cmds_max);

/**
 * Attempt `attempt` of activity `act` run `seq` failed (the control plane reports it;
 * `workflow describe` shows the count): the run's attempt count becomes `attempt` (capped at
 * UINT16_MAX) when that is higher. Stale seq or not higher: returns 0, no change. Returns 1
 * when counted, VM_ERR_BAD_INDEX.
 */
int vm_note_attempt(const struct flow_def *def, void *record, unsigned act, uint32_t seq,
                    uint32_t attempt);

/* ---- record inspection (describe, tests, snapshots) --------------------------------- */

/** Check a record read from disk against its def (state, lengths, counts). 0 or
 *  VM_ERR_BAD_RECORD. The vm_run_* functions assume a record that passes. */
int vm_record_check(const struct flow_def *def, const void *record);
unsigned vm_record_state(const struct flow_def *def, const void *record);
bool vm_record_completed(const struct flow_def *def, const void *record);
bool vm_record_started(const struct flow_def *def, const void *record);
uint64_t vm_record_created_ns(const struct flow_def *def, const void *record);
/** Due time of timer `slot`, 0 when disarmed (or bad slot). */
uint64_t vm_record_timer_due(const struct flow_def *def, const void *record, unsigned slot);
/** Activity slot: returns true when run *seq is pending; *attempts counted so far. */
bool vm_record_activity(const struct flow_def *def, const void *record, unsigned act, uint32_t *seq,
                        uint32_t *attempts);
/** Value of variable i (text: a view into the record). 0 or -EINVAL. */
int vm_record_var(const struct flow_def *def, const void *record, unsigned i, struct sf_value *out);
/** Items in queue q (0 for a bad index). */
unsigned vm_record_queue_len(const struct flow_def *def, const void *record, unsigned q);
/** Item i (0 = front) of queue q. 0 or -EINVAL. */
int vm_record_queue_item(const struct flow_def *def, const void *record, unsigned q, unsigned i,
                         struct sf_value *out);

#endif /* SF_FLOW_H */
