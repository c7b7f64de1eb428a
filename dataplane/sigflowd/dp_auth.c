/*
 * dp_auth.c — key sets, per-frame verification, per-owner replay windows, the counter lease.
 *
 * Replay protection (docs/protocol.md §6.3 is normative)
 *
 *   Every authenticated frame carries (auth_key_id, auth_counter); a sender makes the
 *   counter strictly increase per key (microseconds of realtime, bumped when the clock
 *   does not advance), so a restarted sender continues above its old counters. The node
 *   accepts each (key id, counter) at most once:
 *
 *   - Windows live on the owner cores, one per key id per owner. A frame's events are
 *     spread over owners; each owner judges the frame's (key id, counter) for its own
 *     events. A replay carries the same events to the same owners, where each refuses its
 *     part, so no state is shared between owners and no lock is taken.
 *   - Window: hwm, the highest counter accepted, and a 64-bit map `seen` of hwm - 0..63.
 *     c > hwm: accept, slide the map by c - hwm. hwm - 63 <= c <= hwm: accept once (bit
 *     clear → set), else REPLAYED. c < hwm - 63: TOO_OLD (frames may be reordered by up to
 *     63 counters of the same key on one owner).
 *   - Same frame, several events on one owner: the first event's verdict is remembered
 *     per source (rx core) with the frame's token and reused for the rest of the frame
 *     (struct dp_auth_frame_memo). Tokens come from a per-source count and never repeat,
 *     so a replayed frame (another token) is always judged by the window.
 *
 * Durability of the window: the lease
 *
 *   Windows are in memory; a restart must not accept again a counter accepted before it.
 *   The lease file holds, per key id, a limit L that is >= every counter any owner has
 *   accepted:
 *     - an owner accepts c only if c <= L (read with an acquire load); within `margin` of
 *       L it asks for an extension (CAS-max of the entry's `wanted`, then a flag); c > L is
 *       LEASE_WAIT: dropped, with a request covering c;
 *     - the control thread (dp_auth_lease_extend) sets L' = wanted + extension for the keys
 *       asking, writes the whole file to PATH.tmp, fsyncs it, renames it over PATH and
 *       fsyncs the directory, and only then stores L' (release). So a published limit is
 *       always durable, and every accepted counter is <= a durable limit;
 *     - at start (dp_auth_lease_open) each key's floor = its L in the file; windows start
 *       with hwm = floor and every bit set, so no counter <= floor is accepted again.
 *       The first limits are max(floor, now) + extension, written before any frame is
 *       judged. A key id the file does not know starts with floor 0.
 *   The price of a restart: counters in (highest accepted, floor] are refused, i.e. up to
 *   `extension` microseconds of a realtime counter (2^24 µs ≈ 16.8 s by default) when the
 *   node comes back faster than that. A lost or damaged lease file refuses to start; to
 *   start without one, rotate every key (new ids).
 *
 * Lease file (DIR/auth.lease), text, written whole and atomically:
 *
 *     sigflow-auth-lease 1
 *     key <key id> <limit>                  one line per key id, ids unique, 1..2^32-1
 *     ...
 *     end <key lines> <fnv1a64>             16 hex digits: FNV-1a 64 of every byte before
 *                                           this line; nothing may follow its newline
 *
 *   Any other content is damage (-EINVAL, "PATH:LINE: reason").
 */
#include "dp_auth.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#ifdef SF_DEBUG_HOT
#define DP_AUTH_ASSERT_HOT(x) assert(x)
#else
#define DP_AUTH_ASSERT_HOT(x) ((void)sizeof(x))
#endif

#define DP_AUTH_LEASE_MAGIC     "sigflow-auth-lease 1"
#define DP_AUTH_LEASE_ASK_TRIES 8u /* CAS attempts of one extension request */
#define DP_AUTH_FNV_OFFSET      0xcbf29ce484222325ull
#define DP_AUTH_FNV_PRIME       0x100000001b3ull
#define DP_AUTH_PATH_LEN_MAX    (PATH_MAX - 8) /* room for ".tmp" */

_Static_assert(DP_AUTH_WINDOW_BITS == 64, "the window map is one u64");
_Static_assert(DP_AUTH_VERDICT_COUNT == 1 - DP_AUTH_BAD_TAG, "verdict names cover the enum");
_Static_assert(DP_AUTH_WIN_VERDICT_COUNT == 1 - DP_AUTH_WIN_LEASE_WAIT, "names cover the enum");

__attribute__((format(printf, 3, 4))) static void dp_auth_errf(char *err, size_t cap,
                                                               const char *fmt, ...)
{
    if (err == NULL || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

static uint64_t dp_auth_add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* ---- key set ------------------------------------------------------------------------- */

struct dp_auth_keys {
    unsigned count;
    struct dp_auth_key keys[]; /* sorted by id, ids unique */
};

static int dp_auth_spec_cmp(const void *a, const void *b)
{
    uint32_t x = ((const struct sf_auth_key_spec *)a)->id;
    uint32_t y = ((const struct sf_auth_key_spec *)b)->id;
    return x < y ? -1 : x > y;
}

/* Build the set from n parsed specs (wiped by the caller). Returns 0 or -ENOMEM. */
static int dp_auth_keys_build(struct sf_auth_key_spec *specs, unsigned n, struct dp_auth_keys **out)
{
    assert(n <= DP_AUTH_KEYS_MAX);
    struct dp_auth_keys *k = calloc(1, sizeof(*k) + (size_t)n * sizeof(k->keys[0]));
    if (k == NULL)
        return -ENOMEM;
    qsort(specs, n, sizeof(specs[0]), dp_auth_spec_cmp);
    for (unsigned i = 0; i < n; i++) {
        const struct sf_auth_key_spec *s = &specs[i];
        struct dp_auth_key *key = &k->keys[i];
        assert(s->id != 0 && (i == 0 || specs[i - 1].id < s->id)); /* the parser's rules */
        sf_auth_mac_init(&key->mac, s->key, sizeof(s->key));
        key->id = s->id;
        key->sender_id = s->sender_id;
        key->sender_set = s->sender_set;
        key->type_count = s->type_count;
        key->prefix_len = s->prefix_len;
        _Static_assert(sizeof(key->types) == sizeof(s->types), "same type table");
        _Static_assert(sizeof(key->prefix) == sizeof(s->prefix), "same prefix buffer");
        memcpy(key->type_lens, s->type_lens, sizeof(key->type_lens));
        memcpy(key->types, s->types, sizeof(key->types));
        memcpy(key->prefix, s->prefix, sizeof(key->prefix));
    }
    k->count = n;
    *out = k;
    return 0;
}

/* Parse (text != NULL) or load (path) into a new set. */
static int dp_auth_keys_make(const char *path, const char *text, size_t len, const char *name,
                             struct dp_auth_keys **out, char *err, size_t err_cap)
{
    assert(out != NULL);
    *out = NULL;
    struct sf_auth_key_spec *specs = calloc(DP_AUTH_KEYS_MAX, sizeof(*specs));
    if (specs == NULL) {
        dp_auth_errf(err, err_cap, "%s: out of memory", name);
        return -ENOMEM;
    }
    int n = text != NULL
                ? sf_auth_keyfile_parse(text, len, name, specs, DP_AUTH_KEYS_MAX, err, err_cap)
                : sf_auth_keyfile_load(path, specs, DP_AUTH_KEYS_MAX, err, err_cap);
    int rc = n;
    if (n >= 0) {
        rc = dp_auth_keys_build(specs, (unsigned)n, out);
        if (rc < 0)
            dp_auth_errf(err, err_cap, "%s: out of memory", name);
    }
    sf_auth_specs_clear(specs, DP_AUTH_KEYS_MAX);
    free(specs);
    assert((rc == 0) == (*out != NULL));
    return rc;
}

int dp_auth_keys_load(const char *path, struct dp_auth_keys **out, char *err, size_t err_cap)
{
    assert(path != NULL);
    return dp_auth_keys_make(path, NULL, 0, path, out, err, err_cap);
}

int dp_auth_keys_parse(const char *text, size_t len, const char *name, struct dp_auth_keys **out,
                       char *err, size_t err_cap)
{
    assert(name != NULL);
    static const char empty[1] = "";
    return dp_auth_keys_make(NULL, text != NULL ? text : empty, text != NULL ? len : 0, name, out,
                             err, err_cap);
}

const struct dp_auth_key *dp_auth_keys_find(const struct dp_auth_keys *keys, uint32_t id)
{
    assert(keys != NULL);
    unsigned lo = 0, hi = keys->count;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        uint32_t at = keys->keys[mid].id;
        if (at == id)
            return &keys->keys[mid];
        if (at < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

unsigned dp_auth_keys_count(const struct dp_auth_keys *keys)
{
    assert(keys != NULL);
    return keys->count;
}

const struct dp_auth_key *dp_auth_keys_at(const struct dp_auth_keys *keys, unsigned i)
{
    assert(keys != NULL && i < keys->count);
    return &keys->keys[i];
}

void dp_auth_keys_free(struct dp_auth_keys *keys)
{
    if (keys == NULL)
        return;
    OPENSSL_cleanse(keys, sizeof(*keys) + (size_t)keys->count * sizeof(keys->keys[0]));
    free(keys);
}

/* ---- per frame, per event ------------------------------------------------------------ */

const char *dp_auth_verdict_name(int verdict)
{
    static const char *const names[DP_AUTH_VERDICT_COUNT] = {
        [0] = "ok",
        [-DP_AUTH_UNAUTHENTICATED] = "auth_unauthenticated",
        [-DP_AUTH_NO_KEY] = "auth_no_key",
        [-DP_AUTH_WRONG_SENDER] = "auth_wrong_sender",
        [-DP_AUTH_BAD_TAG] = "auth_bad_tag",
    };
    if (verdict > 0 || verdict <= -DP_AUTH_VERDICT_COUNT)
        return "unknown";
    return names[-verdict];
}

int dp_auth_verify(const struct dp_auth_keys *keys, const uint8_t *dgram, size_t len,
                   const struct sf_frame_hdr *hdr, const struct dp_auth_key **key_out)
{
    DP_AUTH_ASSERT_HOT(dgram != NULL && hdr != NULL && key_out != NULL);
    *key_out = NULL;
    if (keys == NULL)
        return DP_AUTH_OK;
    if ((hdr->flags & SF_FLAG_AUTH) == 0)
        return DP_AUTH_UNAUTHENTICATED;
    const struct dp_auth_key *key = dp_auth_keys_find(keys, hdr->auth_key_id);
    if (key == NULL)
        return DP_AUTH_NO_KEY;
    if (key->sender_set && key->sender_id != hdr->sender_id)
        return DP_AUTH_WRONG_SENDER;
    if (!sf_auth_frame_check(&key->mac, dgram, len))
        return DP_AUTH_BAD_TAG;
    DP_AUTH_ASSERT_HOT(key->id == hdr->auth_key_id && key->id != 0);
    *key_out = key;
    return DP_AUTH_OK;
}

bool dp_auth_allows(const struct dp_auth_key *key, const char *type, size_t type_len,
                    const char *id, size_t id_len)
{
    DP_AUTH_ASSERT_HOT(type != NULL && id != NULL);
    if (key == NULL)
        return true;
    if (key->prefix_len > 0 &&
        (id_len < key->prefix_len || memcmp(id, key->prefix, key->prefix_len) != 0))
        return false;
    if (key->type_count == 0)
        return true;
    DP_AUTH_ASSERT_HOT(key->type_count <= SF_AUTH_KEY_TYPES_MAX);
    for (unsigned i = 0; i < key->type_count; i++) {
        if (key->type_lens[i] == type_len && memcmp(key->types[i], type, type_len) == 0)
            return true;
    }
    return false;
}

/* ---- lease --------------------------------------------------------------------------- */

struct dp_auth_lease_entry {
    alignas(DP_AUTH_CACHE_LINE) _Atomic uint64_t limit; /* written after the fsync */
    uint64_t floor;   /* the file's limit at start: never accept <= floor; immutable */
    uint64_t pending; /* control thread: the limit the next write puts in the file */
    uint32_t key_id;  /* immutable once published by lease->count */
    alignas(DP_AUTH_CACHE_LINE) _Atomic uint64_t wanted; /* owners: CAS-max of asked counters */
};

struct dp_auth_lease {
    char path[PATH_MAX];
    char tmp_path[PATH_MAX];
    int dir_fd;
    int fail_next_write; /* tests: -errno of the next write, or 0 */
    struct dp_auth_lease_conf conf;
    alignas(DP_AUTH_CACHE_LINE) _Atomic unsigned count; /* published entries */
    alignas(DP_AUTH_CACHE_LINE) _Atomic int asked;      /* an owner asked for an extension */
    struct dp_auth_lease_entry entries[DP_AUTH_LEASE_KEYS_MAX];
    char text[DP_AUTH_LEASE_FILE_BYTES_MAX]; /* the file, being written or read */
};

static uint64_t dp_auth_fnv1a(uint64_t h, const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)p[i]) * DP_AUTH_FNV_PRIME;
    return h;
}

/* The entry of key_id among the first n, or NULL. */
static struct dp_auth_lease_entry *dp_auth_lease_entry_find(struct dp_auth_lease *l, unsigned n,
                                                            uint32_t key_id)
{
    for (unsigned i = 0; i < n; i++)
        if (l->entries[i].key_id == key_id)
            return &l->entries[i];
    return NULL;
}

/* Format entries [0, n) with their pending limits into l->text. Returns its length. */
static size_t dp_auth_lease_format(struct dp_auth_lease *l, unsigned n)
{
    size_t cap = sizeof(l->text), len = 0;
    int w = snprintf(l->text, cap, "%s\n", DP_AUTH_LEASE_MAGIC);
    assert(w > 0 && (size_t)w < cap);
    len = (size_t)w;
    for (unsigned i = 0; i < n; i++) {
        const struct dp_auth_lease_entry *e = &l->entries[i];
        w = snprintf(l->text + len, cap - len, "key %" PRIu32 " %" PRIu64 "\n", e->key_id,
                     e->pending);
        assert(w > 0 && (size_t)w < cap - len); /* DP_AUTH_LEASE_FILE_BYTES_MAX allows it */
        len += (size_t)w;
    }
    uint64_t sum = dp_auth_fnv1a(DP_AUTH_FNV_OFFSET, l->text, len);
    w = snprintf(l->text + len, cap - len, "end %u %016" PRIx64 "\n", n, sum);
    assert(w > 0 && (size_t)w < cap - len);
    return len + (size_t)w;
}

static int dp_auth_write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * Make entries [0, n) with their pending limits the file's content, durably: write
 * PATH.tmp, fsync it, rename it over PATH, fsync the directory. Returns 0 or -errno (the
 * file then holds its old content or the new one; the caller publishes nothing).
 */
static int dp_auth_lease_write(struct dp_auth_lease *l, unsigned n)
{
    assert(n <= DP_AUTH_LEASE_KEYS_MAX);
    if (l->fail_next_write != 0) {
        int rc = -l->fail_next_write;
        l->fail_next_write = 0;
        return rc;
    }
    size_t len = dp_auth_lease_format(l, n);
    int fd = open(l->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = dp_auth_write_all(fd, l->text, len);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(l->tmp_path, l->path) != 0)
        rc = -errno;
    if (rc < 0) {
        unlink(l->tmp_path);
        return rc;
    }
    /* The rename is durable only with the directory; until then nothing is published. */
    return fsync(l->dir_fd) == 0 ? 0 : -errno;
}

/* Publish the pending limits of entries [0, n) (after a successful write). */
static void dp_auth_lease_publish(struct dp_auth_lease *l, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct dp_auth_lease_entry *e = &l->entries[i];
        assert(e->pending >= atomic_load_explicit(&e->limit, memory_order_relaxed));
        atomic_store_explicit(&e->limit, e->pending, memory_order_release);
    }
    atomic_store_explicit(&l->count, n, memory_order_release);
}

/*
 * Strict number after one space at *p: digits only (base 10 or 16), no sign, at most max.
 * Advances *p past it. False for anything else.
 */
static bool dp_auth_lease_number(const char **p, unsigned base, uint64_t max, uint64_t *out)
{
    const char *s = *p;
    if (*s++ != ' ')
        return false;
    uint64_t v = 0;
    const char *start = s;
    for (;; s++) {
        unsigned d;
        if (*s >= '0' && *s <= '9')
            d = (unsigned)(*s - '0');
        else if (base == 16 && *s >= 'a' && *s <= 'f')
            d = (unsigned)(*s - 'a' + 10);
        else
            break;
        if (v > (max - d) / base)
            return false;
        v = v * base + d;
    }
    if (s == start)
        return false;
    *p = s;
    *out = v;
    return true;
}

/* One "key ID LIMIT" line of the lease file. NULL or the reason. */
static const char *dp_auth_lease_parse_key(const char *line, struct dp_auth_lease *l, unsigned n)
{
    uint64_t id, limit;
    const char *p = line + 3;
    if (strncmp(line, "key", 3) != 0 || !dp_auth_lease_number(&p, 10, UINT32_MAX, &id) ||
        !dp_auth_lease_number(&p, 10, UINT64_MAX, &limit) || *p != '\0' || id == 0)
        return "expected 'key ID LIMIT'";
    if (dp_auth_lease_entry_find(l, n, id) != NULL)
        return "key id given twice";
    if (n == DP_AUTH_LEASE_KEYS_MAX)
        return "more key ids than the lease holds";
    struct dp_auth_lease_entry *e = &l->entries[n];
    e->key_id = (uint32_t)id;
    e->floor = limit;
    e->pending = limit;
    atomic_store_explicit(&e->limit, limit, memory_order_relaxed);
    atomic_store_explicit(&e->wanted, 0, memory_order_relaxed);
    return NULL;
}

/*
 * Parse l->text[0..len) (NUL-terminated) into entries. Returns the entry count, or
 * -EINVAL with err "PATH:LINE: reason".
 */
static int dp_auth_lease_parse(struct dp_auth_lease *l, size_t len, char *err, size_t err_cap)
{
    unsigned n = 0, line_no = 0;
    char *p = l->text, *end = l->text + len;
    const char *why = "empty (no 'end' line)";
    uint64_t sum = DP_AUTH_FNV_OFFSET;
    while (p < end) {
        line_no++;
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL) {
            why = "last line without a newline (torn file)";
            break;
        }
        uint64_t sum_before = sum; /* of every byte before this line */
        sum = dp_auth_fnv1a(sum, p, (size_t)(nl + 1 - p));
        *nl = '\0';
        if (line_no == 1) {
            why = strcmp(p, DP_AUTH_LEASE_MAGIC) == 0 ? NULL : "not a sigflow lease file";
        } else if (strncmp(p, "end ", 4) == 0) {
            uint64_t count, written;
            const char *q = p + 3;
            if (!dp_auth_lease_number(&q, 10, DP_AUTH_LEASE_KEYS_MAX, &count) ||
                !dp_auth_lease_number(&q, 16, UINT64_MAX, &written) || *q != '\0')
                why = "expected 'end COUNT CHECKSUM'";
            else if (count != n)
                why = "key line count differs from the 'end' line";
            else if (written != sum_before)
                why = "checksum mismatch";
            else if (nl + 1 != end)
                why = "bytes after the 'end' line";
            else
                return (int)n;
        } else {
            why = dp_auth_lease_parse_key(p, l, n);
            n += why == NULL;
        }
        if (why != NULL)
            break;
        p = nl + 1;
        why = "no 'end' line (torn file)";
    }
    dp_auth_errf(err, err_cap, "%s:%u: %s", l->path, line_no > 0 ? line_no : 1, why);
    return -EINVAL;
}

/* Read the file into entries (missing file: none). Returns the count or -errno. */
static int dp_auth_lease_read(struct dp_auth_lease *l, char *err, size_t err_cap)
{
    int fd = open(l->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT)
        return 0;
    if (fd < 0) {
        int rc = -errno;
        dp_auth_errf(err, err_cap, "%s: %s", l->path, strerror(-rc));
        return rc;
    }
    size_t len = 0, cap = sizeof(l->text) - 1;
    int rc = 0;
    while (len < cap) {
        ssize_t got = read(fd, l->text + len, cap - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            rc = got < 0 ? -errno : 0;
            break;
        }
        len += (size_t)got;
    }
    close(fd);
    if (rc < 0) {
        dp_auth_errf(err, err_cap, "%s: read: %s", l->path, strerror(-rc));
        return rc;
    }
    if (len == cap) {
        dp_auth_errf(err, err_cap, "%s: longer than a lease file can be", l->path);
        return -EINVAL;
    }
    l->text[len] = '\0';
    return dp_auth_lease_parse(l, len, err, err_cap);
}

static int dp_auth_lease_paths(struct dp_auth_lease *l, const char *path, char *err, size_t err_cap)
{
    size_t len = strlen(path);
    if (len == 0 || len > DP_AUTH_PATH_LEN_MAX) {
        dp_auth_errf(err, err_cap, "lease path empty or longer than %d bytes",
                     DP_AUTH_PATH_LEN_MAX);
        return -ENAMETOOLONG;
    }
    memcpy(l->path, path, len + 1);
    snprintf(l->tmp_path, sizeof(l->tmp_path), "%s.tmp", path);
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash == NULL ? 0 : slash == path ? 1 : (size_t)(slash - path);
    memcpy(dir, dir_len > 0 ? path : ".", dir_len > 0 ? dir_len : 1);
    dir[dir_len > 0 ? dir_len : 1] = '\0';
    l->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (l->dir_fd < 0) {
        int rc = -errno;
        dp_auth_errf(err, err_cap, "%s: %s", dir, strerror(-rc));
        return rc;
    }
    return 0;
}

/*
 * Append entries for the ids of `keys` not among the first `n` (pending limit
 * max(now_us, 0) + extension, floor 0) and give every key of `keys` whose pending limit is
 * below max(floor, now_us) + extension that limit. Returns the new entry count or -E2BIG.
 */
static int dp_auth_lease_cover(struct dp_auth_lease *l, unsigned n, const struct dp_auth_keys *keys,
                               uint64_t now_us, bool raise_known)
{
    unsigned count = keys != NULL ? dp_auth_keys_count(keys) : 0;
    for (unsigned i = 0; i < count; i++) {
        uint32_t id = dp_auth_keys_at(keys, i)->id;
        struct dp_auth_lease_entry *e = dp_auth_lease_entry_find(l, n, id);
        if (e != NULL && !raise_known)
            continue;
        if (e == NULL) {
            if (n == DP_AUTH_LEASE_KEYS_MAX)
                return -E2BIG;
            e = &l->entries[n++];
            e->key_id = id;
            e->floor = 0;
            e->pending = 0;
            atomic_store_explicit(&e->limit, 0, memory_order_relaxed);
            atomic_store_explicit(&e->wanted, 0, memory_order_relaxed);
        }
        uint64_t want = dp_auth_add_sat(e->floor > now_us ? e->floor : now_us, l->conf.extension);
        if (want > e->pending)
            e->pending = want;
    }
    return (int)n;
}

int dp_auth_lease_open(const char *path, const struct dp_auth_keys *keys, uint64_t now_us,
                       const struct dp_auth_lease_conf *conf, struct dp_auth_lease **out, char *err,
                       size_t err_cap)
{
    assert(path != NULL && out != NULL);
    *out = NULL;
    struct dp_auth_lease *l = aligned_alloc(DP_AUTH_CACHE_LINE, sizeof(*l));
    if (l == NULL) {
        dp_auth_errf(err, err_cap, "%s: out of memory", path);
        return -ENOMEM;
    }
    memset(l, 0, sizeof(*l));
    l->conf.extension =
        conf != NULL && conf->extension > 0 ? conf->extension : DP_AUTH_LEASE_EXTENSION_DEFAULT;
    l->conf.margin = conf != NULL && conf->margin > 0 ? conf->margin : l->conf.extension / 2;
    if (l->conf.margin >= l->conf.extension) {
        dp_auth_errf(err, err_cap, "%s: lease margin must be below the extension", path);
        free(l);
        return -EINVAL;
    }
    int rc = dp_auth_lease_paths(l, path, err, err_cap);
    if (rc < 0)
        goto out_free;
    rc = dp_auth_lease_read(l, err, err_cap);
    if (rc < 0)
        goto out_close;
    rc = dp_auth_lease_cover(l, (unsigned)rc, keys, now_us, true);
    if (rc < 0) {
        dp_auth_errf(err, err_cap, "%s: more than %u key ids", path, DP_AUTH_LEASE_KEYS_MAX);
        goto out_close;
    }
    unsigned n = (unsigned)rc;
    rc = dp_auth_lease_write(l, n);
    if (rc < 0) {
        dp_auth_errf(err, err_cap, "%s: write: %s", path, strerror(-rc));
        goto out_close;
    }
    dp_auth_lease_publish(l, n);
    *out = l;
    return 0;

out_close:
    close(l->dir_fd);
out_free:
    free(l);
    return rc;
}

int dp_auth_lease_add_keys(struct dp_auth_lease *l, const struct dp_auth_keys *keys,
                           uint64_t now_us)
{
    assert(l != NULL && keys != NULL);
    unsigned n = atomic_load_explicit(&l->count, memory_order_relaxed);
    int rc = dp_auth_lease_cover(l, n, keys, now_us, false);
    if (rc < 0)
        return rc;
    unsigned added = (unsigned)rc - n;
    if (added == 0)
        return 0;
    int wrc = dp_auth_lease_write(l, (unsigned)rc);
    if (wrc < 0)
        return wrc; /* entries past count stay unpublished; the next call redoes them */
    dp_auth_lease_publish(l, (unsigned)rc);
    return (int)added;
}

bool dp_auth_lease_wanted(const struct dp_auth_lease *l)
{
    assert(l != NULL);
    return atomic_load_explicit(&l->asked, memory_order_relaxed) != 0;
}

int dp_auth_lease_extend(struct dp_auth_lease *l)
{
    assert(l != NULL);
    if (atomic_load_explicit(&l->asked, memory_order_relaxed) == 0)
        return 0;
    /* Clear the flag before reading the requests: a request after the reads sets it again. */
    atomic_exchange(&l->asked, 0);
    unsigned n = atomic_load_explicit(&l->count, memory_order_relaxed);
    int raised = 0;
    for (unsigned i = 0; i < n; i++) {
        struct dp_auth_lease_entry *e = &l->entries[i];
        uint64_t limit = atomic_load_explicit(&e->limit, memory_order_relaxed);
        uint64_t wanted = atomic_load(&e->wanted);
        assert(e->pending == limit); /* nothing unpublished between calls */
        if (wanted == 0 || dp_auth_add_sat(wanted, l->conf.margin) <= limit)
            continue;
        uint64_t next = dp_auth_add_sat(wanted, l->conf.extension);
        if (next > limit) {
            e->pending = next;
            raised++;
        }
    }
    if (raised == 0)
        return 0;
    int rc = dp_auth_lease_write(l, n);
    if (rc < 0) {
        for (unsigned i = 0; i < n; i++)
            l->entries[i].pending =
                atomic_load_explicit(&l->entries[i].limit, memory_order_relaxed);
        atomic_store(&l->asked, 1); /* still wanted: the caller retries later */
        return rc;
    }
    dp_auth_lease_publish(l, n);
    return raised;
}

static const struct dp_auth_lease_entry *dp_auth_lease_lookup(const struct dp_auth_lease *l,
                                                              uint32_t key_id)
{
    unsigned n = atomic_load_explicit(&l->count, memory_order_acquire);
    return dp_auth_lease_entry_find((struct dp_auth_lease *)l, n, key_id);
}

uint64_t dp_auth_lease_limit(const struct dp_auth_lease *l, uint32_t key_id)
{
    assert(l != NULL);
    const struct dp_auth_lease_entry *e = dp_auth_lease_lookup(l, key_id);
    return e != NULL ? atomic_load_explicit(&e->limit, memory_order_acquire) : 0;
}

uint64_t dp_auth_lease_floor(const struct dp_auth_lease *l, uint32_t key_id)
{
    assert(l != NULL);
    const struct dp_auth_lease_entry *e = dp_auth_lease_lookup(l, key_id);
    return e != NULL ? e->floor : 0;
}

void dp_auth_lease_fail_next_write(struct dp_auth_lease *l, int err)
{
    assert(l != NULL && err > 0);
    l->fail_next_write = err;
}

void dp_auth_lease_close(struct dp_auth_lease *l)
{
    if (l == NULL)
        return;
    close(l->dir_fd);
    free(l);
}

/* An owner's request: raise the entry's wanted to at least counter, then set the flag. */
static void dp_auth_lease_ask(struct dp_auth_lease *l, struct dp_auth_lease_entry *e,
                              uint64_t counter)
{
    uint64_t w = atomic_load_explicit(&e->wanted, memory_order_relaxed);
    for (unsigned i = 0; w < counter && i < DP_AUTH_LEASE_ASK_TRIES; i++) {
        if (atomic_compare_exchange_weak(&e->wanted, &w, counter))
            break;
    }
    /* seq_cst after the CAS: dp_auth_lease_extend clears the flag before it reads. */
    if (atomic_load(&l->asked) == 0)
        atomic_store(&l->asked, 1);
}

/* ---- replay windows ------------------------------------------------------------------ */

const char *dp_auth_window_verdict_name(int verdict)
{
    static const char *const names[DP_AUTH_WIN_VERDICT_COUNT] = {
        [0] = "ok",
        [-DP_AUTH_WIN_REPLAYED] = "auth_replayed",
        [-DP_AUTH_WIN_TOO_OLD] = "auth_too_old",
        [-DP_AUTH_WIN_LEASE_WAIT] = "auth_lease_wait",
    };
    if (verdict > 0 || verdict <= -DP_AUTH_WIN_VERDICT_COUNT)
        return "unknown";
    return names[-verdict];
}

void dp_auth_window_table_init(struct dp_auth_window_table *t, struct dp_auth_lease *lease)
{
    assert(t != NULL && lease != NULL);
    memset(t, 0, sizeof(*t));
    t->lease = lease;
    assert(t->used == 0 && t->memo[0].token == 0);
}

/* The window of key_id, created (from its lease entry) on first use; NULL when the lease
 * does not know the key id yet. */
static struct dp_auth_window *dp_auth_window_slot(struct dp_auth_window_table *t, uint32_t key_id)
{
    DP_AUTH_ASSERT_HOT(key_id != 0);
    uint32_t mask = DP_AUTH_WINDOW_SLOTS - 1;
    uint32_t i = (uint32_t)(key_id * 0x9e3779b1u) >> 19; /* 13 bits: DP_AUTH_WINDOW_SLOTS */
    _Static_assert(DP_AUTH_WINDOW_SLOTS == 1u << 13, "the hash gives 13 bits");
    for (unsigned probes = 0; probes < DP_AUTH_WINDOW_SLOTS; probes++, i = (i + 1) & mask) {
        struct dp_auth_window *w = &t->slots[i];
        if (w->key_id == key_id)
            return w;
        if (w->key_id != 0)
            continue;
        const struct dp_auth_lease_entry *e = dp_auth_lease_lookup(t->lease, key_id);
        if (e == NULL)
            return NULL;
        assert(t->used < DP_AUTH_LEASE_KEYS_MAX); /* one slot per lease entry at most */
        t->used++;
        w->key_id = key_id;
        w->hwm = e->floor;
        w->seen = ~0ull; /* everything up to the floor counts as seen */
        w->lease = e;
        return w;
    }
    assert(0 && "window table full: cannot happen, slots >= 2 * lease entries");
    return NULL;
}

/* Judge (key id, counter) against the window; the memo-less core of the check. */
static int dp_auth_window_judge(struct dp_auth_window_table *t, uint32_t key_id, uint64_t counter)
{
    struct dp_auth_window *w = dp_auth_window_slot(t, key_id);
    if (w == NULL)
        return DP_AUTH_WIN_LEASE_WAIT; /* key published before its lease entry: a bug upstream */
    struct dp_auth_lease_entry *e = (struct dp_auth_lease_entry *)w->lease;
    DP_AUTH_ASSERT_HOT((w->seen & 1) != 0);
    if (counter <= w->hwm) {
        uint64_t back = w->hwm - counter;
        if (back >= DP_AUTH_WINDOW_BITS)
            return DP_AUTH_WIN_TOO_OLD;
        uint64_t bit = 1ull << back;
        if (w->seen & bit)
            return DP_AUTH_WIN_REPLAYED;
        w->seen |= bit;
        return DP_AUTH_WIN_FRESH;
    }
    uint64_t limit = atomic_load_explicit(&e->limit, memory_order_acquire);
    if (counter > limit) {
        dp_auth_lease_ask(t->lease, e, counter);
        return DP_AUTH_WIN_LEASE_WAIT;
    }
    uint64_t shift = counter - w->hwm;
    w->seen = shift >= DP_AUTH_WINDOW_BITS ? 1 : (w->seen << shift) | 1;
    w->hwm = counter;
    if (dp_auth_add_sat(counter, t->lease->conf.margin) > limit)
        dp_auth_lease_ask(t->lease, e, counter);
    DP_AUTH_ASSERT_HOT(w->hwm <= limit);
    return DP_AUTH_WIN_FRESH;
}

int dp_auth_window_check(struct dp_auth_window_table *t, unsigned source, uint64_t frame_token,
                         uint32_t key_id, uint64_t counter)
{
    DP_AUTH_ASSERT_HOT(t != NULL && frame_token != 0);
    assert(source < DP_AUTH_WINDOW_SOURCES_MAX);
    struct dp_auth_frame_memo *m = &t->memo[source];
    if (m->token == frame_token && m->key_id == key_id && m->counter == counter)
        return m->verdict; /* the rest of a frame already judged on this owner */
    int verdict = dp_auth_window_judge(t, key_id, counter);
    *m = (struct dp_auth_frame_memo){
        .token = frame_token, .counter = counter, .key_id = key_id, .verdict = verdict
    };
    return verdict;
}
