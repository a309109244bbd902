/*
 * Copyright (C) ngx_safedelete_module authors
 *
 * The module's own HTTP calls: libcurl's multi socket API driven by
 * nginx events and timers, one multi handle per worker.
 */


#ifndef _NGX_HTTP_SAFEDELETE_HTTP_H_INCLUDED_
#define _NGX_HTTP_SAFEDELETE_HTTP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


typedef struct {
    ngx_int_t                    rc;          /* NGX_OK: an HTTP answer */
    ngx_uint_t                   status;
    ngx_str_t                    body;        /* valid during the callback */
    ngx_str_t                    content_type;
    ngx_int_t                    total_count; /* X-Total-Count, or -1 */
    const char                  *error;
} ngx_http_safedelete_http_result_t;


typedef void (*ngx_http_safedelete_http_pt)(void *data,
    ngx_http_safedelete_http_result_t *res);


typedef struct {
    ngx_str_t                    method;
    ngx_str_t                    url;
    ngx_str_t                    body;        /* sent when method has one */
    ngx_array_t                 *headers;     /* ngx_str_t "Name: value" */
    ngx_msec_t                   timeout;
    size_t                       max_body;
    ngx_http_safedelete_http_pt  handler;
    void                        *data;
    ngx_log_t                   *log;
} ngx_http_safedelete_http_request_t;


typedef struct ngx_http_safedelete_http_op_s  ngx_http_safedelete_http_op_t;


ngx_int_t ngx_http_safedelete_http_init(ngx_cycle_t *cycle);
void ngx_http_safedelete_http_done(void);

ngx_http_safedelete_http_op_t *ngx_http_safedelete_http_start(
    ngx_http_safedelete_http_request_t *req);
void ngx_http_safedelete_http_cancel(ngx_http_safedelete_http_op_t *op);
ngx_queue_t *ngx_http_safedelete_http_queue(
    ngx_http_safedelete_http_op_t *op);
ngx_http_safedelete_http_op_t *ngx_http_safedelete_http_op_from_queue(
    ngx_queue_t *q);


#endif /* _NGX_HTTP_SAFEDELETE_HTTP_H_INCLUDED_ */
