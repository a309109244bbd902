/*
 * Copyright (C) ngx_safedelete_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <curl/curl.h>

#include "ngx_http_safedelete_event.h"
#include "ngx_http_safedelete_http.h"


#define NGX_HTTP_SAFEDELETE_HTTP_SPARE  32


typedef struct {
    ngx_queue_t                   queue;
    ngx_connection_t             *conn;
    curl_socket_t                 fd;
} ngx_http_safedelete_http_sock_t;


struct ngx_http_safedelete_http_op_s {
    ngx_queue_t                   queue;      /* the owner's list */
    ngx_queue_t                   all;        /* the worker's list */
    CURL                         *easy;
    struct curl_slist            *headers;
    u_char                       *buf;
    size_t                        len;
    size_t                        size;
    size_t                        max_body;
    ngx_uint_t                    too_big;
    ngx_int_t                     total_count;
    u_char                        content_type[128];
    size_t                        content_type_len;
    char                          error[CURL_ERROR_SIZE];
    ngx_http_safedelete_http_pt   handler;
    void                         *data;
    ngx_log_t                    *log;
    u_char                       *url;
    u_char                       *method;
};


typedef struct {
    CURLM                        *multi;
    ngx_log_t                    *log;
    ngx_event_t                   timer;
    ngx_connection_t              dummy;
    ngx_queue_t                   socks;
    ngx_queue_t                   ops;

    /* easy handles kept for the next calls: their setup is not free */
    CURL                         *spare[NGX_HTTP_SAFEDELETE_HTTP_SPARE];
    ngx_uint_t                    nspare;
} ngx_http_safedelete_http_t;


static int ngx_http_safedelete_http_socket_cb(CURL *easy, curl_socket_t s,
    int what, void *userp, void *socketp);
static int ngx_http_safedelete_http_timer_cb(CURLM *multi, long timeout_ms,
    void *userp);
static int ngx_http_safedelete_http_close_cb(void *clientp,
    curl_socket_t fd);
static size_t ngx_http_safedelete_http_write_cb(char *ptr, size_t size,
    size_t nmemb, void *userdata);
static size_t ngx_http_safedelete_http_header_cb(char *ptr, size_t size,
    size_t nmemb, void *userdata);
static void ngx_http_safedelete_http_event_handler(ngx_event_t *ev);
static void ngx_http_safedelete_http_timer_handler(ngx_event_t *ev);
static void ngx_http_safedelete_http_drain(void);
static void ngx_http_safedelete_http_complete(
    ngx_http_safedelete_http_op_t *op, CURLcode code);
static void ngx_http_safedelete_http_op_free(
    ngx_http_safedelete_http_op_t *op);
static ngx_http_safedelete_http_sock_t *ngx_http_safedelete_http_sock_add(
    curl_socket_t s);
static void ngx_http_safedelete_http_sock_free(
    ngx_http_safedelete_http_sock_t *sock, ngx_uint_t closed);


static ngx_http_safedelete_http_t  *ngx_http_safedelete_http;


ngx_int_t
ngx_http_safedelete_http_init(ngx_cycle_t *cycle)
{
    ngx_http_safedelete_http_t  *h;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "safedelete: curl_global_init() failed");
        return NGX_ERROR;
    }

    h = ngx_calloc(sizeof(ngx_http_safedelete_http_t), cycle->log);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->multi = curl_multi_init();
    if (h->multi == NULL) {
        ngx_free(h);
        return NGX_ERROR;
    }

    h->log = cycle->log;
    h->dummy.fd = (ngx_socket_t) -1;
    h->timer.handler = ngx_http_safedelete_http_timer_handler;
    h->timer.data = &h->dummy;
    h->timer.log = cycle->log;

    /* transfers in flight are held by their requests' own timers */
    h->timer.cancelable = 1;

    ngx_queue_init(&h->socks);
    ngx_queue_init(&h->ops);

    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION,
                      ngx_http_safedelete_http_socket_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION,
                      ngx_http_safedelete_http_timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);

    /*
     * keep connections to the backend open across requests: curl's
     * default cache follows the handles in flight and, with one call
     * at a time, closes a connection every few deletes
     */
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, 64L);

    ngx_http_safedelete_http = h;

    return NGX_OK;
}


void
ngx_http_safedelete_http_done(void)
{
    ngx_queue_t                      *q;
    ngx_http_safedelete_http_t       *h;
    ngx_http_safedelete_http_op_t    *op;
    ngx_http_safedelete_http_sock_t  *sock;

    h = ngx_http_safedelete_http;
    if (h == NULL) {
        return;
    }

    /* requests are gone by now; background calls are dropped */
    while (!ngx_queue_empty(&h->ops)) {
        q = ngx_queue_head(&h->ops);
        op = ngx_queue_data(q, ngx_http_safedelete_http_op_t, all);
        ngx_http_safedelete_http_op_free(op);
    }

    while (h->nspare) {
        curl_easy_cleanup(h->spare[--h->nspare]);
    }

    curl_multi_cleanup(h->multi);

    while (!ngx_queue_empty(&h->socks)) {
        q = ngx_queue_head(&h->socks);
        sock = ngx_queue_data(q, ngx_http_safedelete_http_sock_t, queue);
        ngx_http_safedelete_http_sock_free(sock, 0);
    }

    if (h->timer.timer_set) {
        ngx_del_timer(&h->timer);
    }

    ngx_free(h);
    ngx_http_safedelete_http = NULL;

    curl_global_cleanup();
}


ngx_http_safedelete_http_op_t *
ngx_http_safedelete_http_start(ngx_http_safedelete_http_request_t *req)
{
    u_char                         *url, *p, *line;
    CURL                           *easy;
    ngx_str_t                      *hdr;
    ngx_uint_t                      i;
    struct curl_slist              *list;
    ngx_http_safedelete_http_t     *h;
    ngx_http_safedelete_http_op_t  *op;

    h = ngx_http_safedelete_http;
    if (h == NULL) {
        return NULL;
    }

    op = ngx_calloc(sizeof(ngx_http_safedelete_http_op_t)
                    + req->url.len + 1 + req->method.len + 1, req->log);
    if (op == NULL) {
        return NULL;
    }

    op->handler = req->handler;
    op->data = req->data;
    op->log = req->log;
    op->max_body = req->max_body ? req->max_body : 8 * 1024 * 1024;
    op->total_count = -1;

    url = (u_char *) (op + 1);
    p = ngx_cpymem(url, req->url.data, req->url.len);
    *p++ = '\0';
    line = p;
    p = ngx_cpymem(p, req->method.data, req->method.len);
    *p = '\0';

    op->url = url;
    op->method = line;

    easy = h->nspare ? h->spare[--h->nspare] : curl_easy_init();
    if (easy == NULL) {
        ngx_free(op);
        return NULL;
    }

    op->easy = easy;
    ngx_queue_insert_tail(&h->ops, &op->all);

    list = curl_slist_append(NULL, "Accept: application/json");
    list = list ? curl_slist_append(list, "Expect:") : NULL;

    if (req->body.len && list) {
        list = curl_slist_append(list, "Content-Type: application/json");
    }

    if (req->headers && list) {
        hdr = req->headers->elts;

        for (i = 0; i < req->headers->nelts && list; i++) {
            /* curl wants NUL-terminated lines */
            p = ngx_alloc(hdr[i].len + 1, req->log);
            if (p == NULL) {
                break;
            }

            ngx_memcpy(p, hdr[i].data, hdr[i].len);
            p[hdr[i].len] = '\0';
            list = curl_slist_append(list, (char *) p);
            ngx_free(p);
        }
    }

    if (list == NULL) {
        goto failed;
    }

    op->headers = list;

    curl_easy_setopt(easy, CURLOPT_URL, (char *) url);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, op);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, op->error);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION,
                     ngx_http_safedelete_http_write_cb);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, op);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION,
                     ngx_http_safedelete_http_header_cb);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, op);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION,
                     ngx_http_safedelete_http_close_cb);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, h);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) req->timeout);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long) req->timeout);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "ngx_safedelete_module");

    if (req->method.len == 3 && ngx_strncmp(line, "GET", 3) == 0) {
        curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);

    } else {
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, (char *) line);

        if (req->body.len) {
            curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE,
                             (long) req->body.len);
            curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS,
                             (char *) req->body.data);
        }
    }

    if (curl_multi_add_handle(h->multi, easy) != CURLM_OK) {
        goto failed;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, req->log, 0,
                   "safedelete: http %V %V", &req->method, &req->url);

    return op;

failed:

    ngx_log_error(NGX_LOG_ERR, req->log, 0,
                  "safedelete: cannot start http call to \"%V\"", &req->url);

    ngx_http_safedelete_http_op_free(op);

    return NULL;
}


void
ngx_http_safedelete_http_cancel(ngx_http_safedelete_http_op_t *op)
{
    ngx_http_safedelete_http_op_free(op);
}


ngx_queue_t *
ngx_http_safedelete_http_queue(ngx_http_safedelete_http_op_t *op)
{
    return &op->queue;
}


ngx_http_safedelete_http_op_t *
ngx_http_safedelete_http_op_from_queue(ngx_queue_t *q)
{
    return ngx_queue_data(q, ngx_http_safedelete_http_op_t, queue);
}


static void
ngx_http_safedelete_http_op_free(ngx_http_safedelete_http_op_t *op)
{
    ngx_http_safedelete_http_t  *h;

    h = ngx_http_safedelete_http;

    if (op->easy) {
        curl_multi_remove_handle(h->multi, op->easy);

        if (h->nspare < NGX_HTTP_SAFEDELETE_HTTP_SPARE) {
            curl_easy_reset(op->easy);
            h->spare[h->nspare++] = op->easy;

        } else {
            curl_easy_cleanup(op->easy);
        }
    }

    if (op->headers) {
        curl_slist_free_all(op->headers);
    }

    if (op->buf) {
        ngx_free(op->buf);
    }

    ngx_queue_remove(&op->all);
    ngx_free(op);
}


static size_t
ngx_http_safedelete_http_write_cb(char *ptr, size_t size, size_t nmemb,
    void *userdata)
{
    u_char                         *buf;
    size_t                          n, want;
    ngx_http_safedelete_http_op_t  *op = userdata;

    n = size * nmemb;

    if (op->len + n > op->max_body) {
        op->too_big = 1;
        return 0;
    }

    if (op->len + n > op->size) {
        want = ngx_max(op->size * 2, op->len + n);
        want = ngx_max(want, 4096);

        buf = ngx_alloc(want, op->log);
        if (buf == NULL) {
            return 0;
        }

        if (op->buf) {
            ngx_memcpy(buf, op->buf, op->len);
            ngx_free(op->buf);
        }

        op->buf = buf;
        op->size = want;
    }

    ngx_memcpy(op->buf + op->len, ptr, n);
    op->len += n;

    return n;
}


static size_t
ngx_http_safedelete_http_header_cb(char *ptr, size_t size, size_t nmemb,
    void *userdata)
{
    u_char                         *p, *last;
    size_t                          n;
    ngx_int_t                       count;
    ngx_http_safedelete_http_op_t  *op = userdata;

    n = size * nmemb;
    p = (u_char *) ptr;
    last = p + n;

    while (last > p && (last[-1] == '\r' || last[-1] == '\n')) {
        last--;
    }

    if (last - p > 14 && ngx_strncasecmp(p, (u_char *) "X-Total-Count:", 14)
                         == 0)
    {
        p += 14;
        while (p < last && *p == ' ') {
            p++;
        }

        count = ngx_atoi(p, last - p);
        op->total_count = count == NGX_ERROR ? -1 : count;

    } else if (last - p > 13
               && ngx_strncasecmp(p, (u_char *) "Content-Type:", 13) == 0)
    {
        p += 13;
        while (p < last && *p == ' ') {
            p++;
        }

        op->content_type_len = ngx_min((size_t) (last - p),
                                       sizeof(op->content_type));
        ngx_memcpy(op->content_type, p, op->content_type_len);
    }

    return n;
}


static int
ngx_http_safedelete_http_socket_cb(CURL *easy, curl_socket_t s, int what,
    void *userp, void *socketp)
{
    ngx_connection_t                 *c;
    ngx_http_safedelete_http_t       *h = userp;
    ngx_http_safedelete_http_sock_t  *sock = socketp;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, h->log, 0,
                   "safedelete: curl socket %d what:%d sock:%p",
                   (int) s, what, sock);

    if (what == CURL_POLL_REMOVE) {
        if (sock) {
            /*
             * curl may have closed a socket that was still connecting
             * without the close callback; the kernel then already took
             * it out of epoll
             */
            ngx_http_safedelete_http_sock_free(sock,
                              fcntl(s, F_GETFD) == -1 && errno == EBADF);
            curl_multi_assign(h->multi, s, NULL);
        }

        return 0;
    }

    if (sock == NULL) {
        sock = ngx_http_safedelete_http_sock_add(s);
        if (sock == NULL) {
            return -1;
        }

        curl_multi_assign(h->multi, s, sock);
    }

    c = sock->conn;

    ngx_http_safedelete_event_want(c->read, what & CURL_POLL_IN);
    ngx_http_safedelete_event_want(c->write, what & CURL_POLL_OUT);

    return 0;
}


static ngx_http_safedelete_http_sock_t *
ngx_http_safedelete_http_sock_add(curl_socket_t s)
{
    ngx_connection_t                 *c;
    ngx_http_safedelete_http_t       *h;
    ngx_http_safedelete_http_sock_t  *sock;

    h = ngx_http_safedelete_http;

    sock = ngx_alloc(sizeof(ngx_http_safedelete_http_sock_t), h->log);
    if (sock == NULL) {
        return NULL;
    }

    c = ngx_http_safedelete_event_wrap(s,
                                       ngx_http_safedelete_http_event_handler,
                                       ngx_http_safedelete_http_event_handler,
                                       sock, h->log);
    if (c == NULL) {
        ngx_free(sock);
        return NULL;
    }

    sock->conn = c;
    sock->fd = s;

    ngx_queue_insert_tail(&h->socks, &sock->queue);

    return sock;
}


/* curl owns the socket: only the nginx side is released here */

static void
ngx_http_safedelete_http_sock_free(ngx_http_safedelete_http_sock_t *sock,
    ngx_uint_t closed)
{
    ngx_http_safedelete_event_unwrap(sock->conn, closed);

    ngx_queue_remove(&sock->queue);
    ngx_free(sock);
}


/* a safety net: curl has closed sockets without CURL_POLL_REMOVE before */

static int
ngx_http_safedelete_http_close_cb(void *clientp, curl_socket_t fd)
{
    ngx_queue_t                      *q;
    ngx_http_safedelete_http_t       *h = clientp;
    ngx_http_safedelete_http_sock_t  *sock;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, h->log, 0,
                   "safedelete: curl closes socket %d", (int) fd);

    for (q = ngx_queue_head(&h->socks);
         q != ngx_queue_sentinel(&h->socks);
         q = ngx_queue_next(q))
    {
        sock = ngx_queue_data(q, ngx_http_safedelete_http_sock_t, queue);

        if (sock->fd == fd) {
            curl_multi_assign(h->multi, fd, NULL);
            ngx_http_safedelete_http_sock_free(sock, 0);
            break;
        }
    }

    return close(fd);
}


static int
ngx_http_safedelete_http_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    ngx_http_safedelete_http_t  *h = userp;

    /* without the delete nginx ignores a shorter re-arm */
    if (h->timer.timer_set) {
        ngx_del_timer(&h->timer);
    }

    if (timeout_ms >= 0) {
        ngx_add_timer(&h->timer, (ngx_msec_t) timeout_ms);
    }

    return 0;
}


static void
ngx_http_safedelete_http_timer_handler(ngx_event_t *ev)
{
    int  running;

    curl_multi_socket_action(ngx_http_safedelete_http->multi,
                             CURL_SOCKET_TIMEOUT, 0, &running);

    ngx_http_safedelete_http_drain();
}


static void
ngx_http_safedelete_http_event_handler(ngx_event_t *ev)
{
    int                               running;
    curl_socket_t                     fd;
    ngx_connection_t                 *c;
    ngx_http_safedelete_http_sock_t  *sock;

    c = ev->data;
    sock = c->data;
    fd = sock->fd;

    /* the wrapper may be freed inside: nothing of it is used after */
    curl_multi_socket_action(ngx_http_safedelete_http->multi, fd,
                             ev->write ? CURL_CSELECT_OUT : CURL_CSELECT_IN,
                             &running);

    ngx_http_safedelete_http_drain();
}


static void
ngx_http_safedelete_http_drain(void)
{
    int                             left;
    CURL                           *easy;
    CURLMsg                        *msg;
    CURLcode                        code;
    ngx_http_safedelete_http_op_t  *op;

    while ((msg = curl_multi_info_read(ngx_http_safedelete_http->multi,
                                       &left)))
    {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        easy = msg->easy_handle;
        code = msg->data.result;
        op = NULL;

        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &op);

        if (op == NULL) {
            continue;
        }

        ngx_http_safedelete_http_complete(op, code);
    }
}


static void
ngx_http_safedelete_http_complete(ngx_http_safedelete_http_op_t *op,
    CURLcode code)
{
    long                                status;
    ngx_http_safedelete_http_pt         handler;
    ngx_http_safedelete_http_result_t   res;

    ngx_memzero(&res, sizeof(ngx_http_safedelete_http_result_t));

    status = 0;
    curl_easy_getinfo(op->easy, CURLINFO_RESPONSE_CODE, &status);

    res.status = (ngx_uint_t) status;
    res.body.data = op->buf;
    res.body.len = op->len;
    res.content_type.data = op->content_type;
    res.content_type.len = op->content_type_len;
    res.total_count = op->total_count;

    if (code == CURLE_OK) {
        res.rc = NGX_OK;

    } else {
        res.rc = NGX_ERROR;
        res.error = op->too_big ? "response body too large"
                                : (op->error[0] ? op->error
                                                : curl_easy_strerror(code));
    }

    handler = op->handler;

    /* the handler only records the result; it never re-enters curl here */
    if (handler) {
        handler(op->data, &res);

    } else if (res.rc != NGX_OK || res.status < 200 || res.status > 299) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "safedelete: background %s %s failed: %ui %s",
                      op->method, op->url, res.status,
                      res.error ? res.error : "");
    }

    ngx_http_safedelete_http_op_free(op);
}
