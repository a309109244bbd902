/*
 * Copyright (C) ngx_safedelete_module authors
 *
 * $safedelete_* variables, for templates and log_format.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_safedelete.h"
#include "ngx_http_safedelete_json.h"


static ngx_int_t ngx_http_safedelete_ctx_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_safedelete_mode_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_safedelete_record_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_safedelete_value(ngx_http_request_t *r,
    ngx_http_safedelete_ctx_t *ctx, ngx_http_variable_value_t *v,
    ngx_str_t *s);


#define NGX_HTTP_SAFEDELETE_RECORD_PREFIX  "safedelete_record_"


static ngx_http_variable_t  ngx_http_safedelete_vars[] = {

    { ngx_string("safedelete_id"), NULL,
      ngx_http_safedelete_ctx_variable,
      offsetof(ngx_http_safedelete_ctx_t, id),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("safedelete_collection"), NULL,
      ngx_http_safedelete_ctx_variable,
      offsetof(ngx_http_safedelete_ctx_t, collection),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("safedelete_actor"), NULL,
      ngx_http_safedelete_ctx_variable,
      offsetof(ngx_http_safedelete_ctx_t, actor),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("safedelete_now"), NULL,
      ngx_http_safedelete_ctx_variable,
      offsetof(ngx_http_safedelete_ctx_t, now),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("safedelete_ts"), NULL,
      ngx_http_safedelete_ctx_variable,
      offsetof(ngx_http_safedelete_ctx_t, ts),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("safedelete_decision"), NULL,
      ngx_http_safedelete_ctx_variable,
      offsetof(ngx_http_safedelete_ctx_t, decision),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("safedelete_undo_token"), NULL,
      ngx_http_safedelete_ctx_variable,
      offsetof(ngx_http_safedelete_ctx_t, undo_token),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("safedelete_mode"), NULL,
      ngx_http_safedelete_mode_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string(NGX_HTTP_SAFEDELETE_RECORD_PREFIX), NULL,
      ngx_http_safedelete_record_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_safedelete_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_safedelete_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_safedelete_ctx_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                  *s;
    ngx_http_safedelete_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_safedelete_module);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((char *) ctx + data);

    return ngx_http_safedelete_value(r, ctx, v, s);
}


/*
 * inside a URI template a value is one query argument: a record field
 * or a header holding "&" or "#" must not add arguments of its own
 */

static ngx_int_t
ngx_http_safedelete_value(ngx_http_request_t *r,
    ngx_http_safedelete_ctx_t *ctx, ngx_http_variable_value_t *v,
    ngx_str_t *s)
{
    u_char     *p;
    uintptr_t   n;

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    n = ctx->in_uri ? ngx_escape_uri(NULL, s->data, s->len, NGX_ESCAPE_ARGS)
                    : 0;

    if (n == 0) {
        v->len = s->len;
        v->data = s->data;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, s->len + 2 * n);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;
    v->len = (u_char *) ngx_escape_uri(p, s->data, s->len, NGX_ESCAPE_ARGS)
             - p;

    return NGX_OK;
}


static ngx_int_t
ngx_http_safedelete_mode_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_safedelete_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_safedelete_module);

    if (ctx == NULL || ctx->mode > NGX_HTTP_SAFEDELETE_MODE_DENY) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ngx_http_safedelete_mode_names[ctx->mode].len;
    v->data = ngx_http_safedelete_mode_names[ctx->mode].data;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/* $safedelete_record_<field>: a field of the snapshot, as text */

static ngx_int_t
ngx_http_safedelete_record_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                  *name = (ngx_str_t *) data;

    ngx_int_t                   rc;
    ngx_str_t                   field, text;
    ngx_http_safedelete_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_safedelete_module);

    if (ctx == NULL || ctx->snapshot == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    field.data = name->data + sizeof(NGX_HTTP_SAFEDELETE_RECORD_PREFIX) - 1;
    field.len = name->len - (sizeof(NGX_HTTP_SAFEDELETE_RECORD_PREFIX) - 1);

    rc = ngx_http_safedelete_json_text(r->pool,
                               ngx_http_safedelete_json_get(ctx->snapshot,
                                                            &field),
                               &text);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        v->not_found = 1;
        return NGX_OK;
    }

    return ngx_http_safedelete_value(r, ctx, v, &text);
}
