/*
 * cp_http.h — a small HTTP/1.1 server (libmicrohttpd) on cp_loop, without threads: MHD runs
 * in its external epoll mode; its epoll descriptor is watched by the loop and MHD_get_timeout
 * drives one cp_timer, so every MHD_run — and every handler — runs on the loop's thread.
 *
 * Only GET is served (anything else: 405 with Allow: GET). The caller's handler answers a
 * path at once, or asks to wait (the answer needs a query in flight): the connection is
 * suspended, and cp_http_wake resumes every waiting connection, whose handler runs again.
 */
#ifndef CP_HTTP_H
#define CP_HTTP_H

#include <stddef.h>

#include "cp_loop.h"

#define CP_HTTP_CONNECTIONS_MAX 64u /* connections at once (MHD refuses more) */
#define CP_HTTP_IDLE_TIMEOUT_S  10u /* an idle connection is closed after this */

struct cp_http;

/** A handler's answer: status, Content-Type and a body the server frees (malloc'ed). */
struct cp_http_reply {
    unsigned status;
    const char *content_type; /* static string */
    char *body;
    size_t len;
};

/**
 * Answer GET `path` (the query string removed): fill *reply and return 0, or return 1 to
 * wait (call cp_http_wake later; the handler runs again for this request). Runs on the loop.
 */
typedef int cp_http_handler_fn(void *arg, const char *path, struct cp_http_reply *reply);

/**
 * Listen on IPv4 addr:port (dotted quad; that address only) and serve with handler.
 * Returns the server, or NULL with err filled (address in use, bad address, no memory).
 */
struct cp_http *cp_http_new(struct cp_loop *loop, const char *addr, unsigned port,
                            cp_http_handler_fn *handler, void *arg, char *err, size_t err_cap);

/** Resume every waiting connection (their handler runs again) and run MHD. Can't fail. */
void cp_http_wake(struct cp_http *h);

/** Close every connection and the listening socket; free. NULL is a no-op. */
void cp_http_free(struct cp_http *h);

#endif
