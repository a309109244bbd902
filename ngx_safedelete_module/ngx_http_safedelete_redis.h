/*
 * Copyright (C) ngx_safedelete_module authors
 *
 * hiredis' async API driven by nginx events: one connection per worker,
 * re-established with backoff after Redis goes away.
 */


#ifndef _NGX_HTTP_SAFEDELETE_REDIS_H_INCLUDED_
#define _NGX_HTTP_SAFEDELETE_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>


typedef struct {
    ngx_str_t                         url;
    ngx_str_t                         host;
    ngx_str_t                         unix_path;
    ngx_int_t                         port;
    ngx_str_t                         password;
    ngx_int_t                         db;
    ngx_msec_t                        timeout;
} ngx_http_safedelete_redis_conf_t;


typedef struct ngx_http_safedelete_redis_op_s
    ngx_http_safedelete_redis_op_t;

typedef void (*ngx_http_safedelete_redis_reply_pt)(
    ngx_http_safedelete_redis_op_t *op, redisReply *reply);


typedef struct {
    ngx_str_t                         text;
    u_char                            sha[41];
} ngx_http_safedelete_redis_script_t;


struct ngx_http_safedelete_redis_op_s {
    /* set by the caller: parses the reply, may be NULL */
    ngx_http_safedelete_redis_reply_pt  reply_handler;
    void                               *handler;
    void                               *data;

    /* free for the owner of the op, e.g. a request's list of pending ops */
    ngx_queue_t                         queue;

    /* kept to re-send a script as EVAL after NOSCRIPT */
    ngx_http_safedelete_redis_script_t *script;
    int                                 argc;
    char                              **argv;
    size_t                             *argvlen;
};


ngx_int_t ngx_http_safedelete_redis_parse_url(ngx_conf_t *cf,
    ngx_str_t *url, ngx_http_safedelete_redis_conf_t *rcf);
void ngx_http_safedelete_redis_script_init(
    ngx_http_safedelete_redis_script_t *script, const char *text);

ngx_int_t ngx_http_safedelete_redis_init(ngx_cycle_t *cycle,
    ngx_http_safedelete_redis_conf_t *rcf);
void ngx_http_safedelete_redis_done(void);
ngx_uint_t ngx_http_safedelete_redis_available(void);

ngx_http_safedelete_redis_op_t *ngx_http_safedelete_redis_command(
    int argc, const char **argv, const size_t *argvlen,
    ngx_http_safedelete_redis_reply_pt reply_handler, void *handler,
    void *data);
ngx_http_safedelete_redis_op_t *ngx_http_safedelete_redis_eval(
    ngx_http_safedelete_redis_script_t *script, int nkeys, int argc,
    const char **argv, const size_t *argvlen,
    ngx_http_safedelete_redis_reply_pt reply_handler, void *handler,
    void *data);
void ngx_http_safedelete_redis_cancel(ngx_http_safedelete_redis_op_t *op);


#endif /* _NGX_HTTP_SAFEDELETE_REDIS_H_INCLUDED_ */
