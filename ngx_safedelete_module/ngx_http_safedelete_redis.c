/*
 * Copyright (C) ngx_safedelete_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <openssl/sha.h>

#include "ngx_http_safedelete_event.h"
#include "ngx_http_safedelete_redis.h"


#define NGX_HTTP_SAFEDELETE_REDIS_BACKOFF_MIN   50
#define NGX_HTTP_SAFEDELETE_REDIS_BACKOFF_MAX   1000


typedef enum {
    NGX_HTTP_SAFEDELETE_REDIS_IDLE = 0,
    NGX_HTTP_SAFEDELETE_REDIS_CONNECTING,
    NGX_HTTP_SAFEDELETE_REDIS_READY
} ngx_http_safedelete_redis_state_e;


typedef struct {
    ngx_http_safedelete_redis_conf_t  *conf;
    ngx_log_t                         *log;
    redisAsyncContext                 *ac;
    ngx_connection_t                  *conn;
    ngx_http_safedelete_redis_state_e  state;
    ngx_uint_t                         pending;
    ngx_msec_t                         backoff;

    /* wakes the reconnect; cancelable, so it never delays a worker exit */
    ngx_event_t                        reconnect;

    /*
     * armed while replies are outstanding: not cancelable, so a worker
     * that is shutting down first receives what it wrote (audit entries),
     * and a Redis that stops answering is dropped after the timeout
     */
    ngx_event_t                        guard;

    /* a timer's data must look like a connection */
    ngx_connection_t                   dummy;
} ngx_http_safedelete_redis_t;


static void ngx_http_safedelete_redis_connect(void);
static void ngx_http_safedelete_redis_drop(const char *reason);
static void ngx_http_safedelete_redis_schedule(void);
static void ngx_http_safedelete_redis_reconnect_handler(ngx_event_t *ev);
static void ngx_http_safedelete_redis_guard_handler(ngx_event_t *ev);
static void ngx_http_safedelete_redis_connected(const redisAsyncContext *ac,
    int status);
static void ngx_http_safedelete_redis_disconnected(
    const redisAsyncContext *ac, int status);
static void ngx_http_safedelete_redis_setup_reply(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_http_safedelete_redis_reply(redisAsyncContext *ac,
    void *reply, void *privdata);
static ngx_int_t ngx_http_safedelete_redis_send(
    ngx_http_safedelete_redis_op_t *op);
static void ngx_http_safedelete_redis_pending_inc(void);
static void ngx_http_safedelete_redis_pending_dec(void);

static void ngx_http_safedelete_redis_add_read(void *privdata);
static void ngx_http_safedelete_redis_del_read(void *privdata);
static void ngx_http_safedelete_redis_add_write(void *privdata);
static void ngx_http_safedelete_redis_del_write(void *privdata);
static void ngx_http_safedelete_redis_cleanup(void *privdata);
static void ngx_http_safedelete_redis_read_handler(ngx_event_t *ev);
static void ngx_http_safedelete_redis_write_handler(ngx_event_t *ev);


static ngx_http_safedelete_redis_t  *ngx_http_safedelete_redis;


ngx_int_t
ngx_http_safedelete_redis_parse_url(ngx_conf_t *cf, ngx_str_t *url,
    ngx_http_safedelete_redis_conf_t *rcf)
{
    u_char  *p, *last, *at, *colon, *slash;

    rcf->url = *url;
    rcf->port = 6379;
    rcf->db = 0;

    p = url->data;
    last = url->data + url->len;

    if (url->len > 5 && ngx_strncmp(p, "unix:", 5) == 0) {
        /* "unix:/run/redis.sock", or the URL form with an empty host */
        p += 5;

        if (last - p > 2 && p[0] == '/' && p[1] == '/' && p[2] == '/') {
            p += 2;
        }

        if (p == last || *p != '/') {
            return NGX_ERROR;
        }

        rcf->unix_path.len = last - p;
        rcf->unix_path.data = ngx_pnalloc(cf->pool, rcf->unix_path.len + 1);
        if (rcf->unix_path.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(rcf->unix_path.data, p, rcf->unix_path.len);
        rcf->unix_path.data[rcf->unix_path.len] = '\0';

        return NGX_OK;
    }

    if (url->len < 9 || ngx_strncmp(p, "redis://", 8) != 0) {
        return NGX_ERROR;
    }

    p += 8;

    at = ngx_strlchr(p, last, '@');

    if (at) {
        colon = ngx_strlchr(p, at, ':');
        rcf->password.data = colon ? colon + 1 : p;
        rcf->password.len = at - rcf->password.data;
        p = at + 1;
    }

    slash = ngx_strlchr(p, last, '/');

    if (slash) {
        if (slash + 1 < last) {
            rcf->db = ngx_atoi(slash + 1, last - slash - 1);
            if (rcf->db == NGX_ERROR) {
                return NGX_ERROR;
            }
        }

        last = slash;
    }

    colon = ngx_strlchr(p, last, ':');

    if (colon) {
        rcf->port = ngx_atoi(colon + 1, last - colon - 1);
        if (rcf->port < 1 || rcf->port > 65535) {
            return NGX_ERROR;
        }

        last = colon;
    }

    if (p == last) {
        return NGX_ERROR;
    }

    /* hiredis wants a NUL-terminated host */
    rcf->host.len = last - p;
    rcf->host.data = ngx_pnalloc(cf->pool, rcf->host.len + 1);
    if (rcf->host.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(rcf->host.data, p, rcf->host.len);
    rcf->host.data[rcf->host.len] = '\0';

    if (rcf->password.len) {
        p = ngx_pnalloc(cf->pool, rcf->password.len + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(p, rcf->password.data, rcf->password.len);
        p[rcf->password.len] = '\0';
        rcf->password.data = p;
    }

    return NGX_OK;
}


void
ngx_http_safedelete_redis_script_init(
    ngx_http_safedelete_redis_script_t *script, const char *text)
{
    u_char  md[SHA_DIGEST_LENGTH];

    script->text.data = (u_char *) text;
    script->text.len = ngx_strlen(text);

    SHA1((u_char *) text, script->text.len, md);
    ngx_hex_dump(script->sha, md, SHA_DIGEST_LENGTH);
    script->sha[40] = '\0';
}


ngx_int_t
ngx_http_safedelete_redis_init(ngx_cycle_t *cycle,
    ngx_http_safedelete_redis_conf_t *rcf)
{
    ngx_http_safedelete_redis_t  *rd;

    rd = ngx_calloc(sizeof(ngx_http_safedelete_redis_t), cycle->log);
    if (rd == NULL) {
        return NGX_ERROR;
    }

    rd->conf = rcf;
    rd->log = cycle->log;
    rd->backoff = NGX_HTTP_SAFEDELETE_REDIS_BACKOFF_MIN;

    rd->dummy.fd = (ngx_socket_t) -1;

    rd->reconnect.handler = ngx_http_safedelete_redis_reconnect_handler;
    rd->reconnect.data = &rd->dummy;
    rd->reconnect.log = cycle->log;
    rd->reconnect.cancelable = 1;

    rd->guard.handler = ngx_http_safedelete_redis_guard_handler;
    rd->guard.data = &rd->dummy;
    rd->guard.log = cycle->log;

    ngx_http_safedelete_redis = rd;

    ngx_http_safedelete_redis_connect();

    return NGX_OK;
}


void
ngx_http_safedelete_redis_done(void)
{
    ngx_http_safedelete_redis_t  *rd;

    rd = ngx_http_safedelete_redis;
    if (rd == NULL) {
        return;
    }

    if (rd->reconnect.timer_set) {
        ngx_del_timer(&rd->reconnect);
    }

    if (rd->guard.timer_set) {
        ngx_del_timer(&rd->guard);
    }

    if (rd->ac) {
        /* pending callbacks run with a NULL reply and free their ops */
        redisAsyncFree(rd->ac);
        rd->ac = NULL;
    }

    ngx_http_safedelete_redis = NULL;
    ngx_free(rd);
}


ngx_uint_t
ngx_http_safedelete_redis_available(void)
{
    return ngx_http_safedelete_redis != NULL
           && ngx_http_safedelete_redis->ac != NULL;
}


static void
ngx_http_safedelete_redis_connect(void)
{
    u_char                        db[NGX_INT_T_LEN];
    const char                   *argv[2];
    size_t                        argvlen[2];
    redisAsyncContext            *ac;
    ngx_connection_t             *c;
    ngx_http_safedelete_redis_t  *rd;

    rd = ngx_http_safedelete_redis;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (rd->conf->unix_path.len) {
        ac = redisAsyncConnectUnix((char *) rd->conf->unix_path.data);

    } else {
        ac = redisAsyncConnect((char *) rd->conf->host.data,
                               (int) rd->conf->port);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "safedelete: redis context allocation failed");
        ngx_http_safedelete_redis_schedule();
        return;
    }

    if (ac->err) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "safedelete: redis connect to \"%V\" failed: %s",
                      &rd->conf->url, ac->errstr);
        redisAsyncFree(ac);
        ngx_http_safedelete_redis_schedule();
        return;
    }

    c = ngx_http_safedelete_event_wrap(ac->c.fd,
                                       ngx_http_safedelete_redis_read_handler,
                                       ngx_http_safedelete_redis_write_handler,
                                       ac, rd->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        ngx_http_safedelete_redis_schedule();
        return;
    }

    rd->ac = ac;
    rd->conn = c;
    rd->state = NGX_HTTP_SAFEDELETE_REDIS_CONNECTING;

    ac->data = rd;
    ac->ev.data = c;
    ac->ev.addRead = ngx_http_safedelete_redis_add_read;
    ac->ev.delRead = ngx_http_safedelete_redis_del_read;
    ac->ev.addWrite = ngx_http_safedelete_redis_add_write;
    ac->ev.delWrite = ngx_http_safedelete_redis_del_write;
    ac->ev.cleanup = ngx_http_safedelete_redis_cleanup;

    /* the hooks must be in place before this: it arms the write event */
    redisAsyncSetConnectCallback(ac, ngx_http_safedelete_redis_connected);
    redisAsyncSetDisconnectCallback(ac,
                                    ngx_http_safedelete_redis_disconnected);

    /* queued before any caller's command, so they run first */
    if (rd->conf->password.len) {
        argv[0] = "AUTH";
        argvlen[0] = 4;
        argv[1] = (char *) rd->conf->password.data;
        argvlen[1] = rd->conf->password.len;

        ngx_http_safedelete_redis_pending_inc();
        redisAsyncCommandArgv(ac, ngx_http_safedelete_redis_setup_reply,
                              NULL, 2, argv, argvlen);
    }

    if (rd->conf->db) {
        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = (char *) db;
        argvlen[1] = ngx_sprintf(db, "%i", rd->conf->db) - db;

        ngx_http_safedelete_redis_pending_inc();
        redisAsyncCommandArgv(ac, ngx_http_safedelete_redis_setup_reply,
                              NULL, 2, argv, argvlen);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rd->log, 0,
                   "safedelete: redis connecting to \"%V\"", &rd->conf->url);
}


static void
ngx_http_safedelete_redis_connected(const redisAsyncContext *ac, int status)
{
    ngx_http_safedelete_redis_t  *rd;

    rd = ngx_http_safedelete_redis;

    if (rd == NULL || rd->ac != ac) {
        return;
    }

    if (status != REDIS_OK) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "safedelete: redis connect to \"%V\" failed: %s",
                      &rd->conf->url, ac->errstr);

        /* hiredis frees the context itself after this callback */
        rd->ac = NULL;
        rd->conn = NULL;
        rd->state = NGX_HTTP_SAFEDELETE_REDIS_IDLE;
        ngx_http_safedelete_redis_schedule();
        return;
    }

    rd->state = NGX_HTTP_SAFEDELETE_REDIS_READY;
    rd->backoff = NGX_HTTP_SAFEDELETE_REDIS_BACKOFF_MIN;

    ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                  "safedelete: redis connected to \"%V\"", &rd->conf->url);
}


static void
ngx_http_safedelete_redis_disconnected(const redisAsyncContext *ac,
    int status)
{
    ngx_http_safedelete_redis_t  *rd;

    rd = ngx_http_safedelete_redis;

    if (rd == NULL || rd->ac != ac) {
        return;
    }

    if (status != REDIS_OK) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "safedelete: redis connection to \"%V\" lost: %s",
                      &rd->conf->url, ac->errstr);
    }

    /* hiredis frees the context after this callback */
    rd->ac = NULL;
    rd->conn = NULL;
    rd->state = NGX_HTTP_SAFEDELETE_REDIS_IDLE;

    ngx_http_safedelete_redis_schedule();
}


static void
ngx_http_safedelete_redis_schedule(void)
{
    ngx_http_safedelete_redis_t  *rd;

    rd = ngx_http_safedelete_redis;

    if (ngx_exiting || ngx_terminate || ngx_quit || rd->reconnect.timer_set)
    {
        return;
    }

    ngx_add_timer(&rd->reconnect, rd->backoff);

    rd->backoff *= 2;
    if (rd->backoff > NGX_HTTP_SAFEDELETE_REDIS_BACKOFF_MAX) {
        rd->backoff = NGX_HTTP_SAFEDELETE_REDIS_BACKOFF_MAX;
    }
}


static void
ngx_http_safedelete_redis_reconnect_handler(ngx_event_t *ev)
{
    if (ngx_http_safedelete_redis == NULL
        || ngx_http_safedelete_redis->ac != NULL)
    {
        return;
    }

    ngx_http_safedelete_redis_connect();
}


/* called outside hiredis callbacks only: it frees the context */

static void
ngx_http_safedelete_redis_drop(const char *reason)
{
    redisAsyncContext            *ac;
    ngx_http_safedelete_redis_t  *rd;

    rd = ngx_http_safedelete_redis;
    ac = rd->ac;

    if (ac == NULL) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                  "safedelete: dropping redis connection to \"%V\": %s",
                  &rd->conf->url, reason);

    rd->ac = NULL;
    rd->conn = NULL;
    rd->state = NGX_HTTP_SAFEDELETE_REDIS_IDLE;

    redisAsyncFree(ac);

    ngx_http_safedelete_redis_schedule();
}


static void
ngx_http_safedelete_redis_guard_handler(ngx_event_t *ev)
{
    ngx_http_safedelete_redis_drop("no reply within the timeout");
}


static void
ngx_http_safedelete_redis_pending_inc(void)
{
    ngx_http_safedelete_redis_t  *rd;

    rd = ngx_http_safedelete_redis;

    if (rd->pending++ == 0) {
        ngx_add_timer(&rd->guard, rd->conf->timeout);
    }
}


static void
ngx_http_safedelete_redis_pending_dec(void)
{
    ngx_http_safedelete_redis_t  *rd;

    rd = ngx_http_safedelete_redis;

    if (rd == NULL || rd->pending == 0) {
        return;
    }

    if (--rd->pending == 0 && rd->guard.timer_set) {
        ngx_del_timer(&rd->guard);

    } else if (rd->guard.timer_set) {
        /* progress: restart the clock for the remaining replies */
        ngx_del_timer(&rd->guard);
        ngx_add_timer(&rd->guard, rd->conf->timeout);
    }
}


static void
ngx_http_safedelete_redis_setup_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply                   *r;
    ngx_http_safedelete_redis_t  *rd;

    ngx_http_safedelete_redis_pending_dec();

    rd = ngx_http_safedelete_redis;
    r = reply;

    if (rd != NULL && r != NULL && r->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "safedelete: redis \"%V\" refused setup: %s",
                      &rd->conf->url, r->str);
    }
}


ngx_http_safedelete_redis_op_t *
ngx_http_safedelete_redis_command(int argc, const char **argv,
    const size_t *argvlen, ngx_http_safedelete_redis_reply_pt reply_handler,
    void *handler, void *data)
{
    ngx_http_safedelete_redis_op_t  *op;

    if (!ngx_http_safedelete_redis_available()) {
        return NULL;
    }

    op = ngx_calloc(sizeof(ngx_http_safedelete_redis_op_t),
                    ngx_http_safedelete_redis->log);
    if (op == NULL) {
        return NULL;
    }

    op->reply_handler = reply_handler;
    op->handler = handler;
    op->data = data;

    if (redisAsyncCommandArgv(ngx_http_safedelete_redis->ac,
                              ngx_http_safedelete_redis_reply, op,
                              argc, argv, argvlen)
        != REDIS_OK)
    {
        ngx_free(op);
        return NULL;
    }

    ngx_http_safedelete_redis_pending_inc();

    return op;
}


ngx_http_safedelete_redis_op_t *
ngx_http_safedelete_redis_eval(ngx_http_safedelete_redis_script_t *script,
    int nkeys, int argc, const char **argv, const size_t *argvlen,
    ngx_http_safedelete_redis_reply_pt reply_handler, void *handler,
    void *data)
{
    int                              i, n;
    u_char                          *p;
    size_t                           size;
    ngx_http_safedelete_redis_op_t  *op;

    if (!ngx_http_safedelete_redis_available()) {
        return NULL;
    }

    n = argc + 3;

    size = sizeof(ngx_http_safedelete_redis_op_t)
           + n * (sizeof(char *) + sizeof(size_t)) + NGX_INT_T_LEN;

    for (i = 0; i < argc; i++) {
        size += argvlen[i];
    }

    /* one block: the op and its own copy of the arguments */
    op = ngx_calloc(size, ngx_http_safedelete_redis->log);
    if (op == NULL) {
        return NULL;
    }

    op->reply_handler = reply_handler;
    op->handler = handler;
    op->data = data;
    op->script = script;
    op->argc = n;
    op->argv = (char **) (op + 1);
    op->argvlen = (size_t *) (op->argv + n);

    p = (u_char *) (op->argvlen + n);

    op->argv[0] = "EVALSHA";
    op->argvlen[0] = 7;
    op->argv[1] = (char *) script->sha;
    op->argvlen[1] = 40;
    op->argv[2] = (char *) p;
    p = ngx_sprintf(p, "%d", nkeys);
    op->argvlen[2] = p - (u_char *) op->argv[2];

    for (i = 0; i < argc; i++) {
        op->argv[i + 3] = (char *) p;
        op->argvlen[i + 3] = argvlen[i];
        p = ngx_cpymem(p, argv[i], argvlen[i]);
    }

    if (ngx_http_safedelete_redis_send(op) != NGX_OK) {
        ngx_free(op);
        return NULL;
    }

    return op;
}


static ngx_int_t
ngx_http_safedelete_redis_send(ngx_http_safedelete_redis_op_t *op)
{
    if (redisAsyncCommandArgv(ngx_http_safedelete_redis->ac,
                              ngx_http_safedelete_redis_reply, op,
                              op->argc, (const char **) op->argv,
                              op->argvlen)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_safedelete_redis_pending_inc();

    return NGX_OK;
}


void
ngx_http_safedelete_redis_cancel(ngx_http_safedelete_redis_op_t *op)
{
    /* hiredis still owns the callback: the op is freed when it runs */
    op->handler = NULL;
    op->data = NULL;
}


static void
ngx_http_safedelete_redis_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply                      *r;
    ngx_http_safedelete_redis_op_t  *op;

    op = privdata;
    r = reply;

    ngx_http_safedelete_redis_pending_dec();

    if (r != NULL
        && r->type == REDIS_REPLY_ERROR
        && op->script != NULL
        && ngx_strncmp(op->argv[0], "EVALSHA", 7) == 0
        && ngx_strncmp(r->str, "NOSCRIPT", 8) == 0
        && ngx_http_safedelete_redis_available())
    {
        /* the script cache was flushed or Redis restarted: send the text */
        op->argv[0] = "EVAL";
        op->argvlen[0] = 4;
        op->argv[1] = (char *) op->script->text.data;
        op->argvlen[1] = op->script->text.len;

        if (ngx_http_safedelete_redis_send(op) == NGX_OK) {
            return;
        }
    }

    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "safedelete: redis error: %s", r->str);
    }

    if (op->reply_handler && op->handler) {
        op->reply_handler(op, r);
    }

    ngx_free(op);
}


static void
ngx_http_safedelete_redis_add_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    ngx_http_safedelete_event_want(c->read, 1);
}


static void
ngx_http_safedelete_redis_del_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    ngx_http_safedelete_event_want(c->read, 0);
}


static void
ngx_http_safedelete_redis_add_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    ngx_http_safedelete_event_want(c->write, 1);
}


static void
ngx_http_safedelete_redis_del_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    ngx_http_safedelete_event_want(c->write, 0);
}


/* hiredis closes the socket itself: release only the nginx side */

static void
ngx_http_safedelete_redis_cleanup(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c == NULL) {
        return;
    }

    ngx_http_safedelete_event_unwrap(c, 0);

    if (ngx_http_safedelete_redis != NULL
        && ngx_http_safedelete_redis->conn == c)
    {
        ngx_http_safedelete_redis->conn = NULL;
    }
}


static void
ngx_http_safedelete_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    if (c->close) {
        /* worker_shutdown_timeout: give up on what is outstanding */
        ngx_http_safedelete_redis_drop("worker is shutting down");
        return;
    }

    redisAsyncHandleRead(c->data);
}


static void
ngx_http_safedelete_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    if (c->close) {
        ngx_http_safedelete_redis_drop("worker is shutting down");
        return;
    }

    redisAsyncHandleWrite(c->data);
}
