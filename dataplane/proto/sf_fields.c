/*
 * sf_fields.c — event field values: a compact CBOR (RFC 8949) array of scalars.
 *
 * Accepted (decode), per data item (initial byte = major type << 5 | additional info):
 *   array head   major 4, definite length (ai 0..27), count <= remaining bytes
 *   unsigned     major 0, ai 0..23 immediate, 24/25/26/27 = 1/2/4/8-byte big-endian
 *                argument; value <= INT64_MAX (decoded as int64)
 *   negative     major 1, same widths, value -1 - arg, arg <= INT64_MAX
 *   text string  major 3, definite length, bytes present and well-formed UTF-8
 *   simple       0xf4 false, 0xf5 true, 0xf6 null
 *   float        0xf9 half, 0xfa single, 0xfb double, all widened to double
 * Rejected: byte strings (major 2), nested arrays/maps (4/5), tags (6), undefined (0xf7),
 * other simple values (0xf8, 0xe0..0xf3), reserved ai 28..30, indefinite lengths (ai 31,
 * including the 0xff break), and bytes left after the last item. Non-shortest heads are
 * accepted (CBOR allows them); the encoder always writes the shortest integer head and
 * float64 for floats. An empty field list may be sent as 0 bytes or as 0x80.
 */
#include "sf_proto.h"

#include <assert.h>

#include "sf_proto_internal.h"

enum {
    CBOR_MAJOR_UINT = 0,
    CBOR_MAJOR_NEGINT = 1,
    CBOR_MAJOR_TEXT = 3,
    CBOR_MAJOR_ARRAY = 4,
    CBOR_MAJOR_SIMPLE = 7,
    CBOR_FALSE = 0xf4,
    CBOR_TRUE = 0xf5,
    CBOR_NULL = 0xf6,
    CBOR_HALF = 0xf9,
    CBOR_SINGLE = 0xfa,
    CBOR_DOUBLE = 0xfb,
};

/*
 * Read the head at buf[*pos..len): major type and argument. For the simple/float major
 * type the argument is the raw float bits. Returns the major type, or -1 when the head is
 * truncated or uses a reserved/indefinite additional info.
 */
static inline int cbor_head(const uint8_t *buf, size_t len, size_t *pos, uint64_t *arg)
{
    size_t p = *pos;
    assert(p < len);
    unsigned ib = buf[p++];
    unsigned ai = ib & 31u;
    size_t avail = len - p;
    if (ai < 24) {
        *arg = ai;
    } else if (ai == 24 && avail >= 1) {
        *arg = buf[p];
        p += 1;
    } else if (ai == 25 && avail >= 2) {
        *arg = sf_ld_be16(buf + p);
        p += 2;
    } else if (ai == 26 && avail >= 4) {
        *arg = sf_ld_be32(buf + p);
        p += 4;
    } else if (ai == 27 && avail >= 8) {
        *arg = sf_ld_be64(buf + p);
        p += 8;
    } else {
        return -1;
    }
    *pos = p;
    return (int)(ib >> 5);
}

/* IEEE 754 binary16 to double, exactly (every half value is representable). */
static double cbor_half_to_double(uint16_t h)
{
    uint64_t sign = (uint64_t)(h >> 15) << 63;
    unsigned exp = (h >> 10) & 0x1fu;
    uint64_t mant = h & 0x3ffu;
    uint64_t bits;
    if (exp == 0) {
        double v = (double)mant * 0x1p-24; /* zero and subnormals */
        return sign ? -v : v;
    }
    if (exp == 31)
        bits = sign | (0x7ffull << 52) | (mant << 42); /* inf, NaN (payload kept) */
    else
        bits = sign | ((uint64_t)(exp - 15 + 1023) << 52) | (mant << 42);
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

/*
 * One scalar at buf[*pos..len). When v is non-NULL, decode it there. Returns 0 or -1.
 * Inlined into both the validator (v == NULL folds the stores away) and the decoder.
 */
static inline int cbor_scalar(const uint8_t *buf, size_t len, size_t *pos, struct sf_value *v)
{
    uint8_t ib = buf[*pos];
    uint64_t arg;
    int major = cbor_head(buf, len, pos, &arg);
    switch (major) {
    case CBOR_MAJOR_UINT:
        if (arg > (uint64_t)INT64_MAX)
            return -1;
        if (v) {
            v->type = SF_VAL_INT;
            v->i = (int64_t)arg;
        }
        return 0;
    case CBOR_MAJOR_NEGINT:
        if (arg > (uint64_t)INT64_MAX)
            return -1;
        if (v) {
            v->type = SF_VAL_INT;
            v->i = -1 - (int64_t)arg;
        }
        return 0;
    case CBOR_MAJOR_TEXT:
        if (arg > len - *pos || arg > UINT16_MAX) /* sf_value's text length is a u16 */
            return -1;
        if (!sf_utf8_valid(buf + *pos, (size_t)arg))
            return -1;
        if (v) {
            v->type = SF_VAL_TEXT;
            v->text.ptr = (const char *)buf + *pos;
            v->text.len = (uint16_t)arg;
        }
        *pos += arg;
        return 0;
    case CBOR_MAJOR_SIMPLE:
        break;
    default:
        return -1; /* byte string, array, map, tag, or a malformed head */
    }
    switch (ib) {
    case CBOR_FALSE:
    case CBOR_TRUE:
        if (v) {
            v->type = SF_VAL_BOOL;
            v->b = ib == CBOR_TRUE;
        }
        return 0;
    case CBOR_NULL:
        if (v)
            v->type = SF_VAL_NULL;
        return 0;
    case CBOR_HALF:
        if (v) {
            v->type = SF_VAL_FLOAT;
            v->f = cbor_half_to_double((uint16_t)arg);
        }
        return 0;
    case CBOR_SINGLE:
        if (v) {
            uint32_t bits = (uint32_t)arg;
            float f;
            memcpy(&f, &bits, sizeof(f));
            v->type = SF_VAL_FLOAT;
            v->f = (double)f;
        }
        return 0;
    case CBOR_DOUBLE:
        if (v) {
            v->type = SF_VAL_FLOAT;
            memcpy(&v->f, &arg, sizeof(v->f));
        }
        return 0;
    default:
        return -1;
    }
}

/* Walk the array; see the header comment for what is accepted. */
static inline int cbor_walk(const uint8_t *buf, size_t len, struct sf_value *vals, unsigned max)
{
    if (len == 0)
        return 0;
    size_t pos = 0;
    uint64_t count;
    if (cbor_head(buf, len, &pos, &count) != CBOR_MAJOR_ARRAY)
        return SF_ERR_BAD_FIELDS;
    if (count > len - pos) /* every item takes at least one byte */
        return SF_ERR_BAD_FIELDS;
    if (vals != NULL && count > max)
        return SF_ERR_TOO_MANY_FIELDS;
    for (uint64_t i = 0; i < count; i++) {
        if (pos >= len || cbor_scalar(buf, len, &pos, vals ? &vals[i] : NULL) < 0)
            return SF_ERR_BAD_FIELDS;
    }
    if (pos != len)
        return SF_ERR_BAD_FIELDS;
    assert(count <= len);
    return (int)count;
}

/* Validation table (sf_proto_internal.h): head length and checks per initial byte. */
#define CBOR_V_TEXT  SF_CBOR_V_TEXT
#define CBOR_V_INT64 SF_CBOR_V_INT64
const uint8_t sf_cbor_valid[256] = {
    [0x00 ... 0x17] = 1,
    [0x18] = 2,
    [0x19] = 3,
    [0x1a] = 5,
    [0x1b] = 9 | CBOR_V_INT64,
    [0x20 ... 0x37] = 1,
    [0x38] = 2,
    [0x39] = 3,
    [0x3a] = 5,
    [0x3b] = 9 | CBOR_V_INT64,
    [0x60 ... 0x77] = 1 | CBOR_V_TEXT,
    [0x78] = 2 | CBOR_V_TEXT,
    [0x79] = 3 | CBOR_V_TEXT,
    [0x7a] = 5 | CBOR_V_TEXT,
    [0x7b] = 9 | CBOR_V_TEXT,
    [CBOR_FALSE] = 1,
    [CBOR_TRUE] = 1,
    [CBOR_NULL] = 1,
    [CBOR_HALF] = 3,
    [CBOR_SINGLE] = 5,
    [CBOR_DOUBLE] = 9,
};

/* The per-event check: table-driven, no decoding; accepts exactly what cbor_walk does. */
int sf_fields_validate(const uint8_t *buf, size_t len)
{
    assert(buf != NULL || len == 0);
    return sf_cbor_validate(buf, len);
}

int sf_fields_decode(const uint8_t *buf, size_t len, struct sf_value *vals, unsigned max)
{
    assert(buf != NULL || len == 0);
    assert(vals != NULL || max == 0);
    struct sf_value none;
    return cbor_walk(buf, len, vals != NULL ? vals : &none, max);
}

/* ---- encoder ------------------------------------------------------------------------- */

/* Write a head with the shortest argument. Returns bytes written, or 0 if it does not fit. */
static size_t cbor_put_head(uint8_t *out, size_t cap, unsigned major, uint64_t arg)
{
    uint8_t tmp[9];
    size_t n;
    if (arg < 24) {
        tmp[0] = (uint8_t)(major << 5 | arg);
        n = 1;
    } else if (arg <= UINT8_MAX) {
        tmp[0] = (uint8_t)(major << 5 | 24);
        tmp[1] = (uint8_t)arg;
        n = 2;
    } else if (arg <= UINT16_MAX) {
        tmp[0] = (uint8_t)(major << 5 | 25);
        uint16_t be = htobe16((uint16_t)arg);
        memcpy(tmp + 1, &be, 2);
        n = 3;
    } else if (arg <= UINT32_MAX) {
        tmp[0] = (uint8_t)(major << 5 | 26);
        uint32_t be = htobe32((uint32_t)arg);
        memcpy(tmp + 1, &be, 4);
        n = 5;
    } else {
        tmp[0] = (uint8_t)(major << 5 | 27);
        uint64_t be = htobe64(arg);
        memcpy(tmp + 1, &be, 8);
        n = 9;
    }
    if (n > cap)
        return 0;
    memcpy(out, tmp, n);
    return n;
}

/* Encode one value at out[0..cap). Returns bytes written, 0 if it does not fit, -1 if bad. */
static long cbor_put_value(uint8_t *out, size_t cap, const struct sf_value *v)
{
    switch (v->type) {
    case SF_VAL_NULL:
        return cbor_put_head(out, cap, CBOR_MAJOR_SIMPLE, CBOR_NULL & 31u);
    case SF_VAL_BOOL:
        return cbor_put_head(out, cap, CBOR_MAJOR_SIMPLE, (v->b ? CBOR_TRUE : CBOR_FALSE) & 31u);
    case SF_VAL_INT:
        if (v->i >= 0)
            return cbor_put_head(out, cap, CBOR_MAJOR_UINT, (uint64_t)v->i);
        return cbor_put_head(out, cap, CBOR_MAJOR_NEGINT, ~(uint64_t)v->i);
    case SF_VAL_FLOAT: {
        if (cap < 9)
            return 0;
        uint64_t bits;
        memcpy(&bits, &v->f, sizeof(bits));
        bits = htobe64(bits);
        out[0] = CBOR_DOUBLE;
        memcpy(out + 1, &bits, 8);
        return 9;
    }
    case SF_VAL_TEXT: {
        assert(v->text.ptr != NULL || v->text.len == 0);
        size_t n = cbor_put_head(out, cap, CBOR_MAJOR_TEXT, v->text.len);
        if (n == 0 || cap - n < v->text.len)
            return 0;
        if (v->text.len > 0)
            memcpy(out + n, v->text.ptr, v->text.len);
        return (long)(n + v->text.len);
    }
    }
    return -1;
}

int sf_fields_encode(uint8_t *out, size_t cap, const struct sf_value *vals, unsigned n)
{
    assert(out != NULL || cap == 0);
    assert(vals != NULL || n == 0);
    size_t pos = cbor_put_head(out, cap, CBOR_MAJOR_ARRAY, n);
    if (pos == 0)
        return SF_ERR_NO_SPACE;
    for (unsigned i = 0; i < n; i++) {
        long w = cbor_put_value(out + pos, cap - pos, &vals[i]);
        if (w < 0)
            return SF_ERR_BAD_FIELDS;
        if (w == 0)
            return SF_ERR_NO_SPACE;
        pos += (size_t)w;
    }
    if (pos > INT32_MAX)
        return SF_ERR_NO_SPACE;
    assert(pos <= cap);
    return (int)pos;
}
