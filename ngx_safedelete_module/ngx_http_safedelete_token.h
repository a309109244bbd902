/*
 * Copyright (C) ngx_safedelete_module authors
 *
 * Tokens without I/O: random ids, base64url, HMAC, constant-time compare.
 */


#ifndef _NGX_HTTP_SAFEDELETE_TOKEN_H_INCLUDED_
#define _NGX_HTTP_SAFEDELETE_TOKEN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* 128 random bits in unpadded base64url */
#define NGX_HTTP_SAFEDELETE_TOKEN_LEN  22


ngx_int_t ngx_http_safedelete_token_random(ngx_pool_t *pool, ngx_str_t *out);
ngx_uint_t ngx_http_safedelete_token_valid(ngx_str_t *token);
void ngx_http_safedelete_token_base64url(ngx_str_t *dst, ngx_str_t *src);
ngx_int_t ngx_http_safedelete_token_hmac(ngx_str_t *key, ngx_str_t *msg,
    u_char *md);
ngx_uint_t ngx_http_safedelete_token_equal(u_char *a, u_char *b,
    size_t len);


#endif /* _NGX_HTTP_SAFEDELETE_TOKEN_H_INCLUDED_ */
