/*
 * Copyright (C) ngx_safedelete_module authors
 *
 * After the backend answered a forwarded delete: the undo headers on
 * success, the audit entry either way, and no undo record for a failure.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_safedelete.h"
#include "ngx_http_safedelete_store.h"


static ngx_int_t ngx_http_safedelete_header_filter(ngx_http_request_t *r);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;

static ngx_str_t  ngx_http_safedelete_exposed =
    ngx_string("SafeDelete-Undo, SafeDelete-Undo-Expires");


ngx_int_t
ngx_http_safedelete_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_safedelete_header_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_safedelete_header_filter(ngx_http_request_t *r)
{
    u_char                     *p;
    ngx_str_t                   expires;
    ngx_uint_t                  status;
    ngx_http_safedelete_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_safedelete_module);

    if (ctx == NULL
        || r != r->main
        || ctx->state != NGX_HTTP_SAFEDELETE_STATE_FORWARDED)
    {
        return ngx_http_next_header_filter(r);
    }

    ctx->state = NGX_HTTP_SAFEDELETE_STATE_ANSWERED;
    status = r->headers_out.status;

    if (status < 200 || status > 299) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "safedelete: backend answered %ui to the delete of "
                      "\"%V\"", status, &ctx->record_url);

        if (ctx->undo_token.len) {
            ngx_http_safedelete_store_undo_delete(&ctx->undo_token);
            ngx_str_null(&ctx->undo_token);
        }

        /* the record stays: so do its related records */
        ngx_http_safedelete_cascade_revert(ctx);

        ngx_str_set(&ctx->decision, "failed");
        ngx_http_safedelete_audit(ctx, "delete.failed", status, NULL);

        return ngx_http_next_header_filter(r);
    }

    ngx_http_safedelete_audit(ctx,
                              ctx->mode == NGX_HTTP_SAFEDELETE_MODE_HARD
                              ? "delete.hard" : "delete.soft",
                              status, NULL);

    if (ctx->cascade_header.len
        && ngx_http_safedelete_header_out(r, "SafeDelete-Cascaded",
                                          &ctx->cascade_header)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->undo_token.len == 0) {
        return ngx_http_next_header_filter(r);
    }

    p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    expires.data = p;
    expires.len = ngx_sprintf(p, "%T", ctx->policy->undo_window) - p;

    if (ngx_http_safedelete_header_out(r, "SafeDelete-Undo", &ctx->undo_token)
           != NGX_OK
        || ngx_http_safedelete_header_out(r, "SafeDelete-Undo-Expires",
                                          &expires)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* a browser frontend on another origin may read them */
    if (ngx_http_safedelete_header_out(r, "Access-Control-Expose-Headers",
                                       &ngx_http_safedelete_exposed)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}
