/*
 * Copyright (C) ngx_safedelete_module authors
 *
 * Confirmation tokens of the two-step delete:
 *
 *     v1.<expiry>.<base64url HMAC-SHA256(secret,
 *                               "DELETE\n<uri>\n<actor>\n<expiry>")>
 *
 * Any gateway with the same secret file accepts them; Redis makes each
 * one usable once.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_safedelete.h"
#include "ngx_http_safedelete_token.h"


#define NGX_HTTP_SAFEDELETE_SIG_LEN  43


static ngx_int_t ngx_http_safedelete_confirm_sign(
    ngx_http_safedelete_ctx_t *ctx, time_t expiry, u_char *sig);


ngx_int_t
ngx_http_safedelete_confirm_make(ngx_http_safedelete_ctx_t *ctx,
    ngx_str_t *token)
{
    u_char  *p;
    time_t   expiry;
    u_char   sig[NGX_HTTP_SAFEDELETE_SIG_LEN];

    expiry = ngx_time() + ctx->policy->confirm_ttl;

    if (ngx_http_safedelete_confirm_sign(ctx, expiry, sig) != NGX_OK) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(ctx->request->pool,
                    sizeof("v1..") + NGX_TIME_T_LEN
                    + NGX_HTTP_SAFEDELETE_SIG_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    token->data = p;
    p = ngx_sprintf(p, "v1.%T.", expiry);
    p = ngx_cpymem(p, sig, NGX_HTTP_SAFEDELETE_SIG_LEN);
    token->len = p - token->data;

    return NGX_OK;
}


/*
 * NGX_OK: good, NGX_DECLINED: forged, truncated or for another request,
 * NGX_BUSY: expired
 */

ngx_int_t
ngx_http_safedelete_confirm_check(ngx_http_safedelete_ctx_t *ctx,
    ngx_str_t *token)
{
    u_char    *p, *last, *dot;
    time_t     expiry;
    u_char     sig[NGX_HTTP_SAFEDELETE_SIG_LEN];

    p = token->data;
    last = token->data + token->len;

    if (token->len < 4 + 1 + 1 + NGX_HTTP_SAFEDELETE_SIG_LEN
        || token->len > 3 + NGX_TIME_T_LEN + 1 + NGX_HTTP_SAFEDELETE_SIG_LEN
        || ngx_strncmp(p, "v1.", 3) != 0)
    {
        return NGX_DECLINED;
    }

    p += 3;
    dot = ngx_strlchr(p, last, '.');

    if (dot == NULL || dot == p
        || (size_t) (last - dot - 1) != NGX_HTTP_SAFEDELETE_SIG_LEN)
    {
        return NGX_DECLINED;
    }

    expiry = ngx_atotm(p, dot - p);
    if (expiry == NGX_ERROR) {
        return NGX_DECLINED;
    }

    if (ngx_http_safedelete_confirm_sign(ctx, expiry, sig) != NGX_OK) {
        return NGX_DECLINED;
    }

    if (!ngx_http_safedelete_token_equal(sig, dot + 1,
                                         NGX_HTTP_SAFEDELETE_SIG_LEN))
    {
        return NGX_DECLINED;
    }

    /* only a genuine token may learn that it is merely old */
    if (expiry < ngx_time()) {
        return NGX_BUSY;
    }

    ctx->confirm_sig.data = dot + 1;
    ctx->confirm_sig.len = NGX_HTTP_SAFEDELETE_SIG_LEN;
    ctx->confirm_expiry = expiry;

    return NGX_OK;
}


static ngx_int_t
ngx_http_safedelete_confirm_sign(ngx_http_safedelete_ctx_t *ctx,
    time_t expiry, u_char *sig)
{
    u_char                           *p;
    u_char                            md[32];
    ngx_str_t                         msg, raw, out;
    ngx_http_request_t               *r;
    ngx_http_safedelete_main_conf_t  *sdmcf;

    r = ctx->request;
    sdmcf = ngx_http_get_module_main_conf(r, ngx_http_safedelete_module);

    msg.len = sizeof("DELETE\n\n\n") - 1 + r->uri.len + ctx->actor.len
              + NGX_TIME_T_LEN;
    msg.data = ngx_pnalloc(r->pool, msg.len);
    if (msg.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(msg.data, "DELETE\n%V\n%V\n%T", &r->uri, &ctx->actor,
                    expiry);
    msg.len = p - msg.data;

    if (ngx_http_safedelete_token_hmac(&sdmcf->secret, &msg, md) != NGX_OK) {
        return NGX_ERROR;
    }

    raw.data = md;
    raw.len = sizeof(md);
    out.data = sig;

    ngx_http_safedelete_token_base64url(&out, &raw);

    return out.len == NGX_HTTP_SAFEDELETE_SIG_LEN ? NGX_OK : NGX_ERROR;
}
