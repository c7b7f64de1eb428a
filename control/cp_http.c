/*
 * cp_http.c — libmicrohttpd on cp_loop (cp_http.h). MHD_USE_EPOLL without an internal
 * thread: MHD keeps its own epoll set (listening socket, connections, the eventfd that
 * MHD_resume_connection signals); that one descriptor is level-triggered readable in our
 * loop whenever MHD has work, and MHD_get_timeout says when MHD wants to run for its own
 * timeouts (idle connections), so after every MHD_run the timer is re-armed from it.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include <microhttpd.h>

#include "cp_http.h"

struct cp_http {
    struct cp_loop *loop;
    struct MHD_Daemon *mhd;
    int epoll_fd; /* MHD's */
    struct cp_timer timer;
    cp_http_handler_fn *handler;
    void *arg;
    struct MHD_Connection *waiting[CP_HTTP_CONNECTIONS_MAX]; /* suspended, to resume */
    unsigned waiting_count;
};

/* Run MHD once, then arm the timer for MHD's next deadline (cancel it when there is none). */
static void cp_http_run(struct cp_http *h);

/* cp_timer_fn: MHD's own deadline (an idle connection to close) has come. */
static void cp_http_on_timer(struct cp_loop *loop, void *arg)
{
    (void)loop;
    cp_http_run(arg);
}

/* cp_fd_fn: MHD's epoll set has something ready (a connection, a resume). */
static void cp_http_on_epoll(struct cp_loop *loop, int fd, uint32_t events, void *arg)
{
    (void)loop, (void)events;
    struct cp_http *h = arg;
    assert(fd == h->epoll_fd);
    cp_http_run(h);
}

static void cp_http_run(struct cp_http *h)
{
    MHD_run(h->mhd);
    MHD_UNSIGNED_LONG_LONG ms = 0;
    if (MHD_get_timeout(h->mhd, &ms) == MHD_YES)
        cp_loop_timer_arm(h->loop, &h->timer, cp_now_ns() + (uint64_t)ms * 1000000ull,
                          cp_http_on_timer, h);
    else
        cp_loop_timer_cancel(h->loop, &h->timer);
}

/* Queue a reply (the body is freed by MHD). MHD_YES, or MHD_NO to close the connection. */
static enum MHD_Result cp_http_queue(struct MHD_Connection *c, struct cp_http_reply *r)
{
    assert(r->status >= 100 && r->status < 600);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(r->body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    if (r->status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET");
    enum MHD_Result rc = MHD_queue_response(c, r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* MHD's access handler, for each request (and again after a resume): 405 for a method
 * other than GET, else the caller's handler; a handler that waits suspends the connection.
 * MHD_YES, or MHD_NO to close the connection (no memory for the reply). */
static enum MHD_Result cp_http_on_request(void *cls, struct MHD_Connection *c, const char *url,
                                          const char *method, const char *version,
                                          const char *upload_data, size_t *upload_data_size,
                                          void **req_cls)
{
    (void)version, (void)upload_data, (void)upload_data_size, (void)req_cls;
    struct cp_http *h = cls;
    struct cp_http_reply r = { .status = 200, .content_type = "text/plain; charset=utf-8" };
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0) {
        r.status = MHD_HTTP_METHOD_NOT_ALLOWED;
        r.body = strdup("method not allowed: GET only\n");
        r.len = r.body ? strlen(r.body) : 0;
    } else if (h->handler(h->arg, url, &r) != 0) {
        /* at most CP_HTTP_CONNECTIONS_MAX connections exist, so there is always room */
        if (h->waiting_count == CP_HTTP_CONNECTIONS_MAX)
            return MHD_NO;
        h->waiting[h->waiting_count++] = c;
        MHD_suspend_connection(c);
        return MHD_YES;
    }
    if (!r.body)
        return MHD_NO;
    return cp_http_queue(c, &r);
}

struct cp_http *cp_http_new(struct cp_loop *loop, const char *addr, unsigned port,
                            cp_http_handler_fn *handler, void *arg, char *err, size_t err_cap)
{
    assert(loop && handler);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (port == 0 || port > 65535 || inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
        snprintf(err, err_cap, "http %s:%u: not an IPv4 address and port", addr, port);
        return NULL;
    }
    struct cp_http *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(err, err_cap, "http: out of memory");
        return NULL;
    }
    h->loop = loop;
    h->handler = handler;
    h->arg = arg;
    h->mhd = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL,
        cp_http_on_request, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)CP_HTTP_CONNECTIONS_MAX,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CP_HTTP_IDLE_TIMEOUT_S, MHD_OPTION_END);
    if (!h->mhd) {
        snprintf(err, err_cap, "http %s:%u: cannot listen (address in use?)", addr, port);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    h->epoll_fd = info ? info->epoll_fd : -1;
    int rc = h->epoll_fd >= 0 ? cp_loop_watch(loop, h->epoll_fd, EPOLLIN, cp_http_on_epoll, h)
                              : -ENOTSUP;
    if (rc != 0) {
        snprintf(err, err_cap, "http %s:%u: event loop: %s", addr, port, strerror(-rc));
        MHD_stop_daemon(h->mhd);
        free(h);
        return NULL;
    }
    cp_http_run(h);
    return h;
}

void cp_http_wake(struct cp_http *h)
{
    assert(h->waiting_count <= CP_HTTP_CONNECTIONS_MAX);
    for (unsigned i = 0; i < h->waiting_count; i++)
        MHD_resume_connection(h->waiting[i]);
    h->waiting_count = 0;
    cp_http_run(h);
}

void cp_http_free(struct cp_http *h)
{
    if (!h)
        return;
    for (unsigned i = 0; i < h->waiting_count; i++)
        MHD_resume_connection(h->waiting[i]);
    cp_loop_timer_cancel(h->loop, &h->timer);
    cp_loop_watch(h->loop, h->epoll_fd, 0, NULL, NULL);
    MHD_stop_daemon(h->mhd);
    free(h);
}
