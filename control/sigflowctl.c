/*
 * sigflowctl — the operator CLI. Noun-verb, like `temporal` and `ovs-appctl`; `--json` on
 * every command prints the node's answer as one JSON object.
 *
 *   sigflowctl [--dir DIR | --socket PATH] [--json] stats
 *   sigflowctl ... workflow describe TYPE ID
 *   sigflowctl ... workflow list [--type T] [--state S] [--limit N] [--after CURSOR]
 *   sigflowctl definition check FILE...
 *   sigflowctl ... definition deploy FILE...
 *   sigflowctl ... definition list
 *   sigflowctl ... activity list [--limit N]
 *   sigflowctl ... activity complete TYPE ID SEQ [RESULT]
 *   sigflowctl ... activity fail TYPE ID SEQ
 *   sigflowctl ... tune KEY VALUE
 *
 * Exit status per sysexits: 0 ok, 64 usage, 69 node unavailable, 65 the node refused the
 * request (e.g. workflow not found), 74 I/O error on the socket.
 *
 * Text from the node (ids, types, states, values, arguments, messages) is shown through
 * ctl_text, never raw: it may hold terminal escapes or invalid UTF-8. --json prints the
 * node's answer re-encoded by jansson, ASCII only. Arguments sent to the node must be
 * UTF-8 (a JSON string cannot hold anything else).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "ctl_text.h"
#include "flow.h"

#define CTL_EX_USAGE       64
#define CTL_EX_DATAERR     65
#define CTL_EX_UNAVAILABLE 69
#define CTL_EX_IOERR       74
#define CTL_REPLY_MAX      (16u << 20)
#define CTL_WORDS_MAX      8
#define CTL_STR_CAP        1024u /* one rendered string: 255 bytes of text need 1021 */

struct ctl_opts {
    const char *dir;
    const char *socket;
    const char *type;
    const char *after;
    const char *state;
    long limit;
    bool json;
    bool to_control; /* the request is sigflow-control's (DIR/control.sock) */
    const char *words[CTL_WORDS_MAX];
    int word_count;
};

static void ctl_usage(FILE *out)
{
    fprintf(out,
            "usage: sigflowctl [--dir DIR | --socket PATH] [--json] COMMAND\n"
            "\n"
            "commands:\n"
            "  stats                          node, per-core and NIC counters, drops by reason\n"
            "  workflow describe TYPE ID      one workflow instance\n"
            "  workflow delete TYPE ID        remove it for good (logged; the id may start\n"
            "                                 afresh); answers once the deletion is durable\n"
            "  keys reload                    re-read the senders' key file (a bad file keeps\n"
            "                                 the running keys and says why)\n"
            "  workflow history TYPE ID [--limit N]\n"
            "                                 its inputs and effects, newest first (default\n"
            "                                 20; 0: everything still retained)\n"
            "  workflow list [--type T] [--state S] [--limit N] [--after CURSOR]\n"
            "                                 workflows, paged (N <= 1000, default 100)\n"
            "  definition check FILE...       compile .flow files offline, print record size\n"
            "                                 and each handler's instruction bound\n"
            "  definition deploy FILE...      compile on the node and deploy (new instances\n"
            "                                 start on the newest version)\n"
            "  definition list                deployed versions, instances by state\n"
            "  activity list [--limit N]      activity tasks dispatched and not finished\n"
            "  activity complete TYPE ID SEQ [RESULT]   deliver ACTIVITY.done (RESULT int)\n"
            "  activity fail TYPE ID SEQ      deliver ACTIVITY.failed\n"
            "  activity failed                runs that exhausted their attempts (dead letters;\n"
            "                                 sigflow-control, DIR/control.sock)\n"
            "  activity retry TYPE ID SEQ     run a dead-lettered run again (its outcome is\n"
            "                                 recorded there; the workflow took its failed path)\n"
            "  executor list                  sigflow-control's executors: concurrency, in flight\n"
            "  executor tune NAME N           set an executor's concurrency (live)\n"
            "  executor stats                 sigflow-control's counters\n"
            "  tune KEY VALUE                 wal.batch_bytes_max, wal.batch_deadline_us,\n"
            "                                 wal.inflight_max, idle_sleep_max_us, ...\n"
            "\n"
            "options:\n"
            "  --dir DIR       node directory (default ./run): socket DIR/sigflowd.sock\n"
            "  --socket PATH   control socket path\n"
            "  --json          print the answer as JSON\n");
}

static int ctl_parse(int argc, char **argv, struct ctl_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->dir = "./run";
    o->limit = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_next = i + 1 < argc;
        if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            ctl_usage(stdout);
            exit(0);
        } else if (strcmp(a, "--dir") == 0 && has_next) {
            o->dir = argv[++i];
        } else if (strcmp(a, "--socket") == 0 && has_next) {
            o->socket = argv[++i];
        } else if (strcmp(a, "--type") == 0 && has_next) {
            o->type = argv[++i];
        } else if (strcmp(a, "--state") == 0 && has_next) {
            o->state = argv[++i];
        } else if (strcmp(a, "--after") == 0 && has_next) {
            o->after = argv[++i];
        } else if (strcmp(a, "--limit") == 0 && has_next) {
            char *end;
            o->limit = strtol(argv[++i], &end, 10);
            if (*end || o->limit < 0 || o->limit > 100000) {
                fprintf(stderr, "sigflowctl: --limit must be 1..1000 (history: 0..100000)\n");
                return -1;
            }
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "sigflowctl: unknown option %s\n", a);
            return -1;
        } else if (o->word_count < CTL_WORDS_MAX) {
            o->words[o->word_count++] = a;
        } else {
            return -1;
        }
    }
    return 0;
}

static int ctl_connect(const struct ctl_opts *o)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int n = o->socket ? snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", o->socket)
                      : snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", o->dir,
                                 o->to_control ? "control.sock" : "sigflowd.sock");
    if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        fprintf(stderr, "sigflowctl: no node at %s: %s\n", sa.sun_path, strerror(e));
        close(fd);
        return -e;
    }
    struct timeval tv = { .tv_sec = 10 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Send one request and read one reply line. Returns the reply or NULL (reason printed). */
static json_t *ctl_call(const struct ctl_opts *o, json_t *req, int *ex)
{
    char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!text) {
        fprintf(stderr, "sigflowctl: could not build the request (out of memory)\n");
        *ex = CTL_EX_USAGE;
        return NULL;
    }
    int fd = ctl_connect(o);
    if (fd < 0) {
        free(text);
        *ex = CTL_EX_UNAVAILABLE;
        return NULL;
    }
    size_t len = strlen(text);
    text[len] = '\n';
    bool sent = send(fd, text, len + 1, MSG_NOSIGNAL) == (ssize_t)(len + 1);
    free(text);
    char *buf = malloc(CTL_REPLY_MAX);
    size_t have = 0;
    while (sent && buf && have < CTL_REPLY_MAX - 1) {
        ssize_t r = recv(fd, buf + have, CTL_REPLY_MAX - 1 - have, 0);
        if (r <= 0)
            break;
        have += (size_t)r;
        if (memchr(buf + have - r, '\n', (size_t)r))
            break;
    }
    close(fd);
    json_t *reply = NULL;
    if (buf && have > 0) {
        buf[have] = '\0';
        json_error_t err;
        reply = json_loads(buf, JSON_DISABLE_EOF_CHECK, &err);
    }
    free(buf);
    if (!reply) {
        fprintf(stderr, "sigflowctl: no valid answer from the node\n");
        *ex = CTL_EX_IOERR;
        return NULL;
    }
    return reply;
}

/* A rendered string (ctl_text), for one printf argument. */
struct ctl_str {
    char s[CTL_STR_CAP];
};

/* v rendered for a terminal into b: CTL_TEXT_MISSING when v is not a string. */
static const char *ctl_jstr(json_t *v, struct ctl_str *b)
{
    if (!json_is_string(v))
        return ctl_text_format(b->s, sizeof(b->s), NULL, 0, 0);
    return ctl_text_format(b->s, sizeof(b->s), json_string_value(v), json_string_length(v), 0);
}

/* Member `key` of obj rendered for a terminal into b (see ctl_jstr). */
static const char *ctl_str(json_t *obj, const char *key, struct ctl_str *b)
{
    return ctl_jstr(json_object_get(obj, key), b);
}

/* An object key from the node rendered into b. */
static const char *ctl_key(const char *k, struct ctl_str *b)
{
    return ctl_text_format(b->s, sizeof(b->s), k, strlen(k), 0);
}

/* Print v to f as one line of JSON, printable ASCII only: jansson escapes controls and
 * non-ASCII but leaves DEL, which can only be inside a string, so it becomes \u007f. */
static void ctl_print_json(FILE *f, json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (!text) {
        fprintf(stderr, "sigflowctl: out of memory\n");
        return;
    }
    for (const char *p = text; *p; p++) {
        if (*p == 0x7f)
            fputs("\\u007f", f);
        else
            fputc(*p, f);
    }
    fputc('\n', f);
    free(text);
}

static json_int_t ctl_int(json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

static void ctl_print_drops(json_t *drops, const char *indent)
{
    const char *k;
    json_t *v;
    bool any = false;
    json_object_foreach(drops, k, v)
    {
        if (json_integer_value(v) == 0)
            continue;
        struct ctl_str kb;
        printf("%s%-22s %" JSON_INTEGER_FORMAT "\n", indent, ctl_key(k, &kb),
               json_integer_value(v));
        any = true;
    }
    if (!any)
        printf("%s(none)\n", indent);
}

static void ctl_print_stats(json_t *r)
{
    json_t *node = json_object_get(r, "node"), *t = json_object_get(r, "total");
    struct ctl_str b1, b2;
    printf("node: %" JSON_INTEGER_FORMAT " lcores (%" JSON_INTEGER_FORMAT
           " rx, %" JSON_INTEGER_FORMAT " owners), %" JSON_INTEGER_FORMAT
           " partitions, source %s, up %.1f s\n",
           ctl_int(node, "lcores"), ctl_int(node, "rx_lcores"), ctl_int(node, "owner_lcores"),
           ctl_int(node, "partitions"), ctl_str(node, "source", &b1),
           json_real_value(json_object_get(node, "uptime_s")));
    static const char *const keys[] = { "rx_packets",     "frames",       "json_events",
                                        "events_applied", "workflows",    "tx_packets",
                                        "arp_replies",    "icmp_replies", "icmp6_replies",
                                        "ndp_replies",    "drops_total" };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        printf("  %-22s %" JSON_INTEGER_FORMAT "\n", keys[i], ctl_int(t, keys[i]));
    printf("drops by reason:\n");
    ctl_print_drops(json_object_get(t, "drops"), "  ");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(r, "cores"), i, c)
    {
        printf("lcore %" JSON_INTEGER_FORMAT ": rx %" JSON_INTEGER_FORMAT
               " pkts, applied %" JSON_INTEGER_FORMAT ", workflows %" JSON_INTEGER_FORMAT
               ", busy %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT " polls\n",
               ctl_int(c, "lcore"), ctl_int(c, "rx_packets"), ctl_int(c, "events_applied"),
               ctl_int(c, "workflows"), ctl_int(c, "busy_polls"), ctl_int(c, "polls"));
    }
    json_t *p;
    json_array_foreach(json_object_get(r, "ports"), i, p)
    {
        printf("port %s (%s): ipackets %" JSON_INTEGER_FORMAT " opackets %" JSON_INTEGER_FORMAT
               " imissed %" JSON_INTEGER_FORMAT " rx_nombuf %" JSON_INTEGER_FORMAT "\n",
               ctl_str(p, "name", &b1), ctl_str(p, "mac", &b2), ctl_int(p, "ipackets"),
               ctl_int(p, "opackets"), ctl_int(p, "imissed"), ctl_int(p, "rx_nombuf"));
    }
}

static void ctl_print_time(json_int_t ns)
{
    time_t s = (time_t)(ns / 1000000000);
    struct tm tm;
    char buf[64];
    gmtime_r(&s, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    printf("%s.%03dZ", buf, (int)((ns / 1000000) % 1000));
}

static void ctl_print_value(json_t *v)
{
    if (json_is_string(v)) {
        putchar('"');
        ctl_text_write(stdout, json_string_value(v), json_string_length(v), 0);
        putchar('"');
    } else if (json_is_integer(v)) {
        printf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_real(v)) {
        printf("%g", json_real_value(v));
    } else if (json_is_boolean(v)) {
        printf("%s", json_is_true(v) ? "true" : "false");
    } else {
        printf("null");
    }
}

static void ctl_print_workflow(json_t *w)
{
    struct ctl_str b1, b2;
    printf("type:           %s (version %" JSON_INTEGER_FORMAT ")\n", ctl_str(w, "type", &b1),
           ctl_int(w, "version"));
    printf("id:             %s\n", ctl_str(w, "id", &b1));
    printf("state:          %s%s\n", ctl_str(w, "state", &b1),
           json_is_true(json_object_get(w, "completed")) ? " (completed)" : "");
    printf("signals:        %" JSON_INTEGER_FORMAT "\n", ctl_int(w, "signals"));
    printf("last_event_id:  %" JSON_INTEGER_FORMAT "\n", ctl_int(w, "last_event_id"));
    printf("created:        ");
    ctl_print_time(ctl_int(w, "created_ns"));
    printf("\npartition:      %" JSON_INTEGER_FORMAT " (owner lcore %" JSON_INTEGER_FORMAT ")\n",
           ctl_int(w, "partition"), ctl_int(w, "owner_lcore"));
    const char *k;
    json_t *v;
    printf("variables:\n");
    json_object_foreach(json_object_get(w, "vars"), k, v)
    {
        printf("  %-20s ", ctl_key(k, &b1));
        ctl_print_value(v);
        printf("\n");
    }
    json_object_foreach(json_object_get(w, "queues"), k, v)
    {
        printf("queue %s (%zu):", ctl_key(k, &b1), json_array_size(v));
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item)
        {
            printf(" ");
            ctl_print_value(item);
        }
        printf("\n");
    }
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(w, "timers"), i, t)
    {
        printf("timer %-12s (%s) due ", ctl_str(t, "name", &b1), ctl_str(t, "kind", &b2));
        ctl_print_time(ctl_int(t, "due_ns"));
        printf("\n");
    }
    json_array_foreach(json_object_get(w, "activities"), i, t)
    {
        printf("activity %s seq %" JSON_INTEGER_FORMAT " in flight, %" JSON_INTEGER_FORMAT
               " attempts\n",
               ctl_str(t, "activity", &b1), ctl_int(t, "seq"), ctl_int(t, "attempts"));
    }
}

static void ctl_print_list(json_t *r)
{
    size_t i;
    json_t *w;
    printf("%-12s %-32s %-16s %4s %10s %20s\n", "TYPE", "ID", "STATE", "VER", "SIGNALS",
           "LAST_EVENT_ID");
    struct ctl_str b1, b2, b3;
    json_array_foreach(json_object_get(r, "workflows"), i, w)
    {
        printf("%-12s %-32s %-16s %4" JSON_INTEGER_FORMAT " %10" JSON_INTEGER_FORMAT
               " %20" JSON_INTEGER_FORMAT "\n",
               ctl_str(w, "type", &b1), ctl_str(w, "id", &b2), ctl_str(w, "state", &b3),
               ctl_int(w, "version"), ctl_int(w, "signals"), ctl_int(w, "last_event_id"));
    }
    json_t *next = json_object_get(r, "next");
    if (next)
        printf("(more: --after %s)\n", ctl_jstr(next, &b1));
}

static void ctl_print_definitions(json_t *r)
{
    size_t i;
    json_t *d;
    printf("%-12s %7s %10s %10s %7s  %s\n", "TYPE", "VERSION", "RUNNING", "COMPLETED", "RECORD",
           "BY STATE");
    struct ctl_str b1;
    json_array_foreach(json_object_get(r, "definitions"), i, d)
    {
        printf("%-12s %7" JSON_INTEGER_FORMAT " %10" JSON_INTEGER_FORMAT " %10" JSON_INTEGER_FORMAT
               " %6" JSON_INTEGER_FORMAT "B ",
               ctl_str(d, "type", &b1), ctl_int(d, "version"), ctl_int(d, "running"),
               ctl_int(d, "completed"), ctl_int(d, "record_bytes"));
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(d, "states"), k, v)
            printf(" %s=%" JSON_INTEGER_FORMAT, ctl_key(k, &b1), json_integer_value(v));
        printf("\n");
    }
}

static void ctl_print_tasks(json_t *r)
{
    size_t i;
    json_t *t;
    printf("%-12s %-24s %-16s %5s %7s  %s\n", "TYPE", "ID", "ACTIVITY", "SEQ", "ATTEMPT",
           "IDEMPOTENCY KEY");
    struct ctl_str b1, b2, b3, b4;
    json_array_foreach(json_object_get(r, "tasks"), i, t)
    {
        printf("%-12s %-24s %-16s %5" JSON_INTEGER_FORMAT " %7" JSON_INTEGER_FORMAT "  %s\n",
               ctl_str(t, "type", &b1), ctl_str(t, "id", &b2), ctl_str(t, "activity", &b3),
               ctl_int(t, "seq"), ctl_int(t, "attempt"), ctl_str(t, "idempotency_key", &b4));
    }
}

static void ctl_print_failed(json_t *r)
{
    size_t i;
    json_t *t;
    printf("%-12s %-24s %-16s %5s %8s %-12s %-12s %s\n", "TYPE", "ID", "ACTIVITY", "SEQ",
           "ATTEMPTS", "EXECUTOR", "STATE", "REASON");
    struct ctl_str b1, b2, b3, b4, b5, b6;
    json_array_foreach(json_object_get(r, "failed"), i, t)
    {
        printf("%-12s %-24s %-16s %5" JSON_INTEGER_FORMAT " %8" JSON_INTEGER_FORMAT
               " %-12s %-12s %s\n",
               ctl_str(t, "type", &b1), ctl_str(t, "id", &b2), ctl_str(t, "activity", &b3),
               ctl_int(t, "seq"), ctl_int(t, "attempts"), ctl_str(t, "executor", &b4),
               ctl_str(t, "state", &b5), ctl_str(t, "reason", &b6));
    }
}

static void ctl_print_executors(json_t *r)
{
    size_t i;
    json_t *t;
    printf("%-20s %-8s %11s %9s\n", "EXECUTOR", "KIND", "CONCURRENCY", "INFLIGHT");
    struct ctl_str b1, b2;
    json_array_foreach(json_object_get(r, "executors"), i, t)
    {
        printf("%-20s %-8s %11" JSON_INTEGER_FORMAT " %9" JSON_INTEGER_FORMAT "\n",
               ctl_str(t, "name", &b1), ctl_str(t, "kind", &b2), ctl_int(t, "concurrency"),
               ctl_int(t, "inflight"));
    }
}

static void ctl_print_history(json_t *r)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(r, "entries"), i, e)
    {
        struct ctl_str b1, b2;
        const char *kind = json_string_value(json_object_get(e, "kind"));
        json_t *when = json_object_get(e, "received");
        if (!json_is_string(when))
            when = json_object_get(e, "due");
        if (!json_is_string(when))
            when = json_object_get(e, "time");
        printf("%-8" JSON_INTEGER_FORMAT " %-27s %-15s", ctl_int(e, "lsn"), ctl_jstr(when, &b1),
               ctl_str(e, "kind", &b2));
        if (kind && strcmp(kind, "signal") == 0) {
            char *fields =
                json_dumps(json_object_get(e, "fields"), JSON_COMPACT | JSON_ENSURE_ASCII);
            printf(" %s", ctl_str(e, "signal", &b1));
            if (json_object_get(e, "event_id"))
                printf(" #%" JSON_INTEGER_FORMAT, ctl_int(e, "event_id"));
            putchar(' ');
            ctl_text_write(stdout, fields ? fields : "", fields ? strlen(fields) : 0, 0);
            free(fields);
        } else if (kind && strcmp(kind, "timer") == 0) {
            printf(" slot %" JSON_INTEGER_FORMAT, ctl_int(e, "slot"));
        } else if (kind && strncmp(kind, "activity", 8) == 0) {
            printf(" %s seq %" JSON_INTEGER_FORMAT, ctl_str(e, "activity", &b1), ctl_int(e, "seq"));
            if (json_object_get(e, "result"))
                printf(" result %" JSON_INTEGER_FORMAT, ctl_int(e, "result"));
        } else if (kind && strcmp(kind, "effects") == 0) {
            if (json_is_true(json_object_get(e, "created")))
                printf(" created (version %" JSON_INTEGER_FORMAT ")", ctl_int(e, "version"));
            size_t k;
            json_t *a;
            json_array_foreach(json_object_get(e, "scheduled"), k, a)
            {
                printf(" scheduled %s seq %" JSON_INTEGER_FORMAT, ctl_str(a, "activity", &b1),
                       ctl_int(a, "seq"));
            }
            if (json_is_true(json_object_get(e, "completed")))
                printf(" completed");
        }
        printf("\n");
    }
    const char *end = json_string_value(json_object_get(r, "end"));
    if (end && strcmp(end, "retention") == 0)
        printf("-- older entries are past history retention --\n");
    else if (end && strcmp(end, "limit") == 0)
        printf("-- more: raise --limit --\n");
    else if (end && strcmp(end, "unreadable") == 0)
        printf("-- the log could not be read further --\n");
    else
        printf("-- start of the workflow's history --\n");
}

/* definition deploy FILE...: one request per file; the node compiles it. */
static int ctl_deploy(const struct ctl_opts *o)
{
    int ex = 0;
    for (int i = 2; i < o->word_count; i++) {
        FILE *f = fopen(o->words[i], "rb");
        if (!f) {
            fprintf(stderr, "sigflowctl: %s: %s\n", o->words[i], strerror(errno));
            return 66; /* EX_NOINPUT */
        }
        static char src[1 << 20];
        size_t len = fread(src, 1, sizeof(src), f);
        bool too_big = !feof(f);
        fclose(f);
        if (too_big) {
            fprintf(stderr, "sigflowctl: %s: larger than 1 MiB\n", o->words[i]);
            return CTL_EX_DATAERR;
        }
        if (!ctl_text_is_utf8(src, len)) {
            fputs("sigflowctl: ", stderr);
            ctl_text_write(stderr, o->words[i], strlen(o->words[i]), 0);
            fputs(": not UTF-8 text\n", stderr);
            return CTL_EX_DATAERR;
        }
        /* the name only labels messages: rendered, so that any file name is valid UTF-8 */
        static char name[CTL_STR_CAP];
        ctl_text_format(name, sizeof(name), o->words[i], strlen(o->words[i]), 0);
        json_t *req =
            json_pack("{s:s, s:s, s:s#}", "cmd", "deploy", "file", name, "source", src, (int)len);
        int cex = 0;
        json_t *r = ctl_call(o, req, &cex);
        if (!r)
            return cex;
        bool ok = json_is_true(json_object_get(r, "ok"));
        bool exists = json_is_true(json_object_get(r, "exists"));
        json_t *msg = json_object_get(r, ok ? "message" : "error");
        if (o->json) {
            ctl_print_json(stdout, r);
        } else if (ok) {
            ctl_text_write(stdout, json_string_value(msg), json_string_length(msg), 0);
            putchar('\n');
        } else { /* compile errors: one per line */
            ctl_text_write(stderr, json_string_value(msg), json_string_length(msg),
                           CTL_TEXT_NEWLINES);
            fputs(exists ? "\n" : "", stderr);
        }
        if (!ok && !exists)
            ex = CTL_EX_DATAERR;
        else if (!ok && ex == 0)
            ex = 73; /* EX_CANTCREAT: that version is already deployed */
        json_decref(r);
    }
    return ex;
}

static json_t *ctl_request(const struct ctl_opts *o)
{
    const char *noun = o->words[0], *verb = o->word_count > 1 ? o->words[1] : "";
    if ((o->limit == 0 || o->limit > 1000) && strcmp(verb, "history") != 0) {
        fprintf(stderr, "sigflowctl: --limit must be 1..1000\n");
        return NULL;
    }
    if (strcmp(noun, "stats") == 0 && o->word_count == 1)
        return json_pack("{s:s}", "cmd", "stats");
    if (strcmp(noun, "workflow") == 0 && strcmp(verb, "describe") == 0 && o->word_count == 4)
        return json_pack("{s:s, s:s, s:s}", "cmd", "describe", "type", o->words[2], "id",
                         o->words[3]);
    if (strcmp(noun, "workflow") == 0 && strcmp(verb, "delete") == 0 && o->word_count == 4)
        return json_pack("{s:s, s:s, s:s}", "cmd", "delete", "type", o->words[2], "id",
                         o->words[3]);
    if (strcmp(noun, "keys") == 0 && strcmp(verb, "reload") == 0 && o->word_count == 2)
        return json_pack("{s:s}", "cmd", "keys_reload");
    if (strcmp(noun, "workflow") == 0 && strcmp(verb, "history") == 0 && o->word_count == 4)
        return json_pack("{s:s, s:s, s:s, s:I}", "cmd", "history", "type", o->words[2], "id",
                         o->words[3], "limit", (json_int_t)(o->limit >= 0 ? o->limit : 20));
    if (strcmp(noun, "definition") == 0 && strcmp(verb, "list") == 0 && o->word_count == 2)
        return json_pack("{s:s}", "cmd", "definitions");
    if (strcmp(noun, "activity") == 0 && strcmp(verb, "failed") == 0 && o->word_count == 2)
        return json_pack("{s:s}", "cmd", "failed");
    if (strcmp(noun, "activity") == 0 && strcmp(verb, "retry") == 0 && o->word_count == 5) {
        char *end;
        long long seq = strtoll(o->words[4], &end, 10);
        if (*end || seq <= 0 || seq > UINT32_MAX)
            return NULL;
        return json_pack("{s:s, s:s, s:s, s:I}", "cmd", "retry", "type", o->words[2], "id",
                         o->words[3], "seq", (json_int_t)seq);
    }
    if (strcmp(noun, "executor") == 0 && strcmp(verb, "list") == 0 && o->word_count == 2)
        return json_pack("{s:s}", "cmd", "executors");
    if (strcmp(noun, "executor") == 0 && strcmp(verb, "stats") == 0 && o->word_count == 2)
        return json_pack("{s:s}", "cmd", "stats");
    if (strcmp(noun, "executor") == 0 && strcmp(verb, "tune") == 0 && o->word_count == 4) {
        char *end;
        long v = strtol(o->words[3], &end, 10);
        if (*end || v <= 0 || v > 65536)
            return NULL;
        return json_pack("{s:s, s:s, s:I}", "cmd", "tune", "executor", o->words[2], "concurrency",
                         (json_int_t)v);
    }
    if (strcmp(noun, "activity") == 0 && strcmp(verb, "list") == 0 && o->word_count == 2)
        return json_pack("{s:s, s:i}", "cmd", "activities", "limit",
                         (int)(o->limit > 0 ? o->limit : 100));
    if (strcmp(noun, "activity") == 0 &&
        ((strcmp(verb, "complete") == 0 && (o->word_count == 5 || o->word_count == 6)) ||
         (strcmp(verb, "fail") == 0 && o->word_count == 5))) {
        char *end;
        long long seq = strtoll(o->words[4], &end, 10);
        if (*end || seq <= 0)
            return NULL;
        long long result = 0;
        if (o->word_count == 6) {
            result = strtoll(o->words[5], &end, 10);
            if (*end)
                return NULL;
        }
        return json_pack("{s:s, s:s, s:s, s:I, s:s, s:I}", "cmd", "activity", "type", o->words[2],
                         "id", o->words[3], "seq", (json_int_t)seq, "outcome",
                         verb[0] == 'c' ? "done" : "failed", "result", (json_int_t)result);
    }
    if (strcmp(noun, "tune") == 0 && o->word_count == 3) {
        char *end;
        long long v = strtoll(o->words[2], &end, 10);
        if (*end || v < 0)
            return NULL;
        return json_pack("{s:s, s:s, s:I}", "cmd", "tune", "key", o->words[1], "value",
                         (json_int_t)v);
    }
    if (strcmp(noun, "workflow") == 0 && strcmp(verb, "list") == 0 && o->word_count == 2) {
        json_t *req = json_pack("{s:s}", "cmd", "list");
        /* json_string is NULL for text that is not UTF-8: then no request, not one that
         * silently lacks the filter */
        if (!req || (o->type && json_object_set_new(req, "type", json_string(o->type)) != 0) ||
            (o->state && json_object_set_new(req, "state", json_string(o->state)) != 0) ||
            (o->after && json_object_set_new(req, "after", json_string(o->after)) != 0) ||
            (o->limit > 0 && json_object_set_new(req, "limit", json_integer(o->limit)) != 0)) {
            json_decref(req);
            return NULL;
        }
        return req;
    }
    return NULL;
}

/* Words and options that go to the node are UTF-8 (JSON strings); false, reported, if not. */
static bool ctl_args_utf8(const struct ctl_opts *o)
{
    const char *args[CTL_WORDS_MAX + 3];
    int n = 0;
    for (int i = 0; i < o->word_count; i++)
        args[n++] = o->words[i];
    args[n++] = o->type;
    args[n++] = o->state;
    args[n++] = o->after;
    for (int i = 0; i < n; i++) {
        if (args[i] && !ctl_text_is_utf8(args[i], strlen(args[i]))) {
            fputs("sigflowctl: not UTF-8: ", stderr);
            ctl_text_write(stderr, args[i], strlen(args[i]), 0);
            fputc('\n', stderr);
            return false;
        }
    }
    return true;
}

int main(int argc, char **argv)
{
    struct ctl_opts o;
    if (ctl_parse(argc, argv, &o) != 0 || o.word_count == 0) {
        ctl_usage(stderr);
        return CTL_EX_USAGE;
    }
    if (strcmp(o.words[0], "definition") == 0 && o.word_count >= 2 &&
        strcmp(o.words[1], "check") == 0) {
        /* offline: compile the files here, no node needed */
        char *args[CTL_WORDS_MAX + 2];
        int n = 0;
        args[n++] = "definition-check";
        if (o.json)
            args[n++] = "--json";
        for (int i = 2; i < o.word_count; i++)
            args[n++] = (char *)o.words[i];
        args[n] = NULL;
        return flow_check_main(n, args);
    }
    if (strcmp(o.words[0], "definition") == 0 && o.word_count >= 3 &&
        strcmp(o.words[1], "deploy") == 0)
        return ctl_deploy(&o);
    if (!ctl_args_utf8(&o))
        return CTL_EX_USAGE;
    json_t *req = ctl_request(&o);
    if (!req) {
        ctl_usage(stderr);
        return CTL_EX_USAGE;
    }
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    o.to_control = strcmp(o.words[0], "executor") == 0 || strcmp(cmd, "failed") == 0 ||
                   strcmp(cmd, "retry") == 0;
    bool is_failed = strcmp(cmd, "failed") == 0, is_executors = strcmp(cmd, "executors") == 0;
    bool is_stats = strcmp(cmd, "stats") == 0, is_list = strcmp(cmd, "list") == 0;
    bool is_defs = strcmp(cmd, "definitions") == 0, is_tasks = strcmp(cmd, "activities") == 0;
    bool is_describe = strcmp(cmd, "describe") == 0, is_history = strcmp(cmd, "history") == 0;
    int ex = 0;
    json_t *r = ctl_call(&o, req, &ex);
    if (!r)
        return ex;
    bool ok = json_is_true(json_object_get(r, "ok"));
    if (o.json) {
        ctl_print_json(stdout, r);
    } else if (!ok) {
        json_t *err = json_object_get(r, "error");
        fputs("sigflowctl: ", stderr);
        ctl_text_write(stderr, json_string_value(err), json_string_length(err), 0);
        fputc('\n', stderr);
    } else if (is_failed) {
        ctl_print_failed(r);
    } else if (is_executors) {
        ctl_print_executors(r);
    } else if (is_stats && o.to_control) {
        ctl_print_json(stdout, r);
    } else if (is_stats) {
        ctl_print_stats(r);
    } else if (is_list) {
        ctl_print_list(r);
    } else if (is_defs) {
        ctl_print_definitions(r);
    } else if (is_tasks) {
        ctl_print_tasks(r);
    } else if (is_describe) {
        ctl_print_workflow(r);
    } else if (is_history) {
        ctl_print_history(r);
    } else {
        json_t *status = json_object_get(r, "status");
        struct ctl_str b1;
        printf("ok%s%s\n", json_is_string(status) ? ": " : "",
               json_is_string(status) ? ctl_jstr(status, &b1) : "");
    }
    json_decref(r);
    return ok ? 0 : CTL_EX_DATAERR;
}
