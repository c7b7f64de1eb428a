/*
 * exec_webhook.c — the webhook executor (cp_exec.h): one HTTP(S) POST per attempt, any
 * number in flight at once in sigflow-control's single thread, through libcurl's
 * multi-socket interface driven by cp_loop.
 *
 * CONFIGURATION (the executor's section; any other key is an error)
 *   url = TEMPLATE          required. Starts with http:// or https:// literally (an argument
 *                           cannot choose the scheme); placeholders (cp_template_expand) are
 *                           percent-encoded, so a value cannot add a path segment or a query.
 *   header = Name: value    may repeat (WH_HEADERS_MAX). No CR or LF; not one of the
 *                           headers the executor sets (WH_RESERVED_HEADERS).
 *   ca_file = PATH          the CA bundle that verifies servers, instead of the system's.
 *   connect_timeout_ms = N  1..WH_CONNECT_TIMEOUT_MS_MAX, default WH_CONNECT_TIMEOUT_MS_DEFAULT.
 * There is no way to turn TLS verification off: peer and host name are always checked.
 *
 * THE REQUEST
 *   POST url with the attempt's body_json, Content-Type: application/json,
 *   Idempotency-Key: a->idempotency_key (the same for every attempt of a run: the receiver
 *   drops duplicates), then the configured headers. Only http and https. Redirects are not
 *   followed: a redirected POST may turn into a GET, and following one would hand the body
 *   and the configured headers (often a credential) to whatever host the Location names.
 *   Proxies from the environment (http_proxy, ...) are ignored: the configuration says
 *   where a request goes, nothing else does.
 *
 * THE OUTCOME
 *   2xx                          done; has_result when the body is a JSON object whose
 *                                member "result" is an integer (anything else: no result)
 *   4xx except 408 and 429       fail   "HTTP 404: <the body's start, sanitized>"
 *   other statuses (3xx, 5xx,
 *   408, 429)                    retry  "HTTP 503: <the body's start, sanitized>"
 *   body over WH_RESPONSE_MAX    retry  "response body over 65536 bytes" (transfer aborted)
 *   transport errors             retry  "connect: Connection refused", "TLS: ...",
 *                                       "timeout: ...", "resolve: ...", "curl: ..."
 *   a URL that cannot be built   fail   "url: ..." (the template names an argument the
 *   or that curl rejects                activity does not have, or is malformed once
 *                                       expanded: the same arguments give the same URL)
 *
 * THE EVENT LOOP
 *   CURLMOPT_SOCKETFUNCTION → cp_loop_watch (level-triggered, like curl expects);
 *   CURLMOPT_TIMERFUNCTION  → one cp_timer (w->timer). Both loop callbacks hand the event to
 *   curl_multi_socket_action and then finish every transfer curl_multi_info_read reports
 *   done. done is called only there, and from an attempt's own zero-delay timer when it ends
 *   before or beside curl (a URL that does not expand, a socket the loop refused to watch);
 *   never from start, which only adds the handle (curl then asks for a timer of 0 ms).
 *   done may call start and abandon (any attempt); it must not call fini.
 *
 * MEMORY: an attempt takes a struct wh_transfer with its curl easy handle (options that
 * never change set once) and a response buffer grown up to WH_RESPONSE_MAX; an ended one
 * goes to an idle list (WH_IDLE_MAX, keeping a buffer of WH_RESPONSE_FIRST at most) and the
 * next start takes it back, so the steady state allocates nothing of ours per attempt (curl
 * and jansson still allocate inside). Trade-off: grown on demand instead of a pool sized at
 * init, because the concurrency the dispatcher allows (up to CP_CONCURRENCY_MAX) would make
 * a full pool large. Connections and TLS sessions stay in the multi handle and are reused.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cp_exec.h"

#define WH_URL_MAX                    4096u  /* an expanded URL, NUL included */
#define WH_HEADERS_MAX                16u    /* `header` lines in one section */
#define WH_IDLE_MAX                   256u   /* ended transfers kept for reuse */
#define WH_KEEP_CONNECTIONS_MIN       64u    /* connections curl keeps open, at least */
#define WH_RESPONSE_MAX               65536u /* response body bytes kept; beyond: retry */
#define WH_RESPONSE_FIRST             1024u  /* the response buffer's first allocation */
#define WH_SNIPPET_MAX                80u    /* response bytes quoted in a reason */
#define WH_CONNECT_TIMEOUT_MS_DEFAULT 5000u
#define WH_CONNECT_TIMEOUT_MS_MAX     600000u
#define WH_PROTOCOLS                  "http,https"
#define WH_USER_AGENT                 "sigflow-control"
#define WH_IDEM_HEADER                "Idempotency-Key: "

_Static_assert(WH_RESPONSE_FIRST <= WH_RESPONSE_MAX, "first allocation within the cap");
_Static_assert(WH_SNIPPET_MAX < CHAN_REASON_MAX / 2, "a snippet leaves room for the status");

/* Headers the executor writes itself or that would change the request's framing. */
static const char *const WH_RESERVED_HEADERS[] = {
    "content-type", "content-length", "transfer-encoding", "idempotency-key", "expect", "host",
};

enum wh_body_state {
    WH_BODY_OK = 0,
    WH_BODY_OVER = 1,  /* longer than WH_RESPONSE_MAX: transfer aborted */
    WH_BODY_NOMEM = 2, /* the buffer could not grow: transfer aborted */
};

struct wh_exec;

/** One attempt in flight (a->exec_state). */
struct wh_transfer {
    struct wh_exec *w;
    struct cp_attempt *a;
    CURL *easy;                      /* the executor's constant options set (wh_easy_new) */
    bool in_multi;                   /* easy is added to w->multi */
    struct wh_transfer *prev, *next; /* w->live, or w->idle (next only) */
    struct cp_timer early_timer;     /* armed: the attempt ends with `early` */
    struct cp_outcome early;
    /* Idempotency-Key, chained in front of the executor's shared list w->headers: curl only
     * reads a header list, so no copy of the shared part per attempt */
    struct curl_slist idem_node;
    char idem_header[sizeof(WH_IDEM_HEADER) + CHAN_IDEM_KEY_MAX];
    char *body; /* the response, body_len bytes of body_cap */
    size_t body_len, body_cap;
    enum wh_body_state body_state;
    char errbuf[CURL_ERROR_SIZE];
};

struct wh_exec {
    struct cp_executor *x;
    CURLM *multi;
    struct cp_timer timer;      /* curl's timeout (CURLMOPT_TIMERFUNCTION) */
    struct curl_slist *headers; /* Content-Type, Expect:, then the configured headers */
    struct wh_transfer *live;   /* attempts in flight, for fini */
    unsigned live_count;
    struct wh_transfer *idle; /* ended, easy handle and all, for the next starts */
    unsigned idle_count;      /* <= WH_IDLE_MAX */
    unsigned sockets;         /* sockets curl asked the loop to watch */
    long connect_timeout_ms;
    char url[CP_KV_VALUE_MAX];
    char ca_file[CP_KV_VALUE_MAX]; /* "": the system's CA bundle */
};

/* ---- ending an attempt ---------------------------------------------------------------- */

static void wh_transfer_free(struct wh_transfer *t)
{
    assert(!t->in_multi && !cp_timer_armed(&t->early_timer));
    curl_easy_cleanup(t->easy);
    free(t->body);
    free(t);
}

/* Keep an ended transfer for reuse (WH_IDLE_MAX at most), or free it. Can't fail. */
static void wh_transfer_put(struct wh_exec *w, struct wh_transfer *t)
{
    assert(t->a == NULL && !t->in_multi);
    if (w->idle_count == WH_IDLE_MAX) {
        wh_transfer_free(t);
        return;
    }
    if (t->body_cap > WH_RESPONSE_FIRST) { /* an idle transfer keeps a small buffer only */
        free(t->body);
        t->body = NULL;
        t->body_cap = 0;
    }
    t->prev = NULL;
    t->next = w->idle;
    w->idle = t;
    w->idle_count++;
}

/* Unlink t, take its handle out of curl, keep or free it. done is not called. Can't fail. */
static void wh_release(struct wh_exec *w, struct wh_transfer *t)
{
    assert(t->w == w && w->live_count > 0);
    cp_loop_timer_cancel(w->x->loop, &t->early_timer);
    if (t->in_multi)
        curl_multi_remove_handle(w->multi, t->easy);
    t->in_multi = false;
    if (t->prev)
        t->prev->next = t->next;
    else
        w->live = t->next;
    if (t->next)
        t->next->prev = t->prev;
    w->live_count--;
    t->a->exec_state = NULL;
    t->a = NULL;
    wh_transfer_put(w, t);
}

/* Release t and report o for its attempt (from a loop callback only). */
static void wh_finish(struct wh_exec *w, struct wh_transfer *t, const struct cp_outcome *o)
{
    struct cp_attempt *a = t->a;
    assert(a->exec_state == t);
    wh_release(w, t);
    w->x->done(w->x, a, o);
}

static void wh_on_early(struct cp_loop *loop, void *arg)
{
    struct wh_transfer *t = arg;
    struct cp_outcome o = t->early;
    (void)loop;
    wh_finish(t->w, t, &o);
}

/* End t with o from the loop's next pass (t's zero-delay timer). Returns 0 or -ENOSPC. */
static int wh_end_soon(struct wh_exec *w, struct wh_transfer *t, const struct cp_outcome *o)
{
    t->early = *o;
    return cp_loop_timer_arm(w->x->loop, &t->early_timer, cp_now_ns(), wh_on_early, t);
}

/* ---- outcomes (leaves: read the finished transfer, write o) --------------------------- */

/* Copy up to WH_SNIPPET_MAX bytes of the body as printable ASCII into out: a run of spaces
 * and control bytes becomes one space, any other byte outside 0x21..0x7e a '?'. */
static void wh_snippet(const char *body, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    bool space = false;
    assert(cap > 0);
    for (size_t i = 0; i < len && i < WH_SNIPPET_MAX && n + 1 < cap; i++) {
        unsigned char c = (unsigned char)body[i];
        if (c <= 0x20 || c == 0x7f) {
            space = n > 0;
            continue;
        }
        if (space && n + 2 < cap)
            out[n++] = ' ';
        space = false;
        out[n++] = c < 0x7f ? (char)c : '?';
    }
    out[n] = '\0';
}

static void wh_outcome_done(const struct wh_transfer *t, struct cp_outcome *o)
{
    cp_outcome_set(o, CP_OUTCOME_DONE, "%s", "");
    if (t->body_len == 0)
        return;
    json_error_t jerr;
    json_t *root = json_loadb(t->body, t->body_len, 0, &jerr);
    json_t *result = json_is_object(root) ? json_object_get(root, "result") : NULL;
    if (json_is_integer(result)) {
        o->has_result = true;
        o->result = (int64_t)json_integer_value(result);
    }
    json_decref(root);
}

static void wh_outcome_http(const struct wh_transfer *t, long status, struct cp_outcome *o)
{
    if (status >= 200 && status <= 299) {
        wh_outcome_done(t, o);
        return;
    }
    char snippet[WH_SNIPPET_MAX + 1];
    wh_snippet(t->body, t->body_len, snippet, sizeof(snippet));
    bool permanent = status >= 400 && status <= 499 && status != 408 && status != 429;
    cp_outcome_set(o, permanent ? CP_OUTCOME_FAIL : CP_OUTCOME_RETRY, "HTTP %ld%s%s%s", status,
                   status >= 300 && status <= 399 ? " (redirects are not followed)" : "",
                   snippet[0] ? ": " : "", snippet);
}

static void wh_outcome_curl(const struct wh_transfer *t, CURLcode rc, struct cp_outcome *o)
{
    const char *detail = t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc);
    long os_errno = 0;
    if (t->body_state == WH_BODY_NOMEM) {
        cp_outcome_set(o, CP_OUTCOME_RETRY, "no memory for the response body");
        return;
    }
    if (t->body_state == WH_BODY_OVER || rc == CURLE_FILESIZE_EXCEEDED) {
        cp_outcome_set(o, CP_OUTCOME_RETRY, "response body over %u bytes", WH_RESPONSE_MAX);
        return;
    }
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        if (curl_easy_getinfo(t->easy, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK && os_errno > 0)
            cp_outcome_set(o, CP_OUTCOME_RETRY, "connect: %s", strerror((int)os_errno));
        else
            cp_outcome_set(o, CP_OUTCOME_RETRY, "connect: %s", detail);
        return;
    case CURLE_COULDNT_RESOLVE_HOST:
        cp_outcome_set(o, CP_OUTCOME_RETRY, "resolve: %s", detail);
        return;
    case CURLE_OPERATION_TIMEDOUT:
        cp_outcome_set(o, CP_OUTCOME_RETRY, "timeout: %s", detail);
        return;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        cp_outcome_set(o, CP_OUTCOME_FAIL, "url: %s", detail);
        return;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
        cp_outcome_set(o, CP_OUTCOME_RETRY, "TLS: %s", detail);
        return;
    default:
        cp_outcome_set(o, CP_OUTCOME_RETRY, "curl: %s", detail);
        return;
    }
}

/* ---- curl's callbacks and the loop's ---------------------------------------------------- */

/* Finish every transfer curl reports done. Bounded by the transfers in flight. */
static void wh_drain(struct wh_exec *w)
{
    CURLMsg *m;
    int queued;
    while ((m = curl_multi_info_read(w->multi, &queued)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct wh_transfer *t = NULL;
        CURLcode rc = m->data.result; /* m is gone once the handle is removed */
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        assert(t != NULL && t->easy == m->easy_handle);
        struct cp_outcome o;
        long status = 0;
        if (rc != CURLE_OK)
            wh_outcome_curl(t, rc, &o);
        else if (curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
            cp_outcome_set(&o, CP_OUTCOME_RETRY, "curl: no response status");
        else
            wh_outcome_http(t, status, &o);
        wh_finish(w, t, &o);
    }
}

static void wh_on_fd(struct cp_loop *loop, int fd, uint32_t events, void *arg)
{
    struct wh_exec *w = arg;
    int flags = 0, running = 0;
    (void)loop;
    if (events & (EPOLLIN | EPOLLHUP))
        flags |= CURL_CSELECT_IN;
    if (events & EPOLLOUT)
        flags |= CURL_CSELECT_OUT;
    if (events & EPOLLERR)
        flags |= CURL_CSELECT_ERR;
    curl_multi_socket_action(w->multi, fd, flags, &running);
    wh_drain(w);
}

static void wh_on_timer(struct cp_loop *loop, void *arg)
{
    struct wh_exec *w = arg;
    int running = 0;
    (void)loop;
    curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    wh_drain(w);
}

/* CURLMOPT_SOCKETFUNCTION: watch s for what curl waits for. A socket the loop refuses
 * (descriptor past CP_LOOP_FDS_MAX, epoll out of memory) ends its transfer with a retry
 * from the loop's next pass; returning -1 would abort every transfer of the multi handle. */
static int wh_on_socket(CURL *easy, curl_socket_t s, int what, void *arg, void *sockp)
{
    struct wh_exec *w = arg;
    uint32_t events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= EPOLLIN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= EPOLLOUT;
    int rc = cp_loop_watch(w->x->loop, s, events, wh_on_fd, w);
    if (events == 0) {
        if (sockp != NULL) {
            assert(w->sockets > 0);
            w->sockets--;
        }
        return 0;
    }
    if (rc == 0 && sockp == NULL) {
        curl_multi_assign(w->multi, s, w); /* marks s as counted */
        w->sockets++;
    }
    struct wh_transfer *t = NULL;
    if (rc < 0 && curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&t) == CURLE_OK && t &&
        !cp_timer_armed(&t->early_timer)) {
        struct cp_outcome o;
        cp_outcome_set(&o, CP_OUTCOME_RETRY, "event loop: cannot watch socket %d: %s", s,
                       strerror(-rc));
        wh_end_soon(w, t, &o); /* if even that fails, the dispatcher's timeout ends it */
    }
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: (re)arm, or with timeout_ms -1 cancel, curl's one timer. */
static int wh_on_curl_timer(CURLM *multi, long timeout_ms, void *arg)
{
    struct wh_exec *w = arg;
    (void)multi;
    if (timeout_ms < 0) {
        cp_loop_timer_cancel(w->x->loop, &w->timer);
        return 0;
    }
    uint64_t due = cp_now_ns() + (uint64_t)timeout_ms * 1000000u;
    return cp_loop_timer_arm(w->x->loop, &w->timer, due, wh_on_timer, w) == 0 ? 0 : -1;
}

/* Write callback: keep the response body, up to WH_RESPONSE_MAX bytes. */
static size_t wh_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct wh_transfer *t = arg;
    size_t len = size * nmemb; /* size is 1 (curl's contract) */
    if (len > WH_RESPONSE_MAX - t->body_len) {
        t->body_state = WH_BODY_OVER;
        return CURL_WRITEFUNC_ERROR;
    }
    if (t->body_len + len > t->body_cap) {
        size_t cap = t->body_cap ? t->body_cap : WH_RESPONSE_FIRST;
        while (cap < t->body_len + len)
            cap *= 2;
        cap = cap < WH_RESPONSE_MAX ? cap : WH_RESPONSE_MAX;
        char *grown = realloc(t->body, cap);
        if (!grown) {
            t->body_state = WH_BODY_NOMEM;
            return CURL_WRITEFUNC_ERROR;
        }
        t->body = grown;
        t->body_cap = cap;
    }
    memcpy(t->body + t->body_len, data, len);
    t->body_len += len;
    return len;
}

/* ---- start, abandon ------------------------------------------------------------------- */

/* An easy handle with the options every attempt shares, bound to t (private data, header
 * list, response buffer, error buffer). Returns it, or NULL (no memory). */
static CURL *wh_easy_new(struct wh_exec *w, struct wh_transfer *t)
{
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    bool bad = false;
    bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, t) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, &t->idem_node) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, wh_on_body) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, t) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, WH_PROTOCOLS) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, WH_PROTOCOLS) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROXY, "") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
    if (w->ca_file[0])
        bad |= curl_easy_setopt(e, CURLOPT_CAINFO, w->ca_file) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, w->connect_timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)WH_RESPONSE_MAX) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, WH_USER_AGENT) != CURLE_OK;
    if (bad) {
        curl_easy_cleanup(e);
        return NULL;
    }
    return e;
}

/* A transfer ready for an attempt: an idle one, or a new one. Returns NULL (no memory). */
static struct wh_transfer *wh_transfer_get(struct wh_exec *w)
{
    struct wh_transfer *t = w->idle;
    if (t) {
        assert(w->idle_count > 0);
        w->idle = t->next;
        w->idle_count--;
    } else {
        t = calloc(1, sizeof(*t));
        if (!t)
            return NULL;
        t->w = w;
        t->idem_node.data = t->idem_header;
        t->idem_node.next = w->headers;
        t->easy = wh_easy_new(w, t);
        if (!t->easy) {
            free(t);
            return NULL;
        }
    }
    t->next = NULL;
    t->errbuf[0] = '\0';
    t->body_len = 0;
    t->body_state = WH_BODY_OK;
    return t;
}

/* Aim t's handle at url with a's body and key, and add it to curl. Returns 0 or -ENOMEM. */
static int wh_transfer_launch(struct wh_exec *w, struct wh_transfer *t, const char *url)
{
    const struct cp_attempt *a = t->a;
    snprintf(t->idem_header, sizeof(t->idem_header), WH_IDEM_HEADER "%s", a->idempotency_key);
    bool bad = false;
    bad |= curl_easy_setopt(t->easy, CURLOPT_URL, url) != CURLE_OK;
    bad |= curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, a->body_json) != CURLE_OK;
    bad |= curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE, (long)a->body_len) != CURLE_OK;
    if (bad || curl_multi_add_handle(w->multi, t->easy) != CURLM_OK)
        return -ENOMEM;
    t->in_multi = true;
    return 0;
}

static int wh_start(struct cp_executor *x, struct cp_attempt *a)
{
    struct wh_exec *w = x->state;
    assert(w != NULL && w->x == x);
    assert(a->body_len > 0 && a->body_len < sizeof(a->body_json));
    struct wh_transfer *t = wh_transfer_get(w);
    if (!t)
        return -ENOMEM;
    t->a = a;
    char url[WH_URL_MAX];
    int n = cp_template_expand(w->url, a, true, url, sizeof(url));
    int rc;
    if (n < 0) {
        struct cp_outcome o;
        if (n == -ENOSPC)
            cp_outcome_set(&o, CP_OUTCOME_FAIL, "url: longer than %u bytes once expanded",
                           WH_URL_MAX - 1);
        else
            cp_outcome_set(&o, CP_OUTCOME_FAIL, "url: a placeholder names no argument of %s",
                           a->activity);
        rc = wh_end_soon(w, t, &o);
    } else {
        rc = wh_transfer_launch(w, t, url);
    }
    if (rc < 0) {
        t->a = NULL;
        wh_transfer_put(w, t);
        return rc;
    }
    t->prev = NULL;
    t->next = w->live;
    if (w->live)
        w->live->prev = t;
    w->live = t;
    w->live_count++;
    a->exec_state = t;
    return 0;
}

static void wh_abandon(struct cp_executor *x, struct cp_attempt *a)
{
    struct wh_exec *w = x->state;
    struct wh_transfer *t = a->exec_state;
    assert(w != NULL && t != NULL && t->a == a);
    wh_release(w, t);
}

/* ---- init, fini ------------------------------------------------------------------------- */

/* Check a `header` value: "Name: value", Name an RFC 9110 token not in WH_RESERVED_HEADERS,
 * a non-empty value without CR or LF. Returns NULL, or what is wrong. */
static const char *wh_header_problem(const char *h)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~";
    if (strpbrk(h, "\r\n"))
        return "contains CR or LF";
    size_t name_len = 0;
    for (; h[name_len] && h[name_len] != ':'; name_len++) {
        unsigned char c = (unsigned char)h[name_len];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && !strchr(tchar, c))
            return "is not \"Name: value\" (the name is not a token)";
    }
    if (h[name_len] != ':' || name_len == 0)
        return "is not \"Name: value\"";
    const char *value = h + name_len + 1;
    while (*value == ' ' || *value == '\t')
        value++;
    if (*value == '\0')
        return "has an empty value";
    for (size_t i = 0; i < sizeof(WH_RESERVED_HEADERS) / sizeof(WH_RESERVED_HEADERS[0]); i++)
        if (strlen(WH_RESERVED_HEADERS[i]) == name_len &&
            strncasecmp(h, WH_RESERVED_HEADERS[i], name_len) == 0)
            return "names one the executor sets itself";
    return NULL;
}

/* Parse "1".."WH_CONNECT_TIMEOUT_MS_MAX" into *ms. Returns 0 or -EINVAL. */
static int wh_parse_ms(const char *s, long *ms)
{
    char *end = NULL;
    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v == 0 || v > WH_CONNECT_TIMEOUT_MS_MAX)
        return -EINVAL;
    *ms = (long)v;
    return 0;
}

/* One key of the section into w. Returns 0, or -EINVAL with err filled. */
static int wh_config_key(struct wh_exec *w, const struct cp_kv *kv, unsigned *nheaders, char *err,
                         size_t err_cap)
{
    const char *why;
    if (strcmp(kv->key, "url") == 0) {
        if (w->url[0]) {
            snprintf(err, err_cap, "line %u: url given twice", kv->line);
            return -EINVAL;
        }
        if (strncasecmp(kv->value, "http://", 7) != 0 &&
            strncasecmp(kv->value, "https://", 8) != 0) {
            snprintf(err, err_cap, "line %u: url must start with http:// or https://", kv->line);
            return -EINVAL;
        }
        if (cp_template_check(kv->value) != 0) {
            snprintf(err, err_cap,
                     "line %u: url: unknown placeholder or unmatched brace (see {id}, "
                     "{arg.NAME}, {{ for a brace)",
                     kv->line);
            return -EINVAL;
        }
        snprintf(w->url, sizeof(w->url), "%s", kv->value);
    } else if (strcmp(kv->key, "header") == 0) {
        if (*nheaders == WH_HEADERS_MAX) {
            snprintf(err, err_cap, "line %u: more than %u headers", kv->line, WH_HEADERS_MAX);
            return -EINVAL;
        }
        if ((why = wh_header_problem(kv->value)) != NULL) {
            snprintf(err, err_cap, "line %u: header %s", kv->line, why);
            return -EINVAL;
        }
        struct curl_slist *l = curl_slist_append(w->headers, kv->value);
        if (!l) {
            snprintf(err, err_cap, "line %u: no memory for the header", kv->line);
            return -EINVAL;
        }
        w->headers = l;
        (*nheaders)++;
    } else if (strcmp(kv->key, "ca_file") == 0) {
        if (access(kv->value, R_OK) != 0) {
            snprintf(err, err_cap, "line %u: ca_file %s: %s", kv->line, kv->value, strerror(errno));
            return -EINVAL;
        }
        snprintf(w->ca_file, sizeof(w->ca_file), "%s", kv->value);
    } else if (strcmp(kv->key, "connect_timeout_ms") == 0) {
        if (wh_parse_ms(kv->value, &w->connect_timeout_ms) != 0) {
            snprintf(err, err_cap, "line %u: connect_timeout_ms must be 1..%u", kv->line,
                     WH_CONNECT_TIMEOUT_MS_MAX);
            return -EINVAL;
        }
    } else {
        snprintf(err, err_cap, "line %u: unknown key %s for a webhook executor", kv->line, kv->key);
        return -EINVAL;
    }
    return 0;
}

static int wh_init(struct cp_executor *x, const struct cp_kv *kv, unsigned n, char *err,
                   size_t err_cap)
{
    assert(x->loop != NULL && x->done != NULL);
    assert(n <= CP_KV_MAX);
    struct wh_exec *w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(err, err_cap, "no memory for a webhook executor");
        return -EINVAL;
    }
    w->x = x;
    w->connect_timeout_ms = WH_CONNECT_TIMEOUT_MS_DEFAULT;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, err_cap, "libcurl could not initialise");
        goto out_free;
    }
    w->headers = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *l = w->headers ? curl_slist_append(w->headers, "Expect:") : NULL;
    if (!l) {
        snprintf(err, err_cap, "no memory for a webhook executor");
        goto out_headers;
    }
    unsigned nheaders = 0;
    for (unsigned i = 0; i < n; i++)
        if (wh_config_key(w, &kv[i], &nheaders, err, err_cap) != 0)
            goto out_headers;
    if (!w->url[0]) {
        snprintf(err, err_cap, "a webhook executor needs a url");
        goto out_headers;
    }
    w->multi = curl_multi_init();
    if (!w->multi) {
        snprintf(err, err_cap, "no memory for a webhook executor");
        goto out_headers;
    }
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, wh_on_socket);
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, wh_on_curl_timer);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
    /* curl's default keeps 4 x the handles added now: a lull would close the connections a
     * burst then reopens. Keep as many as may be in flight (x->concurrency, when the
     * dispatcher set it before init). */
    long keep = x->concurrency > WH_KEEP_CONNECTIONS_MIN ? (long)x->concurrency
                                                         : (long)WH_KEEP_CONNECTIONS_MIN;
    curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS, keep);
    x->state = w;
    return 0;

out_headers:
    curl_slist_free_all(w->headers);
    curl_global_cleanup();
out_free:
    free(w);
    return -EINVAL;
}

static void wh_fini(struct cp_executor *x)
{
    struct wh_exec *w = x->state;
    if (!w)
        return;
    while (w->live) /* none by contract; released without done if there are */
        wh_release(w, w->live);
    while (w->idle) {
        struct wh_transfer *t = w->idle;
        w->idle = t->next;
        w->idle_count--;
        wh_transfer_free(t);
    }
    /* idle pooled connections are not watched (curl removed them when their transfer
     * ended); cleanup closes them */
    curl_multi_cleanup(w->multi);
    cp_loop_timer_cancel(x->loop, &w->timer);
    assert(w->live_count == 0 && w->idle_count == 0 && w->sockets == 0);
    curl_slist_free_all(w->headers);
    curl_global_cleanup();
    free(w);
    x->state = NULL;
}

const struct cp_executor_ops cp_exec_webhook_ops = {
    .kind = "webhook",
    .init = wh_init,
    .start = wh_start,
    .abandon = wh_abandon,
    .fini = wh_fini,
};
