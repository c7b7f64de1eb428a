/*
 * sf_json.c — the JSON convenience form: one event per datagram, no allocation.
 *
 *   {"type":"device","id":"sensor-1","signal":"telemetry","event_id":17,"ts_ns":123,
 *    "fields":{"temp_c":21.5,"ok":true,"name":"x","note":null}}
 *
 * Grammar (RFC 8259, restricted): the datagram is one object, optionally surrounded by
 * whitespace (space, tab, CR, LF); keys may come in any order; each known key at most
 * once. type/id/signal are strings without escapes (they are returned as views) obeying
 * the name rules of the binary form; event_id and ts_ns are non-negative integers
 * <= UINT64_MAX; fields is an object of at most SF_JSON_FIELDS_MAX distinct, non-empty
 * names whose values are scalars (string, number, true, false, null). Unknown keys are
 * skipped with their values, whatever they are, nested up to SF_JSON_DEPTH_MAX levels.
 * Strings are checked (escapes \" \\ \/ \b \f \n \r \t \uXXXX, no raw control characters)
 * but not decoded: sf_json_unescape does that on demand. Raw bytes >= 0x80 must form
 * well-formed UTF-8 (sf_utf8_valid). The fields object, as received, is at most
 * SF_FIELDS_LEN_MAX bytes like a binary event's fields (else SF_ERR_FIELDS_TOO_LONG).
 * Numbers without fraction or exponent are int64 (out of range: rejected), others are
 * doubles (at most SF_JSON_NUMBER_LEN_MAX characters, converted with strtod in the C
 * locale; overflow to infinity is rejected).
 */
#include "sf_proto.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "sf_proto_internal.h"

struct json_cur {
    const uint8_t *p;
    const uint8_t *end;
};

static inline bool json_at_end(const struct json_cur *c)
{
    return c->p >= c->end;
}

static inline void json_skip_ws(struct json_cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* Consume byte ch (after whitespace). Returns true if it was there. */
static inline bool json_eat(struct json_cur *c, uint8_t ch)
{
    json_skip_ws(c);
    if (json_at_end(c) || *c->p != ch)
        return false;
    c->p++;
    return true;
}

static inline bool json_is_hex(uint8_t ch)
{
    return (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f');
}

/*
 * Scan the string at the cursor (which is at '"'): *s, *n get the raw contents, *escaped
 * whether a backslash occurs. Returns 0 or SF_ERR_BAD_JSON.
 */
static int json_string(struct json_cur *c, const char **s, size_t *n, bool *escaped)
{
    if (json_at_end(c) || *c->p != '"')
        return SF_ERR_BAD_JSON;
    const uint8_t *start = ++c->p;
    bool esc = false;
    while (c->p < c->end) {
        uint8_t ch = *c->p;
        if (ch == '"') {
            *s = (const char *)start;
            *n = (size_t)(c->p - start);
            *escaped = esc;
            c->p++;
            return 0;
        }
        if (ch < 0x20)
            return SF_ERR_BAD_JSON;
        if (ch >= 0x80) {
            /* one UTF-8 sequence, checked whole (RFC 8259 §8.1: JSON text is UTF-8) */
            size_t seq = ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : 2;
            if ((size_t)(c->end - c->p) < seq || !sf_utf8_valid(c->p, seq))
                return SF_ERR_BAD_JSON;
            c->p += seq;
            continue;
        }
        if (ch != '\\') {
            c->p++;
            continue;
        }
        esc = true;
        if (c->end - c->p < 2)
            return SF_ERR_BAD_JSON;
        switch (c->p[1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            c->p += 2;
            break;
        case 'u':
            if (c->end - c->p < 6 || !json_is_hex(c->p[2]) || !json_is_hex(c->p[3]) ||
                !json_is_hex(c->p[4]) || !json_is_hex(c->p[5]))
                return SF_ERR_BAD_JSON;
            c->p += 6;
            break;
        default:
            return SF_ERR_BAD_JSON;
        }
    }
    return SF_ERR_BAD_JSON; /* unterminated */
}

/* Consume a run of digits; returns how many. */
static inline size_t json_digits(struct json_cur *c)
{
    const uint8_t *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
        c->p++;
    return (size_t)(c->p - start);
}

/*
 * Scan a number at the cursor. *is_int tells whether it has neither fraction nor exponent;
 * *mag gets the magnitude of an integer (saturated: *overflow set beyond UINT64_MAX),
 * *neg its sign. Returns 0 or SF_ERR_BAD_JSON; start and len span the text.
 */
struct json_number {
    const uint8_t *start;
    size_t len;
    uint64_t mag;
    bool neg;
    bool is_int;
    bool overflow;
};

static int json_number(struct json_cur *c, struct json_number *num)
{
    num->start = c->p;
    num->neg = false;
    num->is_int = true;
    num->overflow = false;
    num->mag = 0;
    if (!json_at_end(c) && *c->p == '-') {
        num->neg = true;
        c->p++;
    }
    const uint8_t *int_start = c->p;
    size_t ndig = json_digits(c);
    if (ndig == 0 || (ndig > 1 && *int_start == '0'))
        return SF_ERR_BAD_JSON; /* no digits, or a leading zero */
    for (size_t i = 0; i < ndig; i++) {
        uint64_t d = (uint64_t)(int_start[i] - '0');
        if (num->mag > (UINT64_MAX - d) / 10)
            num->overflow = true;
        else
            num->mag = num->mag * 10 + d;
    }
    if (!json_at_end(c) && *c->p == '.') {
        c->p++;
        num->is_int = false;
        if (json_digits(c) == 0)
            return SF_ERR_BAD_JSON;
    }
    if (!json_at_end(c) && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        num->is_int = false;
        if (!json_at_end(c) && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (json_digits(c) == 0)
            return SF_ERR_BAD_JSON;
    }
    num->len = (size_t)(c->p - num->start);
    return 0;
}

/* Convert a scanned number to a value: int64 or double. Returns 0 or SF_ERR_BAD_JSON. */
static int json_number_value(const struct json_number *num, struct sf_value *v)
{
    if (num->is_int) {
        if (num->overflow)
            return SF_ERR_BAD_JSON;
        if (!num->neg && num->mag > (uint64_t)INT64_MAX)
            return SF_ERR_BAD_JSON;
        if (num->neg && num->mag > (uint64_t)INT64_MAX + 1)
            return SF_ERR_BAD_JSON;
        v->type = SF_VAL_INT;
        v->i = num->neg ? (int64_t)(0 - num->mag) : (int64_t)num->mag;
        return 0;
    }
    if (num->len > SF_JSON_NUMBER_LEN_MAX)
        return SF_ERR_BAD_JSON;
    char tmp[SF_JSON_NUMBER_LEN_MAX + 1];
    memcpy(tmp, num->start, num->len);
    tmp[num->len] = '\0';
    char *endp;
    double d = strtod(tmp, &endp);
    if (endp != tmp + num->len || isinf(d))
        return SF_ERR_BAD_JSON;
    v->type = SF_VAL_FLOAT;
    v->f = d;
    return 0;
}

/* Match a literal word at the cursor. */
static bool json_word(struct json_cur *c, const char *w, size_t n)
{
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0)
        return false;
    c->p += n;
    return true;
}

/* A scalar value at the cursor (whitespace skipped). Returns 0 or SF_ERR_BAD_JSON. */
static int json_scalar(struct json_cur *c, struct sf_value *v)
{
    json_skip_ws(c);
    if (json_at_end(c))
        return SF_ERR_BAD_JSON;
    switch (*c->p) {
    case '"': {
        const char *s;
        size_t n;
        bool esc;
        if (json_string(c, &s, &n, &esc) < 0 || n > UINT16_MAX)
            return SF_ERR_BAD_JSON;
        v->type = SF_VAL_TEXT;
        v->text.ptr = s;
        v->text.len = (uint16_t)n;
        return 0;
    }
    case 't':
        v->type = SF_VAL_BOOL;
        v->b = true;
        return json_word(c, "true", 4) ? 0 : SF_ERR_BAD_JSON;
    case 'f':
        v->type = SF_VAL_BOOL;
        v->b = false;
        return json_word(c, "false", 5) ? 0 : SF_ERR_BAD_JSON;
    case 'n':
        v->type = SF_VAL_NULL;
        return json_word(c, "null", 4) ? 0 : SF_ERR_BAD_JSON;
    default: {
        struct json_number num;
        if (json_number(c, &num) < 0)
            return SF_ERR_BAD_JSON;
        return json_number_value(&num, v);
    }
    }
}

/* Skip any value (objects and arrays nested at most SF_JSON_DEPTH_MAX deep). */
static int json_skip_value(struct json_cur *c, unsigned depth)
{
    json_skip_ws(c);
    if (json_at_end(c))
        return SF_ERR_BAD_JSON;
    uint8_t open = *c->p;
    if (open != '{' && open != '[') {
        struct sf_value ignored;
        return json_scalar(c, &ignored);
    }
    if (depth >= SF_JSON_DEPTH_MAX)
        return SF_ERR_BAD_JSON;
    uint8_t close = open == '{' ? '}' : ']';
    c->p++;
    if (json_eat(c, close))
        return 0;
    do {
        if (open == '{') {
            const char *s;
            size_t n;
            bool esc;
            json_skip_ws(c);
            if (json_string(c, &s, &n, &esc) < 0 || !json_eat(c, ':'))
                return SF_ERR_BAD_JSON;
        }
        if (json_skip_value(c, depth + 1) < 0)
            return SF_ERR_BAD_JSON;
    } while (json_eat(c, ','));
    return json_eat(c, close) ? 0 : SF_ERR_BAD_JSON;
}

/*
 * The fields object at the cursor ('{' expected after whitespace): fills out[0..max).
 * Returns the number of fields, SF_ERR_BAD_JSON or SF_ERR_TOO_MANY_FIELDS.
 */
static int json_fields(struct json_cur *c, struct sf_json_field *out, unsigned max)
{
    if (!json_eat(c, '{'))
        return SF_ERR_BAD_JSON;
    if (json_eat(c, '}'))
        return 0;
    unsigned n = 0;
    do {
        const char *name;
        size_t name_len;
        bool esc;
        struct sf_value v;
        json_skip_ws(c);
        if (json_string(c, &name, &name_len, &esc) < 0 || name_len == 0 || name_len > UINT16_MAX ||
            !json_eat(c, ':'))
            return SF_ERR_BAD_JSON;
        json_skip_ws(c);
        if (!json_at_end(c) && (*c->p == '{' || *c->p == '['))
            return SF_ERR_BAD_JSON; /* fields are scalars */
        if (json_scalar(c, &v) < 0)
            return SF_ERR_BAD_JSON;
        for (unsigned i = 0; i < n && i < max; i++) {
            if (out[i].name_len == name_len && memcmp(out[i].name, name, name_len) == 0)
                return SF_ERR_BAD_JSON; /* duplicate name */
        }
        if (n >= max)
            return SF_ERR_TOO_MANY_FIELDS;
        out[n].name = name;
        out[n].name_len = (uint16_t)name_len;
        out[n].value = v;
        n++;
    } while (json_eat(c, ','));
    if (!json_eat(c, '}'))
        return SF_ERR_BAD_JSON;
    assert(n <= max);
    return (int)n;
}

int sf_json_fields_decode(const uint8_t *obj, size_t len, struct sf_json_field *out, unsigned max)
{
    assert(obj != NULL || len == 0);
    assert(out != NULL || max == 0);
    if (len == 0)
        return 0;
    struct json_cur c = { obj, obj + len };
    int n = json_fields(&c, out, max);
    if (n < 0)
        return n;
    json_skip_ws(&c);
    return json_at_end(&c) ? n : SF_ERR_BAD_JSON;
}

enum json_key {
    JSON_KEY_TYPE = 1u << 0,
    JSON_KEY_ID = 1u << 1,
    JSON_KEY_SIGNAL = 1u << 2,
    JSON_KEY_EVENT_ID = 1u << 3,
    JSON_KEY_TS_NS = 1u << 4,
    JSON_KEY_FIELDS = 1u << 5,
    JSON_KEY_UNKNOWN = 0,
};

static enum json_key json_key_of(const char *s, size_t n, bool escaped)
{
    if (escaped)
        return JSON_KEY_UNKNOWN; /* known keys are plain ASCII, never escaped */
    static const struct {
        const char *name;
        size_t len;
        enum json_key key;
    } keys[] = {
        { "type", 4, JSON_KEY_TYPE },     { "id", 2, JSON_KEY_ID },
        { "signal", 6, JSON_KEY_SIGNAL }, { "event_id", 8, JSON_KEY_EVENT_ID },
        { "ts_ns", 5, JSON_KEY_TS_NS },   { "fields", 6, JSON_KEY_FIELDS },
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (keys[i].len == n && memcmp(keys[i].name, s, n) == 0)
            return keys[i].key;
    }
    return JSON_KEY_UNKNOWN;
}

/* A name value (type/id/signal): a string without escapes. */
static int json_name(struct json_cur *c, const char **s, size_t *n)
{
    bool esc;
    json_skip_ws(c);
    if (json_string(c, s, n, &esc) < 0)
        return SF_ERR_BAD_JSON;
    return esc ? SF_ERR_BAD_NAME : 0;
}

/* A non-negative integer value (event_id, ts_ns). */
static int json_u64(struct json_cur *c, uint64_t *out)
{
    struct json_number num;
    json_skip_ws(c);
    if (json_number(c, &num) < 0 || !num.is_int || num.neg || num.overflow)
        return SF_ERR_BAD_JSON;
    *out = num.mag;
    return 0;
}

/* One "key": value member of the top-level object; updates *seen. */
static int json_member(struct json_cur *c, struct sf_event *ev, unsigned *seen)
{
    const char *key;
    size_t key_len;
    bool esc;
    const char *s = NULL;
    size_t n = 0;
    int rc = 0;
    json_skip_ws(c);
    if (json_string(c, &key, &key_len, &esc) < 0 || !json_eat(c, ':'))
        return SF_ERR_BAD_JSON;
    enum json_key k = json_key_of(key, key_len, esc);
    if (k != JSON_KEY_UNKNOWN && (*seen & k))
        return SF_ERR_BAD_JSON; /* duplicate key */
    *seen |= k;
    switch (k) {
    case JSON_KEY_TYPE:
    case JSON_KEY_ID:
    case JSON_KEY_SIGNAL:
        rc = json_name(c, &s, &n);
        if (rc < 0)
            return rc;
        if (k == JSON_KEY_TYPE && !sf_name_valid_type(s, n))
            return SF_ERR_BAD_NAME;
        if (k == JSON_KEY_ID && !sf_name_valid_id(s, n))
            return SF_ERR_BAD_NAME;
        if (k == JSON_KEY_SIGNAL && !sf_name_valid_signal(s, n))
            return SF_ERR_BAD_NAME;
        if (k == JSON_KEY_TYPE) {
            ev->type = s;
            ev->type_len = (uint8_t)n;
        } else if (k == JSON_KEY_ID) {
            ev->id = s;
            ev->id_len = (uint8_t)n;
        } else {
            ev->signal = s;
            ev->signal_len = (uint8_t)n;
        }
        return 0;
    case JSON_KEY_EVENT_ID:
        ev->has_event_id = true;
        return json_u64(c, &ev->event_id);
    case JSON_KEY_TS_NS:
        return json_u64(c, &ev->ts_ns);
    case JSON_KEY_FIELDS: {
        struct sf_json_field scratch[SF_JSON_FIELDS_MAX];
        json_skip_ws(c);
        const uint8_t *start = c->p;
        rc = json_fields(c, scratch, SF_JSON_FIELDS_MAX);
        if (rc < 0)
            return rc;
        /* the same bound as a binary event's fields: the node logs and stores both alike */
        if ((size_t)(c->p - start) > SF_FIELDS_LEN_MAX)
            return SF_ERR_FIELDS_TOO_LONG;
        ev->fields = start;
        ev->fields_len = (uint16_t)(c->p - start);
        return 0;
    }
    case JSON_KEY_UNKNOWN:
        return json_skip_value(c, 0);
    }
    return SF_ERR_BAD_JSON;
}

int sf_json_parse(const uint8_t *buf, size_t len, struct sf_event *ev)
{
    assert(ev != NULL);
    if (len == 0)
        return SF_ERR_EMPTY;
    if (len > SF_DATAGRAM_LEN_MAX)
        return SF_ERR_TOO_LONG;
    *ev = (struct sf_event){ .fields_json = true, .length = (uint16_t)len };
    struct json_cur c = { buf, buf + len };
    unsigned seen = 0;
    if (!json_eat(&c, '{'))
        return SF_ERR_BAD_JSON;
    if (!json_eat(&c, '}')) {
        do {
            int rc = json_member(&c, ev, &seen);
            if (rc < 0)
                return rc;
        } while (json_eat(&c, ','));
        if (!json_eat(&c, '}'))
            return SF_ERR_BAD_JSON;
    }
    json_skip_ws(&c);
    if (!json_at_end(&c))
        return SF_ERR_BAD_JSON; /* trailing garbage */
    unsigned required = JSON_KEY_TYPE | JSON_KEY_ID | JSON_KEY_SIGNAL;
    if ((seen & required) != required)
        return SF_ERR_JSON_MISSING;
    assert(ev->type_len > 0 && ev->id_len > 0 && ev->signal_len > 0);
    return SF_OK;
}

/* ---- unescaping ---------------------------------------------------------------------- */

static unsigned json_hex4(const char *p)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned ch = (uint8_t)p[i];
        v = v * 16 + (ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10);
    }
    return v;
}

/* Decode \uXXXX (and its low-surrogate partner) at in[*i..len); returns the code point or
 * -1. *i ends past the consumed escapes. */
static long json_unicode(const char *in, size_t len, size_t *i)
{
    size_t p = *i; /* at the 'u' */
    if (len - p < 5 || !json_is_hex((uint8_t)in[p + 1]) || !json_is_hex((uint8_t)in[p + 2]) ||
        !json_is_hex((uint8_t)in[p + 3]) || !json_is_hex((uint8_t)in[p + 4]))
        return -1;
    unsigned cp = json_hex4(in + p + 1);
    p += 5;
    if (cp >= 0xdc00 && cp <= 0xdfff)
        return -1; /* lone low surrogate */
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (len - p < 6 || in[p] != '\\' || in[p + 1] != 'u')
            return -1;
        for (int k = 2; k < 6; k++) {
            if (!json_is_hex((uint8_t)in[p + k]))
                return -1;
        }
        unsigned lo = json_hex4(in + p + 2);
        if (lo < 0xdc00 || lo > 0xdfff)
            return -1;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        p += 6;
    }
    *i = p;
    return (long)cp;
}

static size_t json_utf8(unsigned cp, char *u)
{
    if (cp < 0x80) {
        u[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        u[0] = (char)(0xc0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12);
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    u[0] = (char)(0xf0 | cp >> 18);
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    u[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decode the escape at in[*i..len) (*i at the backslash) into u; returns its UTF-8 length,
 * or 0 when the escape is invalid. *i ends past the escape. */
static size_t json_unescape_one(const char *in, size_t len, size_t *i, char u[4])
{
    static const char simple[128] = {
        ['"'] = '"',  ['\\'] = '\\', ['/'] = '/',  ['b'] = '\b',
        ['f'] = '\f', ['n'] = '\n',  ['r'] = '\r', ['t'] = '\t',
    };
    assert(in[*i] == '\\');
    if (*i + 1 >= len)
        return 0;
    uint8_t ch = (uint8_t)in[*i + 1];
    if (ch == 'u') {
        size_t p = *i + 1;
        long cp = json_unicode(in, len, &p);
        if (cp < 0)
            return 0;
        *i = p;
        return json_utf8((unsigned)cp, u);
    }
    if (ch >= 128 || simple[ch] == 0)
        return 0;
    u[0] = simple[ch];
    *i += 2;
    return 1;
}

int sf_json_unescape(const char *in, size_t len, char *out, size_t cap)
{
    assert(in != NULL || len == 0);
    size_t o = 0;
    size_t i = 0;
    while (i < len) {
        char u[4];
        size_t n = 1;
        uint8_t ch = (uint8_t)in[i];
        if (ch < 0x20 || ch == '"')
            return SF_ERR_BAD_JSON;
        if (ch == '\\') {
            n = json_unescape_one(in, len, &i, u);
            if (n == 0)
                return SF_ERR_BAD_JSON;
        } else {
            u[0] = (char)ch;
            i++;
        }
        if (cap - o < n)
            return SF_ERR_NO_SPACE;
        memcpy(out + o, u, n);
        o += n;
    }
    if (o > INT32_MAX)
        return SF_ERR_NO_SPACE;
    assert(o <= cap && o <= len);
    return (int)o;
}
