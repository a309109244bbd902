/*
 * Copyright (C) ngx_safedelete_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_safedelete.h"
#include "ngx_http_safedelete_uri.h"


static ngx_int_t ngx_http_safedelete_uri_check_id(
    ngx_http_safedelete_ctx_t *ctx, ngx_str_t *id);
static ngx_int_t ngx_http_safedelete_uri_join(ngx_pool_t *pool,
    ngx_str_t *origin, ngx_str_t *path, ngx_uint_t escape, ngx_str_t *url);
static size_t ngx_http_safedelete_uri_escape(u_char *dst, u_char *src,
    size_t size);


char *
ngx_http_safedelete_uri_upstream(ngx_conf_t *cf,
    ngx_http_safedelete_loc_conf_t *sdlcf)
{
    u_char     *p, *last, *slash;
    ngx_str_t  *url;

    url = &sdlcf->upstream;
    p = url->data;
    last = p + url->len;

    if (url->len > 7 && ngx_strncasecmp(p, (u_char *) "http://", 7) == 0) {
        p += 7;

    } else if (url->len > 8
               && ngx_strncasecmp(p, (u_char *) "https://", 8) == 0)
    {
        p += 8;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "safedelete_upstream \"%V\" must start with "
                           "\"http://\" or \"https://\"", url);
        return NGX_CONF_ERROR;
    }

    slash = ngx_strlchr(p, last, '/');

    if (slash == p) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "safedelete_upstream \"%V\" has no host", url);
        return NGX_CONF_ERROR;
    }

    sdlcf->upstream_origin.data = url->data;

    if (slash == NULL) {
        sdlcf->upstream_origin.len = url->len;
        ngx_str_null(&sdlcf->upstream_path);
        sdlcf->upstream_has_uri = 0;
        return NGX_CONF_OK;
    }

    sdlcf->upstream_origin.len = slash - url->data;
    sdlcf->upstream_path.data = slash;
    sdlcf->upstream_path.len = last - slash;
    sdlcf->upstream_has_uri = 1;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_safedelete_uri_identify(ngx_http_safedelete_ctx_t *ctx)
{
    u_char                          *p, *last;
    ngx_str_t                        mapped, tail, id, rel, path, base;
    ngx_str_t                       *prefix;
    ngx_http_request_t              *r;
    ngx_http_safedelete_loc_conf_t  *sdlcf;

    r = ctx->request;
    sdlcf = ctx->policy;

    prefix = &sdlcf->upstream_prefix;

    /* the mapping of proxy_pass with a URI part */
    if (sdlcf->upstream_has_uri) {

        if (prefix->len && r->uri.len >= prefix->len
            && ngx_strncmp(r->uri.data, prefix->data, prefix->len) == 0)
        {
            tail.data = r->uri.data + prefix->len;
            tail.len = r->uri.len - prefix->len;
            base = sdlcf->upstream_path;

        } else {
            /* outside its location: the whole URI below the base path */
            tail = r->uri;
            base = sdlcf->upstream_path;

            if (base.len && base.data[base.len - 1] == '/') {
                base.len--;
            }
        }

        mapped.len = base.len + tail.len;
        mapped.data = ngx_pnalloc(r->pool, mapped.len);
        if (mapped.data == NULL) {
            return NGX_ERROR;
        }

        p = ngx_cpymem(mapped.data, base.data, base.len);
        ngx_memcpy(p, tail.data, tail.len);

        base = sdlcf->upstream_path;

    } else {
        mapped = r->uri;
        ngx_str_null(&base);
    }

    if (sdlcf->id) {
        if (ngx_http_complex_value(r, sdlcf->id, &id) != NGX_OK) {
            return NGX_ERROR;
        }

    } else {
        last = r->uri.data + r->uri.len;
        p = last;

        while (p > r->uri.data && p[-1] != '/') {
            p--;
        }

        id.data = p;
        id.len = last - p;
    }

    if (ngx_http_safedelete_uri_check_id(ctx, &id) != NGX_OK) {
        return NGX_DECLINED;
    }

    ctx->id = id;

    /* the collection: the mapped path without the id, below the base */
    path = mapped;

    if (path.len > id.len
        && ngx_strncmp(path.data + path.len - id.len, id.data, id.len) == 0
        && path.data[path.len - id.len - 1] == '/')
    {
        path.len -= id.len + 1;
    }

    ctx->collection = path;

    if (base.len > 1 && path.len >= base.len - 1
        && ngx_strncmp(path.data, base.data, base.len - 1) == 0)
    {
        ctx->collection.data = path.data + base.len - 1;
        ctx->collection.len = path.len - (base.len - 1);

        if (ctx->collection.len == 0) {
            ngx_str_set(&ctx->collection, "/");
        }
    }

    if (ngx_http_safedelete_uri_join(r->pool, &sdlcf->upstream_origin, &path,
                                     1, &ctx->collection_url)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (sdlcf->record_uri) {
        if (ngx_http_safedelete_uri_value(ctx, sdlcf->record_uri, &rel)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        return ngx_http_safedelete_uri_resolve(r, sdlcf, &rel,
                                               &ctx->record_url);
    }

    return ngx_http_safedelete_uri_join(r->pool, &sdlcf->upstream_origin,
                                        &mapped, 1, &ctx->record_url);
}


static ngx_int_t
ngx_http_safedelete_uri_check_id(ngx_http_safedelete_ctx_t *ctx,
    ngx_str_t *id)
{
    size_t   i;
    u_char   ch;

    if (id->len == 0) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_BAD_REQUEST, "INVALID_ID",
                                   "the request names no record id");
        return NGX_DECLINED;
    }

    if (id->len > NGX_HTTP_SAFEDELETE_ID_MAX) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_BAD_REQUEST, "INVALID_ID",
                                   "the record id is longer than "
                                   "512 bytes");
        return NGX_DECLINED;
    }

    if (ngx_strlcasestrn(id->data, id->data + id->len, (u_char *) "..", 1)
        != NULL
        || (id->len == 1 && id->data[0] == '.'))
    {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_BAD_REQUEST, "INVALID_ID",
                                   "the record id contains \"..\"");
        return NGX_DECLINED;
    }

    for (i = 0; i < id->len; i++) {
        ch = id->data[i];

        if (ch < 0x20 || ch == 0x7f) {
            ngx_http_safedelete_refuse(ctx, NGX_HTTP_BAD_REQUEST,
                                       "INVALID_ID",
                                       "the record id contains control "
                                       "characters");
            return NGX_DECLINED;
        }

        if (ch == '/' || ch == '\\' || ch == '?' || ch == '#') {
            ngx_http_safedelete_refuse(ctx, NGX_HTTP_BAD_REQUEST,
                                       "INVALID_ID",
                                       "the record id contains a path "
                                       "or query separator");
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_safedelete_uri_resolve(ngx_http_request_t *r,
    ngx_http_safedelete_loc_conf_t *sdlcf, ngx_str_t *rel, ngx_str_t *url)
{
    u_char     *p;
    size_t      size;
    ngx_str_t   base, path;

    if ((rel->len > 7 && ngx_strncasecmp(rel->data, (u_char *) "http://", 7)
                         == 0)
        || (rel->len > 8
            && ngx_strncasecmp(rel->data, (u_char *) "https://", 8) == 0))
    {
        /* another service: taken as written, but for unsafe bytes */
        url->data = ngx_pnalloc(r->pool,
                  ngx_http_safedelete_uri_escape(NULL, rel->data, rel->len));
        if (url->data == NULL) {
            return NGX_ERROR;
        }

        url->len = ngx_http_safedelete_uri_escape(url->data, rel->data,
                                                  rel->len);
        return NGX_OK;
    }

    base = sdlcf->upstream_path;

    if (base.len && base.data[base.len - 1] == '/') {
        base.len--;
    }

    size = base.len + 1 + ngx_http_safedelete_uri_escape(NULL, rel->data,
                                                         rel->len);

    path.data = ngx_pnalloc(r->pool, size);
    if (path.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(path.data, base.data, base.len);

    if (rel->len == 0 || rel->data[0] != '/') {
        *p++ = '/';
    }

    p += ngx_http_safedelete_uri_escape(p, rel->data, rel->len);
    path.len = p - path.data;

    return ngx_http_safedelete_uri_join(r->pool, &sdlcf->upstream_origin,
                                        &path, 0, url);
}


/* origin + path, the path escaped as proxy_pass escapes a mapped URI */

static ngx_int_t
ngx_http_safedelete_uri_join(ngx_pool_t *pool, ngx_str_t *origin,
    ngx_str_t *path, ngx_uint_t escape_path, ngx_str_t *url)
{
    u_char     *p;
    uintptr_t   escape;

    escape = escape_path ? 2 * ngx_escape_uri(NULL, path->data, path->len,
                                              NGX_ESCAPE_URI)
                         : 0;

    url->len = origin->len + path->len + escape + (path->len ? 0 : 1);
    url->data = ngx_pnalloc(pool, url->len);
    if (url->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(url->data, origin->data, origin->len);

    if (path->len == 0) {
        *p = '/';
        return NGX_OK;
    }

    if (escape) {
        (void) ngx_escape_uri(p, path->data, path->len, NGX_ESCAPE_URI);

    } else {
        ngx_memcpy(p, path->data, path->len);
    }

    return NGX_OK;
}


/*
 * templates may carry a query: keep "?", "&", "=" and "%", escape what
 * can never stand in a URL; the join above then leaves them alone
 */

static size_t
ngx_http_safedelete_uri_escape(u_char *dst, u_char *src, size_t size)
{
    size_t         n;
    u_char         ch;
    static u_char  hex[] = "0123456789ABCDEF";

    n = 0;

    while (size--) {
        ch = *src++;

        if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '<' || ch == '>'
            || ch == '\\' || ch == '^' || ch == '`' || ch == '{' || ch == '|'
            || ch == '}' || ch == '#')
        {
            if (dst) {
                *dst++ = '%';
                *dst++ = hex[ch >> 4];
                *dst++ = hex[ch & 0xf];
            }

            n += 3;
            continue;
        }

        if (dst) {
            *dst++ = ch;
        }

        n++;
    }

    return n;
}


/* a URI template: the module's variables come escaped as arguments */

ngx_int_t
ngx_http_safedelete_uri_value(ngx_http_safedelete_ctx_t *ctx,
    ngx_http_complex_value_t *cv, ngx_str_t *value)
{
    ngx_int_t  rc;

    ctx->in_uri = 1;
    rc = ngx_http_complex_value(ctx->request, cv, value);
    ctx->in_uri = 0;

    return rc;
}
