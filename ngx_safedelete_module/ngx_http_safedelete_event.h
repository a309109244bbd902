/*
 * Copyright (C) ngx_safedelete_module authors
 *
 * Sockets that a library owns (hiredis, libcurl), watched by nginx.
 */


#ifndef _NGX_HTTP_SAFEDELETE_EVENT_H_INCLUDED_
#define _NGX_HTTP_SAFEDELETE_EVENT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>


ngx_connection_t *ngx_http_safedelete_event_wrap(ngx_socket_t fd,
    ngx_event_handler_pt read, ngx_event_handler_pt write, void *data,
    ngx_log_t *log);
void ngx_http_safedelete_event_want(ngx_event_t *ev, ngx_uint_t want);
void ngx_http_safedelete_event_unwrap(ngx_connection_t *c,
    ngx_uint_t closed);


#endif /* _NGX_HTTP_SAFEDELETE_EVENT_H_INCLUDED_ */
