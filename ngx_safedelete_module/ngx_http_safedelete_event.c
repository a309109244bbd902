/*
 * Copyright (C) ngx_safedelete_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_safedelete_event.h"


ngx_connection_t *
ngx_http_safedelete_event_wrap(ngx_socket_t fd, ngx_event_handler_pt read,
    ngx_event_handler_pt write, void *data, ngx_log_t *log)
{
    ngx_connection_t  *c;

    c = ngx_get_connection(fd, log);
    if (c == NULL) {
        return NULL;
    }

    c->data = data;
    c->log = log;
    c->read->log = log;
    c->write->log = log;
    c->read->handler = read;
    c->write->handler = write;

    return c;
}


/*
 * level-triggered: hiredis reads at most 16 KiB a call and curl what it
 * needs, so an edge would be lost with data still waiting
 */

void
ngx_http_safedelete_event_want(ngx_event_t *ev, ngx_uint_t want)
{
    ngx_uint_t  event;

    event = ev->write ? NGX_WRITE_EVENT : NGX_READ_EVENT;

    if (want && !ev->active) {
        (void) ngx_add_event(ev, event, NGX_LEVEL_EVENT);

    } else if (!want && ev->active) {
        (void) ngx_del_event(ev, event, 0);
    }
}


/*
 * the library closes the socket itself: only the nginx side goes; a
 * socket it already closed left epoll with it
 */

void
ngx_http_safedelete_event_unwrap(ngx_connection_t *c, ngx_uint_t closed)
{
    ngx_uint_t  flags;

    flags = closed ? NGX_CLOSE_EVENT : 0;

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, flags);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, flags);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;
}
