/*
 * send_source.h — where sigflow-send's events come from: one event from the command line,
 * a file (one event per line) or a generated fleet. Each source hands out events one at a
 * time, with their field values already encoded; the buffers stay valid until the next
 * call.
 */
#ifndef SEND_SOURCE_H
#define SEND_SOURCE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "sf_proto.h"

#define SEND_VALUES_MAX   16u /* values of one event from the command line or a file line */
#define SEND_LINE_LEN_MAX 4096u

/** One event ready to be framed (views into the source's buffers). */
struct send_event {
    struct sf_event ev; /* type/id/signal/fields/event_id/ts_ns set */
};

/** A field value given as text ("12", "1.5", "true", "x"), optionally named ("temp=21.5"). */
struct send_value {
    char name[SF_SIGNAL_LEN_MAX + 1]; /* "" when not named */
    struct sf_value value;            /* text values point into the argument string */
};

/**
 * Type a command-line/file token by its syntax: an int64 literal is an int, a decimal
 * number with '.', 'e' or 'E' a float, true/false a bool, anything else text. With
 * allow_name, a leading "name=" (name: [A-Za-z_][A-Za-z0-9_]*, at most 32 bytes) is split
 * off. `s` must outlive the value. Can't fail.
 */
void send_value_parse(const char *s, bool allow_name, struct send_value *out);

enum send_source_kind {
    SEND_SOURCE_ONE = 1,
    SEND_SOURCE_FILE,
    SEND_SOURCE_FLEET,
};

struct send_fleet {
    const char *type;
    const char *signal;
    const char *prefix;
    uint64_t count; /* workflows */
    uint64_t first;
    uint64_t rounds;
    uint64_t event_id_base;
};

struct send_source {
    enum send_source_kind kind;
    /* ONE */
    struct send_event one;
    bool one_done;
    /* FILE */
    FILE *file;
    const char *file_name;
    unsigned long line_no;
    char line[SEND_LINE_LEN_MAX];
    /* FLEET */
    struct send_fleet fleet;
    uint64_t round;
    uint64_t index;
    char id[SF_ID_LEN_MAX + 1];
    /* encoded fields of the current event */
    uint8_t fields[SF_FIELDS_LEN_MAX];
};

/**
 * Make a one-event source. Returns 0, or -EINVAL (message on stderr) when a name is
 * invalid or the values do not fit SF_FIELDS_LEN_MAX.
 */
int send_source_one(struct send_source *src, const char *type, const char *id, const char *signal,
                    uint64_t event_id, const struct send_value *vals, unsigned n_vals);

/** Make a file source reading `f` (named `name` in messages). Can't fail. */
void send_source_file(struct send_source *src, FILE *f, const char *name);

/**
 * Make a fleet source: round r (0-based) sends one event to each workflow PREFIX%06d for
 * i in [first, first + count), event_id = base + r * count + (i - first) + 1, one int field
 * r. Returns 0 or -EINVAL (message on stderr) when the ids would be invalid names.
 */
int send_source_fleet(struct send_source *src, const struct send_fleet *fleet);

/**
 * Next event into *out. Returns 1 (an event), 0 (no more), or -EINVAL for a bad file line
 * (message with file:line on stderr) / -EIO for a read error.
 */
int send_source_next(struct send_source *src, struct send_event *out);

#endif /* SEND_SOURCE_H */
