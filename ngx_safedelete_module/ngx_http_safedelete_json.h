/*
 * Copyright (C) ngx_safedelete_module authors
 *
 * JSON without I/O: body templates, snapshot fields, problem documents.
 */


#ifndef _NGX_HTTP_SAFEDELETE_JSON_H_INCLUDED_
#define _NGX_HTTP_SAFEDELETE_JSON_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>


ngx_int_t ngx_http_safedelete_json_own(ngx_pool_t *pool, json_t *json);
json_t *ngx_http_safedelete_json_parse(ngx_pool_t *pool, ngx_str_t *text,
    ngx_log_t *log);
ngx_int_t ngx_http_safedelete_json_dump(ngx_pool_t *pool, json_t *json,
    ngx_str_t *out);
ngx_int_t ngx_http_safedelete_json_apply(ngx_http_request_t *r,
    json_t *obj, ngx_array_t *fields);
ngx_int_t ngx_http_safedelete_json_set_str(json_t *obj, const char *name,
    ngx_str_t *value);
ngx_int_t ngx_http_safedelete_json_revert(json_t *revert, json_t *changes,
    json_t *original);
json_t *ngx_http_safedelete_json_get(json_t *obj, ngx_str_t *name);
ngx_int_t ngx_http_safedelete_json_text(ngx_pool_t *pool, json_t *value,
    ngx_str_t *out);

ngx_int_t ngx_http_safedelete_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *content_type, ngx_str_t *body);
ngx_int_t ngx_http_safedelete_send_problem(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *code, ngx_str_t *detail, json_t *extra);


#endif /* _NGX_HTTP_SAFEDELETE_JSON_H_INCLUDED_ */
