/*
 * Copyright (C) ngx_safedelete_module authors
 *
 * What the module keeps: undo records and the audit stream.  The request
 * flow sees only these calls, so another store can replace Redis.
 */


#ifndef _NGX_HTTP_SAFEDELETE_STORE_H_INCLUDED_
#define _NGX_HTTP_SAFEDELETE_STORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * rc: NGX_OK, NGX_DECLINED (no such record) or NGX_ERROR (store down);
 * str and fields are valid during the call only
 */
typedef void (*ngx_http_safedelete_store_pt)(void *data, ngx_int_t rc,
    ngx_str_t *str, ngx_keyval_t *fields, ngx_uint_t nfields);


void ngx_http_safedelete_store_configure(ngx_str_t *prefix,
    ngx_uint_t audit_maxlen);
ngx_uint_t ngx_http_safedelete_store_available(void);

void *ngx_http_safedelete_store_undo_put(ngx_str_t *token,
    ngx_keyval_t *fields, ngx_uint_t nfields, ngx_msec_t ttl,
    ngx_http_safedelete_store_pt handler, void *data);
void *ngx_http_safedelete_store_undo_get(ngx_str_t *token,
    ngx_http_safedelete_store_pt handler, void *data);
void *ngx_http_safedelete_store_undo_transition(ngx_str_t *token,
    const char *from, const char *to, int64_t not_after_ms,
    ngx_http_safedelete_store_pt handler, void *data);
void ngx_http_safedelete_store_undo_delete(ngx_str_t *token);
void *ngx_http_safedelete_store_confirm_use(ngx_str_t *sig, ngx_msec_t ttl,
    ngx_http_safedelete_store_pt handler, void *data);
void ngx_http_safedelete_store_audit(ngx_keyval_t *fields,
    ngx_uint_t nfields);
void ngx_http_safedelete_store_cancel(void *op);


#endif /* _NGX_HTTP_SAFEDELETE_STORE_H_INCLUDED_ */
