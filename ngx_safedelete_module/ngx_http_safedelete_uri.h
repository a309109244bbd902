/*
 * Copyright (C) ngx_safedelete_module authors
 *
 * Where a record lives: the request URI mapped onto safedelete_upstream
 * the way proxy_pass maps it, the record id and its collection.
 */


#ifndef _NGX_HTTP_SAFEDELETE_URI_H_INCLUDED_
#define _NGX_HTTP_SAFEDELETE_URI_H_INCLUDED_


#include "ngx_http_safedelete.h"


char *ngx_http_safedelete_uri_upstream(ngx_conf_t *cf,
    ngx_http_safedelete_loc_conf_t *sdlcf);
ngx_int_t ngx_http_safedelete_uri_identify(ngx_http_safedelete_ctx_t *ctx);
ngx_int_t ngx_http_safedelete_uri_resolve(ngx_http_request_t *r,
    ngx_http_safedelete_loc_conf_t *sdlcf, ngx_str_t *rel, ngx_str_t *url);


#endif /* _NGX_HTTP_SAFEDELETE_URI_H_INCLUDED_ */
