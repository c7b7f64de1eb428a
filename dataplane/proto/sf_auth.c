/*
 * sf_auth.c — frame tags (HMAC-SHA256 with precomputed pads) and the key file.
 *
 * Tag (docs/protocol.md §6.1 is normative)
 *
 *   A frame with flag AUTH (0x02) carries auth_key_id (u32 at byte 20, never 0) and
 *   auth_counter (u64 at byte 24) and ends with 32 bytes:
 *
 *       tag = HMAC-SHA256(key, dgram[0 .. len - 32))        (RFC 2104, FIPS 180-4)
 *
 *   HMAC(K, m) = H((K0 ^ opad) || H((K0 ^ ipad) || m)), K0 the key zero-padded to the
 *   64-byte block (hashed first when longer). (K0 ^ ipad) and (K0 ^ opad) are one block
 *   each, so their SHA-256 states are computed once per key (sf_auth_mac_init) and a tag
 *   costs ceil((len + 9) / 64) blocks for the inner hash plus one for the outer. A receiver
 *   compares tags with CRYPTO_memcmp, whose time does not depend on where they differ.
 *
 * Key file (§6.2)
 *
 *   Text, one item per line, at most SF_AUTH_KEYFILE_LINE_MAX bytes a line; tokens are
 *   separated by spaces or tabs; a token starting with '#' starts a comment that runs to
 *   the end of the line; blank lines are ignored; a trailing CR is ignored.
 *
 *       key <id> <64 hex digits> [types=T1,T2,...] [prefix=ID_PREFIX] [sender=SENDER_ID]
 *
 *   id: decimal 1..4294967295, unique in the file. The hex digits are the 32 key bytes,
 *   first byte first, either case. types=: 1..SF_AUTH_KEY_TYPES_MAX workflow type names
 *   (sf_name_valid_type) separated by commas; prefix=: a non-empty workflow id prefix
 *   (sf_name_valid_id); sender=: decimal u32. Each option at most once, in any order.
 *   Anything else on a line refuses the whole file with "NAME:LINE: reason".
 *
 *   The file must be a regular file with mode 0600 or stricter, owned by root or by the
 *   reader's effective user (sf_auth_keyfile_read says why when it is not).
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init/Update/Final: see the cost model */

#include "sf_auth.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define SF_AUTH_IPAD 0x36u
#define SF_AUTH_OPAD 0x5cu

_Static_assert(SF_AUTH_HMAC_BLOCK_LEN == SHA256_CBLOCK, "SHA-256 block is 64 bytes");
_Static_assert(SF_AUTH_KEY_HEX_LEN == 2 * SF_AUTH_KEY_LEN, "two hex digits per key byte");
_Static_assert(SF_AUTH_KEY_TYPES_MAX <= UINT8_MAX, "type_count is a u8");
_Static_assert(SF_ID_LEN_MAX <= UINT8_MAX, "prefix_len is a u8");

/* ---- HMAC ---------------------------------------------------------------------------- */

static void sf_auth_pad_state(SHA256_CTX *ctx, const uint8_t k0[SF_AUTH_HMAC_BLOCK_LEN],
                              uint8_t pad)
{
    uint8_t block[SF_AUTH_HMAC_BLOCK_LEN];
    for (size_t i = 0; i < sizeof(block); i++)
        block[i] = k0[i] ^ pad;
    int ok = SHA256_Init(ctx) & SHA256_Update(ctx, block, sizeof(block));
    assert(ok == 1); /* the software hash has no failure mode */
    (void)ok;
    OPENSSL_cleanse(block, sizeof(block));
}

void sf_auth_mac_init(struct sf_auth_mac *mac, const uint8_t *key, size_t key_len)
{
    assert(mac != NULL && (key != NULL || key_len == 0));
    uint8_t k0[SF_AUTH_HMAC_BLOCK_LEN] = { 0 };
    if (key_len > sizeof(k0))
        SHA256(key, key_len, k0); /* RFC 2104: a long key is replaced by its hash */
    else if (key_len > 0)
        memcpy(k0, key, key_len);
    sf_auth_pad_state(&mac->inner, k0, SF_AUTH_IPAD);
    sf_auth_pad_state(&mac->outer, k0, SF_AUTH_OPAD);
    OPENSSL_cleanse(k0, sizeof(k0));
    assert(mac->inner.Nl == 8 * SF_AUTH_HMAC_BLOCK_LEN && mac->outer.num == 0);
}

void sf_auth_mac_clear(struct sf_auth_mac *mac)
{
    assert(mac != NULL);
    OPENSSL_cleanse(mac, sizeof(*mac));
}

void sf_auth_mac_compute(const struct sf_auth_mac *mac, const uint8_t *msg, size_t len,
                         uint8_t tag[SF_AUTH_TAG_LEN])
{
    assert(mac != NULL && tag != NULL && (msg != NULL || len == 0));
    assert(mac->inner.num == 0); /* an initialised state sits on a block boundary */
    SHA256_CTX ctx = mac->inner;
    uint8_t inner[SHA256_DIGEST_LENGTH];
    SHA256_Update(&ctx, msg, len);
    SHA256_Final(inner, &ctx);
    ctx = mac->outer;
    SHA256_Update(&ctx, inner, sizeof(inner));
    SHA256_Final(tag, &ctx);
}

int sf_auth_frame_sign(const struct sf_auth_mac *mac, uint8_t *dgram, size_t len)
{
    assert(mac != NULL && dgram != NULL);
    if (len < SF_FRAME_HDR_LEN + SF_AUTH_TAG_LEN || (dgram[3] & SF_FLAG_AUTH) == 0)
        return -EINVAL;
    size_t body = len - SF_AUTH_TAG_LEN;
    sf_auth_mac_compute(mac, dgram, body, dgram + body);
    assert(sf_auth_frame_check(mac, dgram, len));
    return 0;
}

bool sf_auth_frame_check(const struct sf_auth_mac *mac, const uint8_t *dgram, size_t len)
{
    assert(mac != NULL && (dgram != NULL || len == 0));
    if (len < SF_FRAME_HDR_LEN + SF_AUTH_TAG_LEN)
        return false;
    size_t body = len - SF_AUTH_TAG_LEN;
    uint8_t tag[SF_AUTH_TAG_LEN];
    sf_auth_mac_compute(mac, dgram, body, tag);
    return CRYPTO_memcmp(tag, dgram + body, SF_AUTH_TAG_LEN) == 0;
}

/* ---- key file: reading ---------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void sf_auth_errf(char *err, size_t cap,
                                                               const char *fmt, ...)
{
    if (err == NULL || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* Refuse a key file that others could read or replace. Returns 0 or -EINVAL / -EPERM. */
static int sf_auth_keyfile_stat_check(const char *path, const struct stat *st, char *err,
                                      size_t cap)
{
    if (!S_ISREG(st->st_mode)) {
        sf_auth_errf(err, cap, "%s: not a regular file", path);
        return -EINVAL;
    }
    if ((st->st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        sf_auth_errf(err, cap, "%s: mode %04o lets group or others at the keys; chmod 600 it", path,
                     (unsigned)(st->st_mode & 07777));
        return -EPERM;
    }
    if (st->st_uid != 0 && st->st_uid != geteuid()) {
        sf_auth_errf(err, cap, "%s: owned by uid %u, neither root nor us (uid %u)", path,
                     (unsigned)st->st_uid, (unsigned)geteuid());
        return -EPERM;
    }
    if (st->st_size > (off_t)SF_AUTH_KEYFILE_BYTES_MAX) {
        sf_auth_errf(err, cap, "%s: longer than %u bytes", path, SF_AUTH_KEYFILE_BYTES_MAX);
        return -EFBIG;
    }
    return 0;
}

int sf_auth_keyfile_read(const char *path, char **text_out, size_t *len_out, char *err,
                         size_t err_cap)
{
    assert(path != NULL && text_out != NULL && len_out != NULL);
    *text_out = NULL;
    *len_out = 0;
    /* O_NONBLOCK: a FIFO must not block the open; it is refused below. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        int rc = -errno;
        sf_auth_errf(err, err_cap, "%s: %s", path,
                     rc == -ELOOP ? "a symbolic link (name the file itself)" : strerror(-rc));
        return rc;
    }
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? 0 : -errno;
    if (rc < 0)
        sf_auth_errf(err, err_cap, "%s: %s", path, strerror(-rc));
    else
        rc = sf_auth_keyfile_stat_check(path, &st, err, err_cap);
    if (rc < 0)
        goto out_close;

    size_t cap = (size_t)st.st_size + 1; /* one more: a file that grew is seen */
    char *text = malloc(cap + 1);
    if (text == NULL) {
        sf_auth_errf(err, err_cap, "%s: out of memory", path);
        rc = -ENOMEM;
        goto out_close;
    }
    size_t len = 0;
    while (len < cap) {
        ssize_t n = read(fd, text + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            sf_auth_errf(err, err_cap, "%s: read: %s", path, strerror(-rc));
            goto out_free;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > SF_AUTH_KEYFILE_BYTES_MAX || len == cap) {
        sf_auth_errf(err, err_cap, "%s: changed while read (or longer than %u bytes)", path,
                     SF_AUTH_KEYFILE_BYTES_MAX);
        rc = -EFBIG;
        goto out_free;
    }
    text[len] = '\0';
    *text_out = text;
    *len_out = len;
    close(fd);
    return 0;

out_free:
    OPENSSL_cleanse(text, cap + 1);
    free(text);
out_close:
    close(fd);
    return rc;
}

/* ---- key file: parsing ---------------------------------------------------------------- */

struct sf_auth_cursor {
    const char *p;   /* next byte of the line */
    const char *end; /* end of the line (newline and CR excluded) */
};

/* The next token of the line, or false at its end or at a comment. */
static bool sf_auth_token(struct sf_auth_cursor *c, const char **tok, size_t *tok_len)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
    if (c->p == c->end || *c->p == '#')
        return false;
    const char *start = c->p;
    while (c->p < c->end && *c->p != ' ' && *c->p != '\t')
        c->p++;
    *tok = start;
    *tok_len = (size_t)(c->p - start);
    assert(*tok_len > 0);
    return true;
}

/* Decimal u32 of exactly the token's bytes (at most 10 digits). */
static bool sf_auth_parse_u32(const char *s, size_t len, uint32_t *out)
{
    if (len == 0 || len > 10)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

static int sf_auth_hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static bool sf_auth_parse_hex_key(const char *s, size_t len, uint8_t key[SF_AUTH_KEY_LEN])
{
    if (len != SF_AUTH_KEY_HEX_LEN)
        return false;
    for (size_t i = 0; i < SF_AUTH_KEY_LEN; i++) {
        int hi = sf_auth_hex_digit(s[2 * i]), lo = sf_auth_hex_digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        key[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

/* types=T1,T2: returns NULL or the reason it is refused. */
static const char *sf_auth_parse_types(const char *s, size_t len, struct sf_auth_key_spec *spec)
{
    const char *end = s + len;
    for (bool more = true; more;) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *stop = comma != NULL ? comma : end;
        size_t n = (size_t)(stop - s);
        more = comma != NULL;
        if (!sf_name_valid_type(s, n))
            return "types=: each type is 1..32 bytes of [A-Za-z0-9_.-], separated by commas";
        if (spec->type_count == SF_AUTH_KEY_TYPES_MAX)
            return "types=: more than 16 types";
        assert(n <= sizeof(spec->types[0]));
        memcpy(spec->types[spec->type_count], s, n);
        spec->type_lens[spec->type_count++] = (uint8_t)n;
        s = more ? stop + 1 : end;
    }
    assert(spec->type_count >= 1);
    return NULL;
}

/* One option token NAME=VALUE; *seen has one bit per option. NULL or the reason. */
static const char *sf_auth_parse_option(const char *tok, size_t len, struct sf_auth_key_spec *spec,
                                        unsigned *seen)
{
    static const char *const names[] = { "types", "prefix", "sender" };
    const char *eq = memchr(tok, '=', len);
    if (eq == NULL)
        return "expected an option types=, prefix= or sender=";
    size_t name_len = (size_t)(eq - tok);
    const char *val = eq + 1;
    size_t val_len = len - name_len - 1;
    unsigned which = 0;
    while (which < 3 &&
           !(strlen(names[which]) == name_len && memcmp(names[which], tok, name_len) == 0))
        which++;
    if (which == 3)
        return "unknown option (types=, prefix=, sender= are known)";
    if (*seen & (1u << which))
        return "option given twice";
    *seen |= 1u << which;
    switch (which) {
    case 0:
        return sf_auth_parse_types(val, val_len, spec);
    case 1:
        if (!sf_name_valid_id(val, val_len))
            return "prefix=: 1..64 bytes of a workflow id (no controls, '\"' or '\\')";
        memcpy(spec->prefix, val, val_len);
        spec->prefix_len = (uint8_t)val_len;
        return NULL;
    default:
        if (!sf_auth_parse_u32(val, val_len, &spec->sender_id))
            return "sender=: a decimal number 0..4294967295";
        spec->sender_set = true;
        return NULL;
    }
}

/* Parse one line; *spec is written only for a key line. Returns 1 (key), 0 (blank or
 * comment), or -1 with *why set. */
static int sf_auth_parse_line(const char *line, size_t len, struct sf_auth_key_spec *spec,
                              const char **why)
{
    struct sf_auth_cursor c = { .p = line, .end = line + len };
    const char *tok;
    size_t tok_len;
    if (!sf_auth_token(&c, &tok, &tok_len))
        return 0;
    if (tok_len != 3 || memcmp(tok, "key", 3) != 0) {
        *why = "expected 'key ID HEX [types=..] [prefix=..] [sender=..]'";
        return -1;
    }
    memset(spec, 0, sizeof(*spec));
    if (!sf_auth_token(&c, &tok, &tok_len) || !sf_auth_parse_u32(tok, tok_len, &spec->id) ||
        spec->id == 0) {
        *why = "key id: a decimal number 1..4294967295";
        return -1;
    }
    if (!sf_auth_token(&c, &tok, &tok_len) || !sf_auth_parse_hex_key(tok, tok_len, spec->key)) {
        *why = "key: exactly 64 hex digits (32 bytes)";
        return -1;
    }
    unsigned seen = 0;
    while (sf_auth_token(&c, &tok, &tok_len)) {
        *why = sf_auth_parse_option(tok, tok_len, spec, &seen);
        if (*why != NULL)
            return -1;
    }
    return 1;
}

int sf_auth_keyfile_parse(const char *text, size_t len, const char *name,
                          struct sf_auth_key_spec *specs, unsigned specs_max, char *err,
                          size_t err_cap)
{
    assert((text != NULL || len == 0) && name != NULL && (specs != NULL || specs_max == 0));
    unsigned n = 0, line_no = 0;
    const char *p = text, *end = text + len;
    if (len > 0 && memchr(text, '\0', len) != NULL) {
        sf_auth_errf(err, err_cap, "%s: contains a NUL byte", name);
        return -EINVAL;
    }
    while (p < end) {
        line_no++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl != NULL ? nl : end;
        size_t line_len = (size_t)(stop - p);
        if (line_len > 0 && p[line_len - 1] == '\r')
            line_len--;
        const char *why = NULL;
        int rc = -1;
        if (line_len > SF_AUTH_KEYFILE_LINE_MAX) {
            why = "line longer than 1024 bytes";
        } else if (n == specs_max) {
            struct sf_auth_key_spec probe;
            rc = sf_auth_parse_line(p, line_len, &probe, &why);
            OPENSSL_cleanse(&probe, sizeof(probe));
            if (rc == 1) {
                sf_auth_errf(err, err_cap, "%s:%u: more than %u keys", name, line_no, specs_max);
                return -E2BIG;
            }
        } else {
            rc = sf_auth_parse_line(p, line_len, &specs[n], &why);
        }
        if (rc < 0) {
            sf_auth_errf(err, err_cap, "%s:%u: %s", name, line_no, why);
            sf_auth_specs_clear(specs, n + (n < specs_max));
            return -EINVAL;
        }
        if (rc == 1) {
            specs[n].line = line_no;
            for (unsigned i = 0; i < n; i++) {
                if (specs[i].id == specs[n].id) {
                    sf_auth_errf(err, err_cap, "%s:%u: key id %u already on line %u", name, line_no,
                                 specs[n].id, specs[i].line);
                    sf_auth_specs_clear(specs, n + 1);
                    return -EINVAL;
                }
            }
            n++;
        }
        p = nl != NULL ? nl + 1 : end;
    }
    assert(n <= specs_max);
    return (int)n;
}

int sf_auth_keyfile_load(const char *path, struct sf_auth_key_spec *specs, unsigned specs_max,
                         char *err, size_t err_cap)
{
    char *text;
    size_t len;
    int rc = sf_auth_keyfile_read(path, &text, &len, err, err_cap);
    if (rc < 0)
        return rc;
    rc = sf_auth_keyfile_parse(text, len, path, specs, specs_max, err, err_cap);
    OPENSSL_cleanse(text, len);
    free(text);
    return rc;
}

void sf_auth_specs_clear(struct sf_auth_key_spec *specs, unsigned n)
{
    assert(specs != NULL || n == 0);
    if (n > 0)
        OPENSSL_cleanse(specs, (size_t)n * sizeof(*specs));
}
