/*
 * ctl_text.c — rendering of outside text for a terminal (see ctl_text.h).
 */
#include "ctl_text.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at p[0..n), or 0 when it is not one (RFC 3629: no
 * overlongs, no surrogates, nothing above U+10FFFF). */
static size_t ctl_utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else
        return 0;
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

bool ctl_text_is_utf8(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t k = ctl_utf8_len(p + i, len - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

/* The rendering of the character at p[0..n) into unit[0..CTL_TEXT_UNIT_MAX); returns the
 * input bytes it stands for (>= 1) and sets *unit_len. */
static size_t ctl_text_unit(const unsigned char *p, size_t n, unsigned flags, char *unit,
                            size_t *unit_len)
{
    static const char hex[] = "0123456789abcdef";
    size_t k = ctl_utf8_len(p, n);
    bool c1 = k == 2 && p[0] == 0xC2 && p[1] < 0xA0; /* U+0080..U+009F */
    bool ctl =
        k == 1 && (p[0] < 0x20 || p[0] == 0x7f) && !(p[0] == '\n' && (flags & CTL_TEXT_NEWLINES));
    if (k == 1 && p[0] == '\\') {
        memcpy(unit, "\\\\", 2);
        *unit_len = 2;
        return 1;
    }
    if (k == 0 || ctl || c1) {
        size_t bytes = c1 ? 2 : 1, o = 0;
        for (size_t i = 0; i < bytes; i++) {
            unit[o++] = '\\';
            unit[o++] = 'x';
            unit[o++] = hex[p[i] >> 4];
            unit[o++] = hex[p[i] & 0xf];
        }
        *unit_len = o;
        return bytes;
    }
    memcpy(unit, p, k);
    *unit_len = k;
    return k;
}

const char *ctl_text_format(char *out, size_t cap, const char *s, size_t len, unsigned flags)
{
    assert(out && cap >= 1);
    if (!s) {
        s = CTL_TEXT_MISSING;
        len = strlen(s);
    }
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        char unit[CTL_TEXT_UNIT_MAX];
        size_t unit_len;
        size_t used = ctl_text_unit(p + i, len - i, flags, unit, &unit_len);
        assert(used >= 1 && unit_len <= CTL_TEXT_UNIT_MAX);
        if (unit_len >= cap - o)
            break; /* does not fit with the NUL */
        memcpy(out + o, unit, unit_len);
        o += unit_len;
        i += used;
    }
    out[o] = '\0';
    return out;
}

void ctl_text_write(FILE *f, const char *s, size_t len, unsigned flags)
{
    if (!s) {
        fputs(CTL_TEXT_MISSING, f);
        return;
    }
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        char unit[CTL_TEXT_UNIT_MAX];
        size_t unit_len;
        i += ctl_text_unit(p + i, len - i, flags, unit, &unit_len);
        fwrite(unit, 1, unit_len, f);
    }
}
