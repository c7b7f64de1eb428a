/*
 * dp_ctl_json.c — the node's data as JSON for the control socket's replies: texts (which a
 * log or snapshot written before the parsers checked UTF-8 may hold invalid) and values.
 */
#include <string.h>

#include <jansson.h>

#include "dp.h"
#include "dp_ctl_internal.h"

json_t *dp_ctl_text(const char *s, size_t n)
{
    if (sf_text_valid((const uint8_t *)s, n))
        return json_stringn(s, n);
    char out[3 * 512 + 1];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 <= sizeof(out);) {
        size_t k = 1;
        while (k <= 4 && i + k <= n && !sf_text_valid((const uint8_t *)s + i, k))
            k++;
        if (k <= 4 && i + k <= n) {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    return json_stringn(out, o);
}

json_t *dp_ctl_cstr(const char *s)
{
    return dp_ctl_text(s, strlen(s));
}

json_t *dp_ctl_value(const struct sf_value *v)
{
    switch (v->type) {
    case SF_VAL_INT:
        return json_integer(v->i);
    case SF_VAL_FLOAT:
        return json_real(v->f);
    case SF_VAL_BOOL:
        return json_boolean(v->b);
    case SF_VAL_TEXT:
        return dp_ctl_text(v->text.ptr, v->text.len);
    default:
        return json_null();
    }
}
