/*
 * ctl_text.h — text from outside (the node's answers, files, arguments) made safe to show
 * on a terminal.
 *
 * A workflow id, a state name, a field value or an error message may hold any bytes; sent
 * raw to a terminal, an escape sequence in one can rewrite the screen, the title or the
 * clipboard. Rendered text keeps valid, printable UTF-8 as it is and writes every other
 * byte as \xNN: bytes below 0x20 and 0x7f, C1 controls (U+0080..U+009F, two bytes each),
 * and each byte of an invalid UTF-8 sequence (overlong, surrogate, beyond U+10FFFF,
 * truncated). A backslash is written "\\", so that a rendering reads back unambiguously.
 * The result is itself valid UTF-8.
 */
#ifndef SF_CTL_TEXT_H
#define SF_CTL_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CTL_TEXT_NEWLINES 0x1u /* keep '\n' as is (multi-line messages) */
#define CTL_TEXT_UNIT_MAX 8u   /* bytes of the rendering of one input character */
#define CTL_TEXT_MISSING  "-"  /* the rendering of a NULL string */

/** True when s[0..len) is valid UTF-8 (NUL bytes included). s may be NULL when len is 0. */
bool ctl_text_is_utf8(const char *s, size_t len);

/**
 * Render s[0..len) into out[0..cap), NUL-terminated. When it does not fit, the rendering
 * stops before the first character (or escape) that does not, so it is never cut inside
 * one. s NULL: CTL_TEXT_MISSING. cap must be at least 1. Returns out; can't fail.
 */
const char *ctl_text_format(char *out, size_t cap, const char *s, size_t len, unsigned flags);

/** Render s[0..len) to f, whole. s NULL: CTL_TEXT_MISSING. Errors are f's (ferror). */
void ctl_text_write(FILE *f, const char *s, size_t len, unsigned flags);

#endif /* SF_CTL_TEXT_H */
