/*
 * exec_exec.c — the "exec" executor (cp_exec.h): one attempt runs one program, never
 * through a shell, in a session and process group of its own, with a clean environment.
 *
 * CONFIGURATION (one section; every key at most once, except env)
 *   argv = ["/usr/local/bin/reprovision", "--device", "{id}", "{arg.reason}"]
 *       A JSON array of 1..EXEC_ARGV_MAX strings, each a template (cp_template_expand, no
 *       URL escaping) that becomes exactly one argument whatever the values hold (spaces,
 *       quotes, `;`, `$(..)`: nothing interprets them). argv[0] is the program: an absolute
 *       path, literal (no placeholder: an event's text never chooses what runs).
 *   user = NAME           run as this user (getpwnam_r and getgrouplist at init); a user
 *                         with uid 0 or primary gid 0 is refused. Switching needs root.
 *   cwd = /abs/dir        working directory (default /), entered as `user`
 *   env = NAME=value      one more variable, literal; may repeat; SIGFLOW_* are reserved
 *   max_output_bytes = N  stdout kept, 0..EXEC_OUTPUT_BYTES_MAX (default 4096); the rest is
 *                         read and dropped, so the program never blocks on a full pipe
 *
 * THE CHILD (fork; all it uses is prepared before the fork, it only makes system calls)
 *   setsid (its pid becomes its session and process group id) → signal mask emptied, every
 *   disposition default → stdin /dev/null, stdout and stderr pipes, fd 3 the status pipe
 *   (close-on-exec), every other descriptor closed (close_range) → setgroups, setgid,
 *   setuid, then a check that uid 0 cannot be regained → chdir → execve. A step that fails
 *   writes struct exec_child_error (step, errno) to the status pipe and _exits 127; a
 *   successful execve closes the pipe, so the parent reads either one record or end of file.
 *
 * ENVIRONMENT (nothing inherited)
 *   PATH=/usr/sbin:/usr/bin:/sbin:/bin; HOME, USER and LOGNAME with `user`; SIGFLOW_TYPE,
 *   SIGFLOW_ID, SIGFLOW_ACTIVITY, SIGFLOW_SEQ, SIGFLOW_ATTEMPT, SIGFLOW_IDEMPOTENCY_KEY,
 *   SIGFLOW_ARGS (the arguments as a JSON object), SIGFLOW_ARG_<NAME> per parameter (name
 *   upper-cased); then the env lines (one naming PATH, HOME, USER or LOGNAME replaces it).
 *
 * OUTCOME (decided when the leader's pidfd is readable: its pipes are drained, whatever is
 * left in its process group is killed, then it is reaped)
 *   exit 0                 DONE; the first line of stdout, when it is an integer (blanks
 *                          around it allowed) not cut by max_output_bytes, is the result
 *   exit 75 (EX_TEMPFAIL)  RETRY "exit 75: <last stderr line>"
 *   exit N                 FAIL  "exit N: <last stderr line>" (printable ASCII, else '?')
 *   killed by a signal     RETRY "killed by signal N"
 *   a child step failed    FAIL  "exec /path: No such file or directory" (RETRY when errno
 *                          is a shortage: EAGAIN, ENOMEM, EMFILE, ENFILE)
 *   argv does not expand   FAIL  (a {arg.X} this activity does not have, or too long),
 *                          reported from a zero-delay timer
 *
 * LIFETIME OF A RUN
 *   start forks and watches four descriptors: stdout, stderr, the status pipe (closed once
 *   it has spoken) and the leader's pidfd (pidfd_open: no SIGCHLD handler, no waitpid(-1)
 *   race). abandon SIGKILLs the leader, then its group, closes the pipes and keeps the run
 *   on the executor's list with only the pidfd watched: the leader is reaped once it is
 *   gone and done is never called for it. fini kills and reaps what is left, waiting
 *   EXEC_FINI_WAIT_MS at most in all. A descendant that left the group (setsid: a daemon)
 *   is not followed. fork, not posix_spawn: the child needs setsid and setuid, and this is
 *   not the event path.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <jansson.h>

#include "cp_exec.h"

#define EXEC_ARGV_MAX             64u /* elements of argv, the program included */
#define EXEC_ENV_LINES_MAX        32u /* env = lines */
#define EXEC_ENV_FIXED            11u /* PATH, HOME, USER, LOGNAME and seven SIGFLOW_* */
#define EXEC_ENV_MAX              (EXEC_ENV_FIXED + CHAN_PARAMS_MAX + EXEC_ENV_LINES_MAX)
#define EXEC_SPAWN_BYTES_MAX      65536u /* argv and environment strings of one run */
#define EXEC_GROUPS_MAX           64u    /* supplementary groups of `user` */
#define EXEC_PWBUF_BYTES          16384u /* getpwnam_r's buffer */
#define EXEC_OUTPUT_BYTES_DEFAULT 4096u
#define EXEC_OUTPUT_BYTES_MAX     (1u << 20)
#define EXEC_STDERR_TAIL_BYTES    200u /* stderr kept (the reason, CHAN_REASON_MAX, cuts it) */
#define EXEC_READ_CHUNK_BYTES     4096u
#define EXEC_READS_PER_EVENT      16u   /* reads of one pipe per callback: 64 KiB */
#define EXEC_READS_AT_EXIT        64u   /* reads of one pipe once the leader is gone */
#define EXEC_RESULT_LINE_MAX      32u   /* an int64 and the blanks around it */
#define EXEC_FINI_WAIT_MS         2000u /* fini's wait for killed leaders, all of them */
#define EXEC_STATUS_FD            3     /* the status pipe in the child */
#define EXEC_EXIT_CHILD_FAILED    127   /* a step before execve failed */
#define EXEC_PATH_DEFAULT         "/usr/sbin:/usr/bin:/sbin:/bin"
#define EXEC_ENV_RESERVED         "SIGFLOW_"

_Static_assert(65536u <= (uint64_t)EXEC_READS_AT_EXIT * EXEC_READ_CHUNK_BYTES,
               "a default pipe's worth is drained when the leader exits");

enum exec_key {
    EXEC_KEY_ARGV = 1u << 0,
    EXEC_KEY_USER = 1u << 1,
    EXEC_KEY_CWD = 1u << 2,
    EXEC_KEY_OUTPUT = 1u << 3,
};

/** The child's steps, for its error record. */
enum exec_step {
    EXEC_STEP_SETSID = 1,
    EXEC_STEP_SIGNALS,
    EXEC_STEP_DEVNULL,
    EXEC_STEP_FDS,
    EXEC_STEP_CLOSE_RANGE,
    EXEC_STEP_SETGROUPS,
    EXEC_STEP_SETGID,
    EXEC_STEP_SETUID,
    EXEC_STEP_PRIVILEGES, /* uid 0 could be regained after setuid */
    EXEC_STEP_CHDIR,
    EXEC_STEP_EXECVE,
    EXEC_STEP_COUNT,
};

static const char *const exec_step_name[EXEC_STEP_COUNT] = {
    [EXEC_STEP_SETSID] = "setsid",
    [EXEC_STEP_SIGNALS] = "sigprocmask",
    [EXEC_STEP_DEVNULL] = "open /dev/null",
    [EXEC_STEP_FDS] = "dup2",
    [EXEC_STEP_CLOSE_RANGE] = "close_range",
    [EXEC_STEP_SETGROUPS] = "setgroups",
    [EXEC_STEP_SETGID] = "setgid",
    [EXEC_STEP_SETUID] = "setuid",
    [EXEC_STEP_PRIVILEGES] = "uid 0 regained after setuid",
    [EXEC_STEP_CHDIR] = "chdir",
    [EXEC_STEP_EXECVE] = "exec",
};

/** What a failed child writes to the status pipe (one write, smaller than PIPE_BUF). */
struct exec_child_error {
    int32_t step; /* enum exec_step */
    int32_t err;  /* errno */
};

struct exec_run;

/** The executor's configuration and its runs. */
struct exec_state {
    char argv_text[CP_KV_VALUE_MAX]; /* argv's templates, NUL-separated */
    const char *argv_tmpl[EXEC_ARGV_MAX];
    unsigned argc;
    char env_line[EXEC_ENV_LINES_MAX][CP_KV_VALUE_MAX];
    unsigned nenv;
    char cwd[CP_KV_VALUE_MAX];
    size_t max_output_bytes;
    bool has_user;
    char user[CP_KV_VALUE_MAX], home[CP_KV_VALUE_MAX];
    uid_t uid;
    gid_t gid;
    gid_t groups[EXEC_GROUPS_MAX];
    int ngroups;
    struct exec_run *runs; /* started and not reaped yet, abandoned ones included */
};

/** One attempt's program, from start until its leader is reaped. */
struct exec_run {
    struct exec_run *prev, *next;
    struct cp_executor *x;
    struct cp_attempt *a; /* NULL once abandoned */
    pid_t pid;            /* the leader, its process group and session; 0: not forked */
    int pidfd, out_fd, err_fd, status_fd; /* -1 once closed */
    bool child_failed;
    struct exec_child_error child_error;
    struct cp_timer early_timer; /* delivers `early` when argv did not expand */
    struct cp_outcome early;
    size_t out_len;
    bool out_cut; /* stdout went past max_output_bytes */
    size_t err_len;
    char err_tail[EXEC_STDERR_TAIL_BYTES];
    char out[]; /* max_output_bytes + 1 */
};

/** What one fork needs, built before it (the child only reads it). */
struct exec_spawn {
    char *argv[EXEC_ARGV_MAX + 1];
    char *envp[EXEC_ENV_MAX + 1];
    unsigned nenv;
    size_t used;
    bool overflow; /* a string did not fit `bytes` or envp was full */
    char bytes[EXEC_SPAWN_BYTES_MAX];
};

/* ---- configuration ------------------------------------------------------------------- */

/* argv: a JSON array of templates, the first an absolute literal path. 0 or -EINVAL. */
static int exec_parse_argv(struct exec_state *s, const struct cp_kv *kv, char *err, size_t cap)
{
    json_error_t jerr;
    json_t *arr = json_loads(kv->value, 0, &jerr);
    size_t used = 0;
    int rc = 0;

    if (!arr || !json_is_array(arr)) {
        rc = cp_kv_error(err, cap, kv, "argv must be a JSON array of strings%s%s", arr ? "" : ": ",
                         arr ? "" : jerr.text);
        goto out_free;
    }
    size_t count = json_array_size(arr);
    if (count == 0 || count > EXEC_ARGV_MAX) {
        rc = cp_kv_error(err, cap, kv, "argv must hold 1 to %u strings", EXEC_ARGV_MAX);
        goto out_free;
    }
    for (size_t i = 0; i < count; i++) {
        json_t *e = json_array_get(arr, i);
        const char *str = json_string_value(e);
        size_t len = str ? json_string_length(e) : 0;
        if (!str || strlen(str) != len) {
            rc = cp_kv_error(err, cap, kv, "argv[%zu] must be a string without NUL bytes", i);
            goto out_free;
        }
        if (cp_template_check(str) != 0) {
            rc = cp_kv_error(err, cap, kv, "argv[%zu] has an unknown or unterminated placeholder",
                             i);
            goto out_free;
        }
        if (used + len + 1 > sizeof(s->argv_text)) { /* not past the JSON text's own size */
            rc = cp_kv_error(err, cap, kv, "argv too long");
            goto out_free;
        }
        memcpy(s->argv_text + used, str, len + 1);
        s->argv_tmpl[i] = s->argv_text + used;
        used += len + 1;
    }
    s->argc = (unsigned)count;
    if (s->argv_tmpl[0][0] != '/' || strpbrk(s->argv_tmpl[0], "{}"))
        rc = cp_kv_error(err, cap, kv, "argv[0] must be an absolute path without placeholders");
out_free:
    json_decref(arr);
    return rc;
}

/* user: uid, gid, groups and home of an unprivileged user. 0 or -EINVAL. */
static int exec_parse_user(struct exec_state *s, const struct cp_kv *kv, char *err, size_t cap)
{
    struct passwd pw, *found = NULL;
    char *buf = malloc(EXEC_PWBUF_BYTES);
    int rc = 0;

    if (!buf) {
        rc = cp_kv_error(err, cap, kv, "user %s: out of memory", kv->value);
        goto out_free;
    }
    int e = getpwnam_r(kv->value, &pw, buf, EXEC_PWBUF_BYTES, &found);
    if (e != 0 || !found) {
        rc = cp_kv_error(err, cap, kv, "no user %s%s%s", kv->value, e ? ": " : "",
                         e ? strerror(e) : "");
        goto out_free;
    }
    if (pw.pw_uid == 0 || pw.pw_gid == 0) {
        rc = cp_kv_error(err, cap, kv, "user %s has uid or gid 0: refused", kv->value);
        goto out_free;
    }
    if (strlen(pw.pw_dir) >= sizeof(s->home)) {
        rc = cp_kv_error(err, cap, kv, "user %s: home directory too long", kv->value);
        goto out_free;
    }
    s->ngroups = (int)EXEC_GROUPS_MAX;
    if (getgrouplist(kv->value, pw.pw_gid, s->groups, &s->ngroups) < 0) {
        rc = cp_kv_error(err, cap, kv, "user %s is in more than %u groups", kv->value,
                         EXEC_GROUPS_MAX);
        goto out_free;
    }
    s->has_user = true;
    s->uid = pw.pw_uid;
    s->gid = pw.pw_gid;
    snprintf(s->user, sizeof(s->user), "%s", kv->value);
    snprintf(s->home, sizeof(s->home), "%s", pw.pw_dir);
out_free:
    free(buf);
    return rc;
}

/* The length of the NAME in "NAME=value", or 0 when it is not a variable name. */
static size_t exec_env_name_len(const char *line)
{
    size_t n = 0;
    for (; line[n] && line[n] != '='; n++) {
        char c = line[n];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
                  (n > 0 && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return line[n] == '=' ? n : 0;
}

/* Whether an env line names the variable `name`. */
static bool exec_env_configured(const struct exec_state *s, const char *name)
{
    size_t n = strlen(name);
    for (unsigned i = 0; i < s->nenv; i++)
        if (strncmp(s->env_line[i], name, n) == 0 && s->env_line[i][n] == '=')
            return true;
    return false;
}

/* env: NAME=value, not reserved, not twice. 0 or -EINVAL. */
static int exec_parse_env(struct exec_state *s, const struct cp_kv *kv, char *err, size_t cap)
{
    size_t n = exec_env_name_len(kv->value);
    if (n == 0)
        return cp_kv_error(err, cap, kv, "env must be NAME=value");
    if (strncmp(kv->value, EXEC_ENV_RESERVED, strlen(EXEC_ENV_RESERVED)) == 0)
        return cp_kv_error(err, cap, kv, "env: %s* variables are sigflow's", EXEC_ENV_RESERVED);
    if (s->nenv == EXEC_ENV_LINES_MAX)
        return cp_kv_error(err, cap, kv, "more than %u env lines", EXEC_ENV_LINES_MAX);
    char name[CP_KV_VALUE_MAX];
    memcpy(name, kv->value, n);
    name[n] = '\0';
    if (exec_env_configured(s, name))
        return cp_kv_error(err, cap, kv, "env %s given twice", name);
    snprintf(s->env_line[s->nenv++], sizeof(s->env_line[0]), "%s", kv->value);
    return 0;
}

/* cwd and max_output_bytes. 0 or -EINVAL. */
static int exec_parse_scalar(struct exec_state *s, const struct cp_kv *kv, enum exec_key key,
                             char *err, size_t cap)
{
    if (key == EXEC_KEY_CWD) {
        if (kv->value[0] != '/')
            return cp_kv_error(err, cap, kv, "cwd must be an absolute path");
        snprintf(s->cwd, sizeof(s->cwd), "%s", kv->value);
        return 0;
    }
    assert(key == EXEC_KEY_OUTPUT);
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(kv->value, &end, 10);
    if (kv->value[0] < '0' || kv->value[0] > '9' || *end != '\0' || errno != 0 ||
        v > EXEC_OUTPUT_BYTES_MAX)
        return cp_kv_error(err, cap, kv, "max_output_bytes must be 0 to %u", EXEC_OUTPUT_BYTES_MAX);
    s->max_output_bytes = (size_t)v;
    return 0;
}

/* One key of the section. 0 or -EINVAL. */
static int exec_parse_key(struct exec_state *s, const struct cp_kv *kv, unsigned *seen, char *err,
                          size_t cap)
{
    enum exec_key key;
    if (strcmp(kv->key, "env") == 0)
        return exec_parse_env(s, kv, err, cap);
    if (strcmp(kv->key, "argv") == 0)
        key = EXEC_KEY_ARGV;
    else if (strcmp(kv->key, "user") == 0)
        key = EXEC_KEY_USER;
    else if (strcmp(kv->key, "cwd") == 0)
        key = EXEC_KEY_CWD;
    else if (strcmp(kv->key, "max_output_bytes") == 0)
        key = EXEC_KEY_OUTPUT;
    else
        return cp_kv_error(err, cap, kv, "unknown key %s for an exec executor", kv->key);
    if (*seen & key)
        return cp_kv_error(err, cap, kv, "%s given twice", kv->key);
    *seen |= key;
    if (key == EXEC_KEY_ARGV)
        return exec_parse_argv(s, kv, err, cap);
    if (key == EXEC_KEY_USER)
        return exec_parse_user(s, kv, err, cap);
    return exec_parse_scalar(s, kv, key, err, cap);
}

/*
 * Parse the section; check that this kernel has pidfd_open. Returns 0 with x->state set,
 * or -EINVAL with err filled (a bad key or value, no argv, no pidfd_open) and nothing kept.
 */
static int exec_init(struct cp_executor *x, const struct cp_kv *kv, unsigned n, char *err,
                     size_t err_cap)
{
    struct exec_state *s = calloc(1, sizeof(*s));
    unsigned seen = 0;
    int rc = 0;

    if (!s) {
        snprintf(err, err_cap, "exec executor: out of memory");
        return -EINVAL;
    }
    snprintf(s->cwd, sizeof(s->cwd), "/");
    s->max_output_bytes = EXEC_OUTPUT_BYTES_DEFAULT;
    for (unsigned i = 0; i < n && rc == 0; i++)
        rc = exec_parse_key(s, &kv[i], &seen, err, err_cap);
    if (rc < 0)
        goto out_free;
    if (!(seen & EXEC_KEY_ARGV)) {
        snprintf(err, err_cap, "an exec executor needs argv");
        rc = -EINVAL;
        goto out_free;
    }
    int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (fd < 0) {
        snprintf(err, err_cap, "exec executor: pidfd_open: %s (Linux 5.4 or newer needed)",
                 strerror(errno));
        rc = -EINVAL;
        goto out_free;
    }
    close(fd);
    x->state = s;
    return 0;
out_free:
    free(s);
    return rc;
}

/* ---- what one fork needs ------------------------------------------------------------- */

/* Append a formatted string to sp->bytes. Returns it, or NULL (sp->overflow set). */
static char *exec_spawn_printf(struct exec_spawn *sp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static char *exec_spawn_printf(struct exec_spawn *sp, const char *fmt, ...)
{
    char *p = sp->bytes + sp->used;
    size_t room = sizeof(sp->bytes) - sp->used;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room) {
        sp->overflow = true;
        return NULL;
    }
    sp->used += (size_t)n + 1;
    return p;
}

/* Add NAME=value (value NULL: name is a whole NAME=value line) to the environment;
 * sp->overflow is set when it does not fit. */
static void exec_spawn_env(struct exec_spawn *sp, const char *name, const char *value)
{
    if (sp->nenv == EXEC_ENV_MAX) {
        sp->overflow = true;
        return;
    }
    char *line =
        value ? exec_spawn_printf(sp, "%s=%s", name, value) : exec_spawn_printf(sp, "%s", name);
    if (line)
        sp->envp[sp->nenv++] = line;
}

/* The environment of a's program (ENVIRONMENT above). 0, or -ENOSPC when it does not fit. */
static int exec_spawn_environment(const struct exec_state *s, const struct cp_attempt *a,
                                  struct exec_spawn *sp)
{
    char attempt[16];
    snprintf(attempt, sizeof(attempt), "%" PRIu32, a->attempt);
    if (!exec_env_configured(s, "PATH"))
        exec_spawn_env(sp, "PATH", EXEC_PATH_DEFAULT);
    if (s->has_user && !exec_env_configured(s, "HOME"))
        exec_spawn_env(sp, "HOME", s->home);
    if (s->has_user && !exec_env_configured(s, "USER"))
        exec_spawn_env(sp, "USER", s->user);
    if (s->has_user && !exec_env_configured(s, "LOGNAME"))
        exec_spawn_env(sp, "LOGNAME", s->user);
    exec_spawn_env(sp, "SIGFLOW_TYPE", a->type);
    exec_spawn_env(sp, "SIGFLOW_ID", a->id);
    exec_spawn_env(sp, "SIGFLOW_ACTIVITY", a->activity);
    exec_spawn_env(sp, "SIGFLOW_SEQ", a->seq);
    exec_spawn_env(sp, "SIGFLOW_ATTEMPT", attempt);
    exec_spawn_env(sp, "SIGFLOW_IDEMPOTENCY_KEY", a->idempotency_key);
    exec_spawn_env(sp, "SIGFLOW_ARGS", a->args_json);
    for (unsigned i = 0; i < a->nargs; i++) {
        char name[sizeof("SIGFLOW_ARG_") + CHAN_NAME_MAX];
        size_t k = (size_t)snprintf(name, sizeof(name), "SIGFLOW_ARG_%s", a->arg_name[i]);
        for (size_t j = sizeof("SIGFLOW_ARG_") - 1; j < k && j < sizeof(name); j++) {
            char c = name[j];
            if (c >= 'a' && c <= 'z')
                name[j] = (char)(c - 'a' + 'A');
            else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
                name[j] = '_';
        }
        exec_spawn_env(sp, name, a->arg_text[i]);
    }
    for (unsigned i = 0; i < s->nenv; i++)
        exec_spawn_env(sp, s->env_line[i], NULL);
    sp->envp[sp->nenv] = NULL;
    return sp->overflow ? -ENOSPC : 0;
}

/*
 * Expand argv and build the environment for a. Returns 0, or -EINVAL / -ENOSPC with
 * `early` filled (FAIL: a placeholder this activity does not have, or too long a value).
 */
static int exec_spawn_build(const struct exec_state *s, const struct cp_attempt *a,
                            struct exec_spawn *sp, struct cp_outcome *early)
{
    sp->used = 0;
    sp->nenv = 0;
    sp->overflow = false;
    for (unsigned i = 0; i < s->argc; i++) {
        char *p = sp->bytes + sp->used;
        int n = cp_template_expand(s->argv_tmpl[i], a, false, p, sizeof(sp->bytes) - sp->used);
        if (n < 0) {
            cp_outcome_set(early, CP_OUTCOME_FAIL, "argv[%u] %s: %s", i, s->argv_tmpl[i],
                           n == -EINVAL ? "names an argument this activity does not have"
                                        : "too long once expanded");
            return n;
        }
        sp->argv[i] = p;
        sp->used += (size_t)n + 1;
    }
    sp->argv[s->argc] = NULL;
    assert(sp->argv[0][0] == '/');
    if (exec_spawn_environment(s, a, sp) < 0) {
        cp_outcome_set(early, CP_OUTCOME_FAIL, "environment too large (over %u bytes)",
                       EXEC_SPAWN_BYTES_MAX);
        return -ENOSPC;
    }
    return 0;
}

/* ---- the child ----------------------------------------------------------------------- */

static void exec_child_fail(int status_fd, enum exec_step step, int err) __attribute__((noreturn));
/* Tell the parent which step failed, and end. Can't return. */
static void exec_child_fail(int status_fd, enum exec_step step, int err)
{
    struct exec_child_error ce = { .step = (int32_t)step, .err = (int32_t)err };
    ssize_t n = write(status_fd, &ce, sizeof(ce));
    (void)n;
    _exit(EXEC_EXIT_CHILD_FAILED);
}

/* stdin /dev/null, stdout, stderr, status at 3 (close-on-exec), nothing else open. */
static void exec_child_fds(int out_w, int err_w, int status_w)
{
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0)
        exec_child_fail(status_w, EXEC_STEP_DEVNULL, errno);
    int fds[EXEC_STATUS_FD + 1] = { devnull, out_w, err_w, status_w };
    /* lift every source above the targets first, so no dup2 overwrites a source */
    for (int i = 0; i <= EXEC_STATUS_FD; i++) {
        if (fds[i] > EXEC_STATUS_FD)
            continue;
        int high = fcntl(fds[i], F_DUPFD_CLOEXEC, EXEC_STATUS_FD + 1);
        if (high < 0)
            exec_child_fail(fds[EXEC_STATUS_FD], EXEC_STEP_FDS, errno);
        fds[i] = high;
    }
    for (int i = 0; i <= EXEC_STATUS_FD; i++)
        if (dup2(fds[i], i) < 0)
            exec_child_fail(fds[EXEC_STATUS_FD], EXEC_STEP_FDS, errno);
    if (fcntl(EXEC_STATUS_FD, F_SETFD, FD_CLOEXEC) < 0)
        exec_child_fail(fds[EXEC_STATUS_FD], EXEC_STEP_FDS, errno);
    if (close_range(EXEC_STATUS_FD + 1, ~0u, 0) < 0)
        exec_child_fail(EXEC_STATUS_FD, EXEC_STEP_CLOSE_RANGE, errno);
}

static void exec_child(const struct exec_state *s, const struct exec_spawn *sp, int out_w,
                       int err_w, int status_w) __attribute__((noreturn));
/* The forked child (THE CHILD above): becomes the program or reports its failed step. */
static void exec_child(const struct exec_state *s, const struct exec_spawn *sp, int out_w,
                       int err_w, int status_w)
{
    if (setsid() < 0)
        exec_child_fail(status_w, EXEC_STEP_SETSID, errno);
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
        exec_child_fail(status_w, EXEC_STEP_SIGNALS, errno);
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    for (int sig = 1; sig < NSIG; sig++)
        (void)sigaction(sig, &dfl, NULL); /* EINVAL for SIGKILL, SIGSTOP, libc's own */
    exec_child_fds(out_w, err_w, status_w);
    if (s->has_user) {
        if (setgroups((size_t)s->ngroups, s->groups) < 0)
            exec_child_fail(EXEC_STATUS_FD, EXEC_STEP_SETGROUPS, errno);
        if (setgid(s->gid) < 0)
            exec_child_fail(EXEC_STATUS_FD, EXEC_STEP_SETGID, errno);
        if (setuid(s->uid) < 0)
            exec_child_fail(EXEC_STATUS_FD, EXEC_STEP_SETUID, errno);
        if (setuid(0) == 0)
            exec_child_fail(EXEC_STATUS_FD, EXEC_STEP_PRIVILEGES, EPERM);
    }
    if (chdir(s->cwd) < 0)
        exec_child_fail(EXEC_STATUS_FD, EXEC_STEP_CHDIR, errno);
    execve(sp->argv[0], sp->argv, sp->envp);
    exec_child_fail(EXEC_STATUS_FD, EXEC_STEP_EXECVE, errno);
}

/* ---- runs ---------------------------------------------------------------------------- */

static void exec_run_link(struct exec_state *s, struct exec_run *r)
{
    assert(!r->prev && !r->next);
    r->next = s->runs;
    if (s->runs)
        s->runs->prev = r;
    s->runs = r;
}

static void exec_run_unlink(struct exec_state *s, struct exec_run *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        s->runs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

/* Stop watching *fd, close it, mark it closed. Safe on a closed one. Can't fail. */
static void exec_close_fd(struct cp_loop *loop, int *fd)
{
    if (*fd < 0)
        return;
    (void)cp_loop_watch(loop, *fd, 0, NULL, NULL);
    close(*fd);
    *fd = -1;
}

static void exec_run_close_pipes(struct cp_loop *loop, struct exec_run *r)
{
    exec_close_fd(loop, &r->out_fd);
    exec_close_fd(loop, &r->err_fd);
    exec_close_fd(loop, &r->status_fd);
}

/* SIGKILL the leader (through its pidfd), then its whole group. Can't fail: a group that is
 * already empty or, before the child's setsid, does not exist yet is fine (the leader, killed
 * first, then never forks). */
static void exec_run_kill(const struct exec_run *r)
{
    assert(r->pid > 0);
    if (r->pidfd >= 0)
        (void)syscall(SYS_pidfd_send_signal, r->pidfd, SIGKILL, NULL, 0);
    else
        (void)kill(r->pid, SIGKILL); /* our unreaped child: its pid cannot be reused */
    (void)kill(-r->pid, SIGKILL);
}

/* Reap a killed leader, waiting until deadline_ns at most (then it is left a zombie).
 * Closes the pidfd. Can't fail. */
static void exec_run_reap_until(struct cp_loop *loop, struct exec_run *r, uint64_t deadline_ns)
{
    assert(r->pid > 0 && r->pidfd >= 0);
    for (;;) {
        siginfo_t info;
        memset(&info, 0, sizeof(info));
        int rc = waitid(P_PIDFD, (id_t)r->pidfd, &info, WEXITED | WNOHANG);
        if ((rc == 0 && info.si_pid != 0) || (rc < 0 && errno != EINTR))
            break; /* reaped, or nothing left to reap (ECHILD) */
        uint64_t now = cp_now_ns();
        if (now >= deadline_ns)
            break;
        struct pollfd p = { .fd = r->pidfd, .events = POLLIN };
        (void)poll(&p, 1, (int)((deadline_ns - now + 999999u) / 1000000u));
    }
    exec_close_fd(loop, &r->pidfd);
}

/* ---- reading the pipes --------------------------------------------------------------- */

typedef void exec_sink_fn(struct exec_run *r, const char *buf, size_t n);

static void exec_keep_stdout(struct exec_run *r, const char *buf, size_t n)
{
    const struct exec_state *s = r->x->state;
    size_t room = s->max_output_bytes - r->out_len;
    size_t k = n < room ? n : room;
    memcpy(r->out + r->out_len, buf, k);
    r->out_len += k;
    r->out[r->out_len] = '\0';
    if (k < n)
        r->out_cut = true;
    assert(r->out_len <= s->max_output_bytes);
}

static void exec_keep_stderr(struct exec_run *r, const char *buf, size_t n)
{
    const size_t cap = sizeof(r->err_tail);
    if (n >= cap) {
        memcpy(r->err_tail, buf + n - cap, cap);
        r->err_len = cap;
        return;
    }
    if (r->err_len + n > cap) {
        size_t drop = r->err_len + n - cap;
        memmove(r->err_tail, r->err_tail + drop, r->err_len - drop);
        r->err_len -= drop;
    }
    memcpy(r->err_tail + r->err_len, buf, n);
    r->err_len += n;
    assert(r->err_len <= cap);
}

/* Read fd (non-blocking) into sink, `reads` reads at most. Returns true at end of file or on
 * a read error (nothing more will come), false when it would block or the budget ran out. */
static bool exec_pipe_read(int fd, struct exec_run *r, exec_sink_fn *sink, unsigned reads)
{
    char buf[EXEC_READ_CHUNK_BYTES];
    for (unsigned i = 0; i < reads; i++) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n > 0) {
            sink(r, buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return !(n < 0 && errno == EAGAIN);
    }
    return false;
}

static void exec_on_stdout(struct cp_loop *loop, int fd, uint32_t events, void *arg)
{
    struct exec_run *r = arg;
    (void)events;
    assert(fd == r->out_fd);
    if (exec_pipe_read(fd, r, exec_keep_stdout, EXEC_READS_PER_EVENT))
        exec_close_fd(loop, &r->out_fd);
}

static void exec_on_stderr(struct cp_loop *loop, int fd, uint32_t events, void *arg)
{
    struct exec_run *r = arg;
    (void)events;
    assert(fd == r->err_fd);
    if (exec_pipe_read(fd, r, exec_keep_stderr, EXEC_READS_PER_EVENT))
        exec_close_fd(loop, &r->err_fd);
}

/* The status pipe: one record (a step failed) or end of file (execve succeeded). */
static void exec_on_status(struct cp_loop *loop, int fd, uint32_t events, void *arg)
{
    struct exec_run *r = arg;
    struct exec_child_error ce;
    (void)events;
    assert(fd == r->status_fd);
    ssize_t n = read(fd, &ce, sizeof(ce));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n == (ssize_t)sizeof(ce)) {
        r->child_failed = true;
        r->child_error = ce;
    }
    exec_close_fd(loop, &r->status_fd);
}

/* ---- outcome ------------------------------------------------------------------------- */

/* The first line of stdout as a result: an integer with optional blanks, complete. */
static bool exec_result_parse(const char *out, size_t len, bool complete, int64_t *result)
{
    const char *nl = memchr(out, '\n', len);
    if (!nl && !complete)
        return false;
    size_t n = nl ? (size_t)(nl - out) : len;
    while (n > 0 && (out[0] == ' ' || out[0] == '\t')) {
        out++;
        n--;
    }
    while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t' || out[n - 1] == '\r'))
        n--;
    if (n == 0 || n >= EXEC_RESULT_LINE_MAX)
        return false;
    char line[EXEC_RESULT_LINE_MAX];
    memcpy(line, out, n);
    line[n] = '\0';
    char *end = NULL;
    errno = 0;
    long long v = strtoll(line, &end, 10);
    if (errno != 0 || end != line + n ||
        !(line[0] == '-' || line[0] == '+' || (line[0] >= '0' && line[0] <= '9')))
        return false;
    *result = (int64_t)v;
    return true;
}

/* The last non-empty line of the stderr tail, printable ASCII ('?' for other bytes). */
static void exec_stderr_line(const char *tail, size_t len, char *line, size_t cap)
{
    assert(cap > len);
    while (len > 0 && (tail[len - 1] == '\n' || tail[len - 1] == '\r' || tail[len - 1] == ' '))
        len--;
    size_t start = len;
    while (start > 0 && tail[start - 1] != '\n')
        start--;
    size_t k = 0;
    for (size_t i = start; i < len; i++) {
        unsigned char c = (unsigned char)tail[i];
        line[k++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    line[k] = '\0';
}

/* The outcome of a child whose step before execve failed (its record, checked). */
static void exec_outcome_child(const struct exec_state *s, const struct exec_child_error *ce,
                               struct cp_outcome *o)
{
    int e = ce->err;
    enum cp_outcome_kind kind = e == EAGAIN || e == ENOMEM || e == EMFILE || e == ENFILE
                                    ? CP_OUTCOME_RETRY
                                    : CP_OUTCOME_FAIL;
    if (ce->step <= 0 || ce->step >= EXEC_STEP_COUNT)
        cp_outcome_set(o, CP_OUTCOME_FAIL, "child step %" PRId32 " failed", ce->step);
    else if (ce->step == EXEC_STEP_EXECVE)
        cp_outcome_set(o, kind, "exec %s: %s", s->argv_tmpl[0], strerror(e));
    else if (ce->step == EXEC_STEP_CHDIR)
        cp_outcome_set(o, kind, "chdir %s: %s", s->cwd, strerror(e));
    else
        cp_outcome_set(o, kind, "%s: %s", exec_step_name[ce->step], strerror(e));
}

/* How a reaped run ended (OUTCOME above). Can't fail. */
static void exec_outcome(const struct exec_state *s, const struct exec_run *r,
                         const siginfo_t *info, struct cp_outcome *o)
{
    if (r->child_failed) {
        exec_outcome_child(s, &r->child_error, o);
        return;
    }
    if (info->si_code != CLD_EXITED) {
        cp_outcome_set(o, CP_OUTCOME_RETRY, "killed by signal %d", info->si_status);
        return;
    }
    int status = info->si_status;
    if (status == 0) {
        cp_outcome_set(o, CP_OUTCOME_DONE, "%s", "");
        o->has_result = exec_result_parse(r->out, r->out_len, !r->out_cut, &o->result);
        return;
    }
    char line[EXEC_STDERR_TAIL_BYTES + 1];
    exec_stderr_line(r->err_tail, r->err_len, line, sizeof(line));
    cp_outcome_set(o, status == EX_TEMPFAIL ? CP_OUTCOME_RETRY : CP_OUTCOME_FAIL, "exit %d%s%s",
                   status, line[0] ? ": " : "", line);
}

/*
 * The leader's pidfd is readable: it is gone. Drain the pipes, kill what it left in its
 * group (the zombie still holds the group's id, so no other group can be hit), reap it,
 * and report, unless the run was abandoned. A lost exit status (someone else reaped it) is
 * a RETRY.
 */
static void exec_on_exit(struct cp_loop *loop, int fd, uint32_t events, void *arg)
{
    struct exec_run *r = arg;
    struct cp_executor *x = r->x;
    siginfo_t info;
    (void)events;
    assert(fd == r->pidfd && r->pid > 0);
    if (r->out_fd >= 0)
        (void)exec_pipe_read(r->out_fd, r, exec_keep_stdout, EXEC_READS_AT_EXIT);
    if (r->err_fd >= 0)
        (void)exec_pipe_read(r->err_fd, r, exec_keep_stderr, EXEC_READS_AT_EXIT);
    if (r->status_fd >= 0)
        exec_on_status(loop, r->status_fd, 0, r);
    (void)kill(-r->pid, SIGKILL);
    memset(&info, 0, sizeof(info));
    int rc = waitid(P_PIDFD, (id_t)fd, &info, WEXITED | WNOHANG);
    if ((rc == 0 && info.si_pid == 0) || (rc < 0 && errno == EINTR))
        return; /* not reapable yet: the level-triggered pidfd calls again */
    int wait_errno = rc < 0 ? errno : 0;
    exec_run_close_pipes(loop, r);
    exec_close_fd(loop, &r->pidfd);
    exec_run_unlink(x->state, r);
    struct cp_attempt *a = r->a;
    if (!a) {
        free(r);
        return;
    }
    struct cp_outcome o;
    if (wait_errno)
        cp_outcome_set(&o, CP_OUTCOME_RETRY, "exit status lost: %s", strerror(wait_errno));
    else
        exec_outcome(x->state, r, &info, &o);
    a->exec_state = NULL;
    free(r);
    x->done(x, a, &o);
}

/* argv did not expand: start's verdict, delivered from the loop. */
static void exec_on_early(struct cp_loop *loop, void *arg)
{
    struct exec_run *r = arg;
    struct cp_executor *x = r->x;
    struct cp_attempt *a = r->a;
    struct cp_outcome o = r->early;
    (void)loop;
    assert(a && r->pid == 0);
    exec_run_unlink(x->state, r);
    a->exec_state = NULL;
    free(r);
    x->done(x, a, &o);
}

/* ---- start, abandon, fini ------------------------------------------------------------ */

/* Watch the run's four descriptors. 0 or -errno of cp_loop_watch. */
static int exec_run_watch(struct cp_loop *loop, struct exec_run *r)
{
    int rc = cp_loop_watch(loop, r->pidfd, EPOLLIN, exec_on_exit, r);
    if (rc == 0)
        rc = cp_loop_watch(loop, r->out_fd, EPOLLIN, exec_on_stdout, r);
    if (rc == 0)
        rc = cp_loop_watch(loop, r->err_fd, EPOLLIN, exec_on_stderr, r);
    if (rc == 0)
        rc = cp_loop_watch(loop, r->status_fd, EPOLLIN, exec_on_status, r);
    return rc;
}

/*
 * Fork the program of r and watch it. Returns 0, or -errno of pipe2, fcntl, fork,
 * pidfd_open or cp_loop_watch; then nothing of r is open and a child that was forked is
 * killed and reaped (a blocking wait: a child SIGKILLed before or just after its execve
 * dies at once).
 */
static int exec_spawn_run(const struct exec_state *s, const struct exec_spawn *sp,
                          struct exec_run *r)
{
    struct cp_loop *loop = r->x->loop;
    int out[2] = { -1, -1 }, err[2] = { -1, -1 }, status[2] = { -1, -1 };
    int rc = 0;

    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(status, O_CLOEXEC) < 0 ||
        fcntl(out[0], F_SETFL, O_NONBLOCK) < 0 || fcntl(err[0], F_SETFL, O_NONBLOCK) < 0 ||
        fcntl(status[0], F_SETFL, O_NONBLOCK) < 0) {
        rc = -errno;
        goto out_close;
    }
    pid_t pid = fork();
    if (pid < 0) {
        rc = -errno;
        goto out_close;
    }
    if (pid == 0)
        exec_child(s, sp, out[1], err[1], status[1]);
    r->pid = pid;
    r->out_fd = out[0];
    r->err_fd = err[0];
    r->status_fd = status[0];
    out[0] = err[0] = status[0] = -1; /* r's now */
    r->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    rc = r->pidfd < 0 ? -errno : exec_run_watch(loop, r);
    if (rc < 0) {
        exec_run_kill(r);
        exec_run_close_pipes(loop, r);
        exec_close_fd(loop, &r->pidfd);
        (void)waitpid(pid, NULL, 0);
        r->pid = 0;
    }
out_close:
    for (int i = 0; i < 2; i++) {
        if (out[i] >= 0)
            close(out[i]);
        if (err[i] >= 0)
            close(err[i]);
        if (status[i] >= 0)
            close(status[i]);
    }
    return rc;
}

/*
 * Start a's program. Returns 0 (done follows from the loop), or -ENOMEM, -ENOSPC (no timer
 * for an early verdict) or -errno of exec_spawn_run: nothing was started.
 */
static int exec_start(struct cp_executor *x, struct cp_attempt *a)
{
    struct exec_state *s = x->state;
    assert(s && a->exec_state == NULL);
    struct exec_run *r = calloc(1, sizeof(*r) + s->max_output_bytes + 1);
    struct exec_spawn *sp = malloc(sizeof(*sp));
    int rc;

    if (!r || !sp) {
        rc = -ENOMEM;
        goto out_free;
    }
    r->x = x;
    r->a = a;
    r->pidfd = r->out_fd = r->err_fd = r->status_fd = -1;
    if (exec_spawn_build(s, a, sp, &r->early) < 0)
        rc = cp_loop_timer_arm(x->loop, &r->early_timer, cp_now_ns(), exec_on_early, r);
    else
        rc = exec_spawn_run(s, sp, r);
    if (rc < 0)
        goto out_free;
    exec_run_link(s, r);
    a->exec_state = r;
    free(sp);
    return 0;
out_free:
    free(sp);
    free(r);
    return rc;
}

/* Kill a's process group and forget a; the leader is reaped later by exec_on_exit. Never
 * blocks; can't fail. */
static void exec_abandon(struct cp_executor *x, struct cp_attempt *a)
{
    struct exec_state *s = x->state;
    struct exec_run *r = a->exec_state;
    if (!r)
        return;
    assert(r->a == a);
    a->exec_state = NULL;
    r->a = NULL;
    if (r->pid == 0) { /* only an early verdict was pending */
        cp_loop_timer_cancel(x->loop, &r->early_timer);
        exec_run_unlink(s, r);
        free(r);
        return;
    }
    exec_run_kill(r);
    exec_run_close_pipes(x->loop, r);
}

/* Kill and reap every run left (EXEC_FINI_WAIT_MS at most in all), free the state. */
static void exec_fini(struct cp_executor *x)
{
    struct exec_state *s = x->state;
    if (!s)
        return;
    uint64_t deadline_ns = cp_now_ns() + (uint64_t)EXEC_FINI_WAIT_MS * 1000000u;
    while (s->runs) {
        struct exec_run *r = s->runs;
        if (r->a) /* the dispatcher should have abandoned it: done is not called either way */
            r->a->exec_state = NULL;
        cp_loop_timer_cancel(x->loop, &r->early_timer);
        if (r->pid > 0) {
            exec_run_kill(r);
            exec_run_close_pipes(x->loop, r);
            exec_run_reap_until(x->loop, r, deadline_ns);
        }
        exec_run_unlink(s, r);
        free(r);
    }
    free(s);
    x->state = NULL;
}

const struct cp_executor_ops cp_exec_exec_ops = {
    .kind = "exec",
    .init = exec_init,
    .start = exec_start,
    .abandon = exec_abandon,
    .fini = exec_fini,
};
