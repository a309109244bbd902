/*
 * Copyright (C) ngx_safedelete_module authors
 *
 * The DELETE state machine.  It runs in the precontent phase, after every
 * access check of the location (auth_basic, auth_request, allow/deny), so
 * that nobody who may not reach the backend can make the module call it.
 * While it waits for the backend or Redis, the request is parked; I/O
 * callbacks only record results and post ctx->resume, which runs the next
 * step and finally the phases again.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_safedelete.h"
#include "ngx_http_safedelete_json.h"
#include "ngx_http_safedelete_store.h"
#include "ngx_http_safedelete_token.h"
#include "ngx_http_safedelete_uri.h"


static void ngx_http_safedelete_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_safedelete_verdict(ngx_http_request_t *r,
    ngx_http_safedelete_ctx_t *ctx);
static void ngx_http_safedelete_resume_handler(ngx_event_t *ev);
static void ngx_http_safedelete_timeout_handler(ngx_event_t *ev);
static void ngx_http_safedelete_cleanup(void *data);
static void ngx_http_safedelete_cancel_all(ngx_http_safedelete_ctx_t *ctx);
static void ngx_http_safedelete_call_done(ngx_http_safedelete_call_t *call);
static void ngx_http_safedelete_call_http_done(void *data,
    ngx_http_safedelete_http_result_t *res);

static void ngx_http_safedelete_step_snapshot(ngx_http_safedelete_ctx_t *ctx);
static void ngx_http_safedelete_step_snapshot_done(
    ngx_http_safedelete_ctx_t *ctx);
static void ngx_http_safedelete_step_owner(ngx_http_safedelete_ctx_t *ctx);
static void ngx_http_safedelete_step_lookups_done(
    ngx_http_safedelete_ctx_t *ctx);
static void ngx_http_safedelete_step_gate(ngx_http_safedelete_ctx_t *ctx);
static void ngx_http_safedelete_step_gate_done(
    ngx_http_safedelete_ctx_t *ctx);
static ngx_int_t ngx_http_safedelete_confirm_entry(
    ngx_http_safedelete_ctx_t *ctx);
static ngx_int_t ngx_http_safedelete_require_confirm(
    ngx_http_safedelete_ctx_t *ctx, ngx_uint_t status, const char *code,
    const char *detail);
static void ngx_http_safedelete_step_record(ngx_http_safedelete_ctx_t *ctx);
static void ngx_http_safedelete_step_record_done(
    ngx_http_safedelete_ctx_t *ctx);
static void ngx_http_safedelete_step_act(ngx_http_safedelete_ctx_t *ctx);
static void ngx_http_safedelete_fail_open(ngx_http_safedelete_ctx_t *ctx,
    ngx_uint_t status, const char *code, const char *detail,
    ngx_http_safedelete_step_pt resume);
static ngx_int_t ngx_http_safedelete_soft_body(
    ngx_http_safedelete_ctx_t *ctx);
static ngx_int_t ngx_http_safedelete_rewrite_soft(
    ngx_http_safedelete_ctx_t *ctx);
static ngx_int_t ngx_http_safedelete_set_content_type(ngx_http_request_t *r);
static void ngx_http_safedelete_resume_phases(ngx_http_safedelete_ctx_t *ctx);
static ngx_int_t ngx_http_safedelete_request_id(ngx_http_request_t *r,
    ngx_str_t *id);


ngx_str_t  ngx_http_safedelete_mode_names[] = {
    ngx_string("soft"),
    ngx_string("hard"),
    ngx_string("deferred"),
    ngx_string("deny")
};


ngx_int_t
ngx_http_safedelete_delete_handler(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_table_elt_t                 *h;
    ngx_http_safedelete_ctx_t       *ctx;
    ngx_http_safedelete_loc_conf_t  *sdlcf;

    /* everything that is not a DELETE pays these two comparisons */
    if (r->method != NGX_HTTP_DELETE) {
        return NGX_DECLINED;
    }

    sdlcf = ngx_http_get_module_loc_conf(r, ngx_http_safedelete_module);

    if (!sdlcf->enable || r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_safedelete_module);

    if (ctx) {
        switch (ctx->state) {

        case NGX_HTTP_SAFEDELETE_STATE_DONE:
            return ngx_http_safedelete_verdict(r, ctx);

        case NGX_HTTP_SAFEDELETE_STATE_FORWARDED:
        case NGX_HTTP_SAFEDELETE_STATE_ANSWERED:
            return NGX_DECLINED;

        default:
            return NGX_AGAIN;
        }
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "safedelete: DELETE intercepted");

    ctx = ngx_http_safedelete_ctx_create(r, sdlcf);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->mode = sdlcf->mode;

    if (ngx_http_safedelete_ctx_identity(ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (sdlcf->upstream.len == 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "safedelete: \"safedelete_upstream\" is not set "
                      "for this location");
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "INTERNAL_ERROR",
                                   "the gateway is not configured for "
                                   "deletes here");
        return ngx_http_safedelete_verdict(r, ctx);
    }

    rc = ngx_http_safedelete_uri_identify(ctx);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_safedelete_verdict(r, ctx);
    }

    if (ctx->mode == NGX_HTTP_SAFEDELETE_MODE_DENY) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_NOT_ALLOWED,
                                   "DELETE_NOT_ALLOWED",
                                   "records here are never deleted "
                                   "through the API");
        return ngx_http_safedelete_verdict(r, ctx);
    }

    if (sdlcf->hard_override && ctx->admin
        && ctx->mode == NGX_HTTP_SAFEDELETE_MODE_SOFT)
    {
        h = ngx_http_safedelete_header_in(r, "SafeDelete-Mode");

        if (h && h->value.len == 4
            && ngx_strncasecmp(h->value.data, (u_char *) "hard", 4) == 0)
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "safedelete: admin \"%V\" asks for a hard delete",
                          &ctx->actor);
            ctx->mode = NGX_HTTP_SAFEDELETE_MODE_HARD;
        }
    }

    if (sdlcf->require_actor && ctx->actor.len == 0) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_UNAUTHORIZED,
                                   "ACTOR_REQUIRED",
                                   "deleting here requires a known actor");
        return ngx_http_safedelete_verdict(r, ctx);
    }

    if (sdlcf->confirm
        && ngx_http_safedelete_confirm_entry(ctx) != NGX_OK)
    {
        return ngx_http_safedelete_verdict(r, ctx);
    }

    if (!ngx_http_safedelete_store_available()
        && sdlcf->fail == NGX_HTTP_SAFEDELETE_FAIL_CLOSED)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "safedelete: redis is unavailable, "
                      "DELETE of \"%V\" refused", &ctx->record_url);
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "STORE_UNAVAILABLE",
                                   "the undo and audit store is "
                                   "unavailable; nothing was deleted");
        return ngx_http_safedelete_verdict(r, ctx);
    }

    rc = ngx_http_read_client_request_body(r,
                                           ngx_http_safedelete_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    ngx_http_finalize_request(r, NGX_DONE);

    return NGX_DONE;
}


static void
ngx_http_safedelete_body_handler(ngx_http_request_t *r)
{
    ngx_http_safedelete_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_safedelete_module);

    ngx_http_safedelete_start(ctx, ngx_http_safedelete_step_snapshot);
}


ngx_http_safedelete_ctx_t *
ngx_http_safedelete_ctx_create(ngx_http_request_t *r,
    ngx_http_safedelete_loc_conf_t *policy)
{
    ngx_pool_cleanup_t         *cln;
    ngx_http_safedelete_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_safedelete_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    ctx->request = r;
    ctx->policy = policy;
    ctx->state = NGX_HTTP_SAFEDELETE_STATE_NEW;
    ctx->verdict = NGX_DECLINED;

    ngx_queue_init(&ctx->http_ops);
    ngx_queue_init(&ctx->redis_ops);

    /* a timer's data must look like a connection: debug logs read its fd */
    ctx->resume.handler = ngx_http_safedelete_resume_handler;
    ctx->resume.data = r->connection;
    ctx->resume.log = r->connection->log;

    ctx->timeout.handler = ngx_http_safedelete_timeout_handler;
    ctx->timeout.data = r->connection;
    ctx->timeout.log = r->connection->log;

    cln->handler = ngx_http_safedelete_cleanup;
    cln->data = ctx;

    ngx_http_safedelete_ctx_clock(ctx);

    ngx_http_set_ctx(r, ctx, ngx_http_safedelete_module);

    return ctx;
}


void
ngx_http_safedelete_ctx_clock(ngx_http_safedelete_ctx_t *ctx)
{
    u_char      *p;
    ngx_tm_t     tm;
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    ctx->now_ms = (int64_t) tp->sec * 1000 + tp->msec;

    ngx_gmtime(tp->sec, &tm);

    p = ngx_pnalloc(ctx->request->pool,
                    sizeof("1970-01-01T00:00:00.000Z") + NGX_INT64_LEN);
    if (p == NULL) {
        return;
    }

    ctx->now.data = p;
    ctx->now.len = ngx_sprintf(p, "%4d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                               tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                               tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec,
                               (int) tp->msec)
                   - p;

    ctx->ts.data = p + ctx->now.len;
    ctx->ts.len = ngx_sprintf(ctx->ts.data, "%L", ctx->now_ms) - ctx->ts.data;
}


ngx_int_t
ngx_http_safedelete_ctx_identity(ngx_http_safedelete_ctx_t *ctx)
{
    ngx_str_t                        admin;
    ngx_http_request_t              *r;
    ngx_http_safedelete_loc_conf_t  *policy;

    r = ctx->request;
    policy = ctx->policy;

    ngx_str_null(&ctx->actor);
    ctx->admin = 0;

    if (policy->actor
        && ngx_http_complex_value(r, policy->actor, &ctx->actor) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (policy->admin) {
        if (ngx_http_complex_value(r, policy->admin, &admin) != NGX_OK) {
            return NGX_ERROR;
        }

        ctx->admin = admin.len > 0
                     && !(admin.len == 1 && admin.data[0] == '0');
    }

    return NGX_OK;
}


void
ngx_http_safedelete_start(ngx_http_safedelete_ctx_t *ctx,
    ngx_http_safedelete_step_pt step)
{
    ngx_msec_t           timeout;
    ngx_http_request_t  *r;

    r = ctx->request;

    /* notice a client that goes away while we wait */
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_core_run_phases;

    if (ctx->state != NGX_HTTP_SAFEDELETE_STATE_DONE) {
        ctx->state = NGX_HTTP_SAFEDELETE_STATE_WORKING;
        ctx->next = step;
    }

    /*
     * the last resort: calls have their own timeouts; this one is not
     * cancelable, so a worker finishes the request before it exits
     */
    timeout = ctx->policy->upstream_timeout * 3 + 5000;
    ngx_add_timer(&ctx->timeout, timeout);

    ngx_post_event(&ctx->resume, &ngx_posted_events);
}


void
ngx_http_safedelete_refuse(ngx_http_safedelete_ctx_t *ctx, ngx_uint_t status,
    const char *code, const char *detail)
{
    ctx->problem_status = status;
    ctx->problem_code.data = (u_char *) code;
    ctx->problem_code.len = ngx_strlen(code);
    ctx->problem_detail.data = (u_char *) detail;
    ctx->problem_detail.len = ngx_strlen(detail);

    ctx->verdict = status;
    ctx->next = NULL;
    ctx->state = NGX_HTTP_SAFEDELETE_STATE_DONE;
}


void
ngx_http_safedelete_finish(ngx_http_safedelete_ctx_t *ctx)
{
    ctx->next = NULL;
    ctx->state = NGX_HTTP_SAFEDELETE_STATE_DONE;
}


static ngx_int_t
ngx_http_safedelete_verdict(ngx_http_request_t *r,
    ngx_http_safedelete_ctx_t *ctx)
{
    ngx_int_t  rc;

    ctx->state = NGX_HTTP_SAFEDELETE_STATE_ANSWERED;
    ngx_str_set(&ctx->decision, "refused");

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "safedelete: DELETE refused: %ui %V: %V",
                  ctx->problem_status, &ctx->problem_code,
                  &ctx->problem_detail);

    if (ctx->problem_status != NGX_HTTP_SERVICE_UNAVAILABLE
        || ngx_http_safedelete_store_available())
    {
        ngx_http_safedelete_audit(ctx,
                                  ctx->problem_event ? ctx->problem_event
                                                     : "delete.denied",
                                  ctx->problem_status,
                                  (char *) ctx->problem_code.data);
    }

    if (ctx->confirm_token.len
        && ngx_http_safedelete_header_out(r, "SafeDelete-Confirm",
                                          &ctx->confirm_token)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = ngx_http_safedelete_send_problem(r, ctx->problem_status,
                                          &ctx->problem_code,
                                          &ctx->problem_detail,
                                          ctx->problem_extra);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return rc;
    }

    /* the answer is sent: finalize like a content handler would */
    return NGX_HTTP_OK;
}


static void
ngx_http_safedelete_resume_handler(ngx_event_t *ev)
{
    ngx_connection_t             *c;
    ngx_http_request_t           *r;
    ngx_http_safedelete_ctx_t    *ctx;
    ngx_http_safedelete_step_pt   step;

    ctx = (ngx_http_safedelete_ctx_t *)
              ((u_char *) ev - offsetof(ngx_http_safedelete_ctx_t, resume));
    r = ctx->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    while (ctx->state == NGX_HTTP_SAFEDELETE_STATE_WORKING
           && ctx->pending == 0
           && ctx->next)
    {
        step = ctx->next;
        ctx->next = NULL;
        step(ctx);
    }

    if (ctx->state == NGX_HTTP_SAFEDELETE_STATE_DONE && ctx->pending == 0) {

        if (ctx->timeout.timer_set) {
            ngx_del_timer(&ctx->timeout);
        }

        if (ctx->api) {
            ngx_http_safedelete_api_respond(ctx);

        } else {
            ngx_http_safedelete_resume_phases(ctx);
        }
    }

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_safedelete_resume_phases(ngx_http_safedelete_ctx_t *ctx)
{
    ngx_http_request_t  *r;

    r = ctx->request;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "safedelete: checks done, verdict %i", ctx->verdict);

    /*
     * a soft delete is no DELETE any more, so the handler will not look
     * at it again: the verdict is recorded here
     */
    if (ctx->problem_status == 0) {
        ctx->state = NGX_HTTP_SAFEDELETE_STATE_FORWARDED;
        ctx->decision = ngx_http_safedelete_mode_names[ctx->mode];
    }

    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}


static void
ngx_http_safedelete_timeout_handler(ngx_event_t *ev)
{
    ngx_http_safedelete_ctx_t  *ctx;

    ctx = (ngx_http_safedelete_ctx_t *)
              ((u_char *) ev - offsetof(ngx_http_safedelete_ctx_t, timeout));

    ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                  "safedelete: checks timed out");

    ngx_http_safedelete_cancel_all(ctx);

    ngx_http_safedelete_refuse(ctx, NGX_HTTP_SERVICE_UNAVAILABLE, "TIMEOUT",
                               "the safety checks did not finish in time; "
                               "nothing was deleted");

    ngx_http_safedelete_resume_handler(&ctx->resume);
}


static void
ngx_http_safedelete_cleanup(void *data)
{
    ngx_http_safedelete_ctx_t  *ctx = data;

    ngx_http_safedelete_cancel_all(ctx);

    /* an undo cut short by its client gives the token back */
    ngx_http_safedelete_undo_release(ctx);

    if (ctx->timeout.timer_set) {
        ngx_del_timer(&ctx->timeout);
    }

    if (ctx->resume.posted) {
        ngx_delete_posted_event(&ctx->resume);
    }
}


static void
ngx_http_safedelete_cancel_all(ngx_http_safedelete_ctx_t *ctx)
{
    ngx_queue_t  *q;

    while (!ngx_queue_empty(&ctx->http_ops)) {
        q = ngx_queue_head(&ctx->http_ops);
        ngx_queue_remove(q);
        ngx_http_safedelete_http_cancel(
            ngx_http_safedelete_http_op_from_queue(q));
    }

    while (!ngx_queue_empty(&ctx->redis_ops)) {
        q = ngx_queue_head(&ctx->redis_ops);
        ngx_queue_remove(q);

        ngx_http_safedelete_store_cancel(
            ngx_queue_data(q, ngx_http_safedelete_redis_op_t, queue));
    }

    ctx->pending = 0;
}


ngx_http_safedelete_call_t *
ngx_http_safedelete_call_new(ngx_http_safedelete_ctx_t *ctx)
{
    ngx_http_safedelete_call_t  *call;

    call = ngx_pcalloc(ctx->request->pool,
                       sizeof(ngx_http_safedelete_call_t));
    if (call == NULL) {
        return NULL;
    }

    call->ctx = ctx;
    call->rc = NGX_ERROR;
    call->total_count = -1;

    return call;
}


ngx_http_safedelete_call_t *
ngx_http_safedelete_call_http(ngx_http_safedelete_ctx_t *ctx,
    ngx_str_t *method, ngx_str_t *url, ngx_str_t *body)
{
    ngx_http_safedelete_call_t           *call;
    ngx_http_safedelete_http_op_t        *op;
    ngx_http_safedelete_http_request_t    req;

    call = ngx_http_safedelete_call_new(ctx);
    if (call == NULL) {
        return NULL;
    }

    ngx_memzero(&req, sizeof(ngx_http_safedelete_http_request_t));

    req.method = *method;
    req.url = *url;

    if (body) {
        req.body = *body;
    }

    if (ngx_http_safedelete_call_headers(ctx, &req.headers) != NGX_OK) {
        return NULL;
    }

    req.timeout = ctx->policy->upstream_timeout;
    req.handler = ngx_http_safedelete_call_http_done;
    req.data = call;
    req.log = ctx->request->connection->log;

    op = ngx_http_safedelete_http_start(&req);
    if (op == NULL) {
        return NULL;
    }

    call->op = op;
    ngx_queue_insert_tail(&ctx->http_ops, ngx_http_safedelete_http_queue(op));
    ctx->pending++;

    return call;
}


/* the client's credentials and the location's fixed headers */

ngx_int_t
ngx_http_safedelete_call_headers(ngx_http_safedelete_ctx_t *ctx,
    ngx_array_t **headers)
{
    u_char                        *p;
    ngx_str_t                     *name, *line, value;
    ngx_uint_t                     i, j, n;
    ngx_list_part_t               *part;
    ngx_table_elt_t               *h;
    ngx_http_request_t            *r;
    ngx_http_safedelete_header_t  *uh;

    r = ctx->request;

    n = (ctx->policy->forward_headers ? ctx->policy->forward_headers->nelts
                                      : 0)
        + (ctx->policy->upstream_headers
           ? ctx->policy->upstream_headers->nelts : 0);

    *headers = ngx_array_create(r->pool, n + 1, sizeof(ngx_str_t));
    if (*headers == NULL) {
        return NGX_ERROR;
    }

    name = ctx->policy->forward_headers ? ctx->policy->forward_headers->elts
                                        : NULL;

    for (i = 0; name && i < ctx->policy->forward_headers->nelts; i++) {

        part = &r->headers_in.headers.part;
        h = part->elts;

        for (j = 0; /* void */; j++) {

            if (j >= part->nelts) {
                if (part->next == NULL) {
                    break;
                }

                part = part->next;
                h = part->elts;
                j = 0;
            }

            if (h[j].key.len != name[i].len
                || ngx_strncasecmp(h[j].key.data, name[i].data, name[i].len)
                   != 0)
            {
                continue;
            }

            line = ngx_array_push(*headers);
            if (line == NULL) {
                return NGX_ERROR;
            }

            line->len = h[j].key.len + 2 + h[j].value.len;
            line->data = ngx_pnalloc(r->pool, line->len);
            if (line->data == NULL) {
                return NGX_ERROR;
            }

            p = ngx_cpymem(line->data, h[j].key.data, h[j].key.len);
            *p++ = ':';
            *p++ = ' ';
            ngx_memcpy(p, h[j].value.data, h[j].value.len);
        }
    }

    uh = ctx->policy->upstream_headers ? ctx->policy->upstream_headers->elts
                                       : NULL;

    for (i = 0; uh && i < ctx->policy->upstream_headers->nelts; i++) {

        if (ngx_http_complex_value(r, &uh[i].value, &value) != NGX_OK) {
            return NGX_ERROR;
        }

        line = ngx_array_push(*headers);
        if (line == NULL) {
            return NGX_ERROR;
        }

        line->len = uh[i].name.len + 2 + value.len;
        line->data = ngx_pnalloc(r->pool, line->len);
        if (line->data == NULL) {
            return NGX_ERROR;
        }

        p = ngx_cpymem(line->data, uh[i].name.data, uh[i].name.len);
        *p++ = ':';
        *p++ = ' ';
        ngx_memcpy(p, value.data, value.len);
    }

    return NGX_OK;
}


static void
ngx_http_safedelete_call_http_done(void *data,
    ngx_http_safedelete_http_result_t *res)
{
    ngx_http_safedelete_call_t  *call = data;

    ngx_http_request_t  *r;

    r = call->ctx->request;

    ngx_queue_remove(ngx_http_safedelete_http_queue(call->op));
    call->op = NULL;

    call->rc = res->rc;
    call->status = res->status;
    call->total_count = res->total_count;

    if (res->error) {
        call->error.len = ngx_strlen(res->error);
        call->error.data = ngx_pnalloc(r->pool, call->error.len);
        if (call->error.data) {
            ngx_memcpy(call->error.data, res->error, call->error.len);

        } else {
            call->error.len = 0;
        }
    }

    if (res->body.len) {
        call->body.data = ngx_pnalloc(r->pool, res->body.len);
        if (call->body.data == NULL) {
            call->rc = NGX_ERROR;

        } else {
            ngx_memcpy(call->body.data, res->body.data, res->body.len);
            call->body.len = res->body.len;
        }
    }

    ngx_http_safedelete_call_done(call);
}


void
ngx_http_safedelete_call_store_done(void *data, ngx_int_t rc, ngx_str_t *str,
    ngx_keyval_t *fields, ngx_uint_t nfields)
{
    ngx_http_safedelete_call_t  *call = data;

    ngx_uint_t           i;
    ngx_keyval_t        *kv;
    ngx_http_request_t  *r;

    r = call->ctx->request;

    ngx_queue_remove(&((ngx_http_safedelete_redis_op_t *) call->op)->queue);
    call->op = NULL;
    call->rc = rc;

    if (str) {
        call->body.data = ngx_pstrdup(r->pool, str);
        call->body.len = call->body.data ? str->len : 0;
    }

    if (nfields) {
        call->fields = ngx_array_create(r->pool, nfields,
                                        sizeof(ngx_keyval_t));
        if (call->fields == NULL) {
            call->rc = NGX_ERROR;
            goto done;
        }

        for (i = 0; i < nfields; i++) {
            kv = ngx_array_push(call->fields);

            kv->key.data = ngx_pstrdup(r->pool, &fields[i].key);
            kv->key.len = fields[i].key.len;
            kv->value.data = ngx_pstrdup(r->pool, &fields[i].value);
            kv->value.len = fields[i].value.len;

            if ((kv->key.len && kv->key.data == NULL)
                || (kv->value.len && kv->value.data == NULL))
            {
                call->rc = NGX_ERROR;
                goto done;
            }
        }
    }

done:

    ngx_http_safedelete_call_done(call);
}


static void
ngx_http_safedelete_call_done(ngx_http_safedelete_call_t *call)
{
    ngx_http_safedelete_ctx_t  *ctx;

    ctx = call->ctx;

    if (ctx->pending && --ctx->pending == 0) {
        ngx_post_event(&ctx->resume, &ngx_posted_events);
    }
}


void
ngx_http_safedelete_track_store(ngx_http_safedelete_ctx_t *ctx,
    ngx_http_safedelete_call_t *call, void *op)
{
    call->op = op;
    call->redis = 1;

    ngx_queue_insert_tail(&ctx->redis_ops,
                          &((ngx_http_safedelete_redis_op_t *) op)->queue);
    ctx->pending++;
}


static void
ngx_http_safedelete_step_snapshot(ngx_http_safedelete_ctx_t *ctx)
{
    ngx_str_t  get = ngx_string("GET");

    ctx->call = ngx_http_safedelete_call_http(ctx, &get, &ctx->record_url,
                                              NULL);
    if (ctx->call == NULL) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "INTERNAL_ERROR",
                                   "the record could not be requested");
        return;
    }

    ctx->next = ngx_http_safedelete_step_snapshot_done;
}


static void
ngx_http_safedelete_step_snapshot_done(ngx_http_safedelete_ctx_t *ctx)
{
    ngx_log_t                   *log;
    ngx_http_safedelete_call_t  *call;

    call = ctx->call;
    log = ctx->request->connection->log;

    if (call->rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "safedelete: snapshot GET \"%V\" failed: %V",
                      &ctx->record_url, &call->error);
        ngx_http_safedelete_fail_open(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "SNAPSHOT_FAILED",
                                      "the record could not be read from "
                                      "the backend; nothing was deleted",
                                      ngx_http_safedelete_step_owner);
        return;
    }

    if (call->status == NGX_HTTP_NOT_FOUND) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_NOT_FOUND, "NOT_FOUND",
                                   "the record does not exist");
        return;
    }

    if (call->status == NGX_HTTP_UNAUTHORIZED
        || call->status == NGX_HTTP_FORBIDDEN)
    {
        ngx_http_safedelete_refuse(ctx, call->status, "UPSTREAM_DENIED",
                                   "the backend refused to show the record "
                                   "to this client; nothing was deleted");
        return;
    }

    if (call->status < 200 || call->status > 299) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "safedelete: snapshot GET \"%V\" answered %ui",
                      &ctx->record_url, call->status);
        ngx_http_safedelete_fail_open(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "SNAPSHOT_FAILED",
                                      "the backend did not return the "
                                      "record; nothing was deleted",
                                      ngx_http_safedelete_step_owner);
        return;
    }

    ctx->snapshot = ngx_http_safedelete_json_parse(ctx->request->pool,
                                                   &call->body, log);

    if (ctx->snapshot == NULL || !json_is_object(ctx->snapshot)) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "safedelete: snapshot of \"%V\" is not a JSON object",
                      &ctx->record_url);
        ctx->snapshot = NULL;
        ngx_http_safedelete_fail_open(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "SNAPSHOT_INVALID",
                                      "the backend's record is not a JSON "
                                      "object; nothing was deleted",
                                      ngx_http_safedelete_step_owner);
        return;
    }

    /* kept compact: it goes into Redis twice, audit and undo record */
    if (ngx_http_safedelete_json_dump(ctx->request->pool, ctx->snapshot,
                                      &ctx->snapshot_text)
        != NGX_OK)
    {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "INTERNAL_ERROR", "out of memory");
        return;
    }

    ctx->next = ngx_http_safedelete_step_owner;
}


static void
ngx_http_safedelete_step_owner(ngx_http_safedelete_ctx_t *ctx)
{
    ngx_int_t                        rc;
    ngx_str_t                        owner;
    ngx_http_safedelete_loc_conf_t  *sdlcf;

    sdlcf = ctx->policy;

    if (sdlcf->owner_field.len && ctx->snapshot == NULL && !ctx->admin) {
        /* even failing open, nobody deletes what may not be theirs */
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "SNAPSHOT_FAILED",
                                   "the record's owner cannot be checked; "
                                   "nothing was deleted");
        return;
    }

    if (sdlcf->owner_field.len && !ctx->admin) {

        rc = ngx_http_safedelete_json_text(ctx->request->pool,
                       ngx_http_safedelete_json_get(ctx->snapshot,
                                                    &sdlcf->owner_field),
                       &owner);

        if (rc == NGX_ERROR) {
            ngx_http_safedelete_refuse(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                       "INTERNAL_ERROR", "out of memory");
            return;
        }

        if (rc == NGX_DECLINED || ctx->actor.len == 0
            || owner.len != ctx->actor.len
            || ngx_strncmp(owner.data, ctx->actor.data, owner.len) != 0)
        {
            ngx_log_error(NGX_LOG_WARN, ctx->request->connection->log, 0,
                          "safedelete: \"%V\" may not delete \"%V\": "
                          "not its owner", &ctx->actor, &ctx->record_url);
            ngx_http_safedelete_refuse(ctx, NGX_HTTP_FORBIDDEN,
                                       "ACCESS_DENIED",
                                       "only the record's owner or an "
                                       "admin may delete it");
            return;
        }
    }

    if (sdlcf->dependencies == NULL || ctx->lookups != NULL) {
        ctx->next = ngx_http_safedelete_step_gate;
        return;
    }

    if (ngx_http_safedelete_deps_start(ctx, sdlcf->dependencies) != NGX_OK) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "INTERNAL_ERROR",
                                   "the dependency lookups could not be "
                                   "started; nothing was deleted");
        return;
    }

    ctx->next = ngx_http_safedelete_step_lookups_done;
}


static void
ngx_http_safedelete_step_lookups_done(ngx_http_safedelete_ctx_t *ctx)
{
    json_t                        *blocked, *extra;
    ngx_int_t                      rc;
    ngx_uint_t                     i, force;
    ngx_table_elt_t               *h;
    ngx_http_safedelete_lookup_t  *lookup;

    rc = ngx_http_safedelete_deps_collect(ctx, 0);

    if (rc == NGX_DECLINED) {
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "INTERNAL_ERROR", "out of memory");
        return;
    }

    h = ngx_http_safedelete_header_in(ctx->request, "SafeDelete-Force");
    force = ctx->admin && h && h->value.len == 1 && h->value.data[0] == '1';

    blocked = json_array();
    if (blocked == NULL
        || ngx_http_safedelete_json_own(ctx->request->pool, blocked)
           != NGX_OK)
    {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "INTERNAL_ERROR", "out of memory");
        return;
    }

    lookup = ctx->lookups->elts;

    for (i = 0; i < ctx->lookups->nelts; i++) {
        if (lookup[i].dep->action == NGX_HTTP_SAFEDELETE_DEP_BLOCK
            && lookup[i].count > 0)
        {
            json_array_append_new(blocked,
                            json_string((char *) lookup[i].dep->name.data));
        }
    }

    if (json_array_size(blocked) && !force) {
        extra = json_pack("{s:O,s:O}", "dependencies", ctx->counts,
                          "blocked_by", blocked);
        if (extra) {
            (void) ngx_http_safedelete_json_own(ctx->request->pool, extra);
        }

        ctx->problem_extra = extra;
        ctx->problem_event = "delete.blocked";

        ngx_http_safedelete_refuse(ctx, NGX_HTTP_CONFLICT,
                                   "HAS_DEPENDENCIES",
                                   "the record still has dependent records; "
                                   "nothing was deleted");
        return;
    }

    if (json_array_size(blocked)) {
        ngx_log_error(NGX_LOG_WARN, ctx->request->connection->log, 0,
                      "safedelete: admin \"%V\" forces the delete of \"%V\" "
                      "despite dependent records", &ctx->actor,
                      &ctx->record_url);
    }

    rc = ngx_http_safedelete_deps_plan(ctx);

    if (rc == NGX_DECLINED) {
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "INTERNAL_ERROR",
                                   "the cascade could not be planned; "
                                   "nothing was deleted");
        return;
    }

    ctx->next = ngx_http_safedelete_step_gate;
}


/* the last check: a confirmation, used up only when all else holds */

static void
ngx_http_safedelete_step_gate(ngx_http_safedelete_ctx_t *ctx)
{
    void        *op;
    ngx_msec_t   ttl;

    if (!ctx->policy->confirm) {
        ctx->next = ngx_http_safedelete_step_record;
        return;
    }

    if (!ctx->confirm_ok) {
        (void) ngx_http_safedelete_require_confirm(ctx,
                       NGX_HTTP_SAFEDELETE_PRECONDITION_REQUIRED,
                       "CONFIRMATION_REQUIRED",
                       "confirm this delete: repeat it with the "
                       "SafeDelete-Confirm header");
        ctx->problem_event = "delete.confirm_required";
        return;
    }

    ctx->call = ngx_http_safedelete_call_new(ctx);
    if (ctx->call == NULL) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "INTERNAL_ERROR", "out of memory");
        return;
    }

    ttl = (ngx_msec_t) (ctx->confirm_expiry - ngx_time() + 1) * 1000;

    op = ngx_http_safedelete_store_confirm_use(&ctx->confirm_sig, ttl,
                                          ngx_http_safedelete_call_store_done,
                                          ctx->call);
    if (op == NULL) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "STORE_UNAVAILABLE",
                                   "the confirmation cannot be checked; "
                                   "nothing was deleted");
        return;
    }

    ngx_http_safedelete_track_store(ctx, ctx->call, op);

    ctx->next = ngx_http_safedelete_step_gate_done;
}


static void
ngx_http_safedelete_step_gate_done(ngx_http_safedelete_ctx_t *ctx)
{
    if (ctx->call->rc == NGX_DECLINED) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_PRECONDITION_FAILED,
                                   "CONFIRMATION_USED",
                                   "this confirmation was used before");
        return;
    }

    if (ctx->call->rc != NGX_OK) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "STORE_UNAVAILABLE",
                                   "the confirmation cannot be checked; "
                                   "nothing was deleted");
        return;
    }

    ctx->next = ngx_http_safedelete_step_record;
}


/* a token in the request is checked before anything is asked */

static ngx_int_t
ngx_http_safedelete_confirm_entry(ngx_http_safedelete_ctx_t *ctx)
{
    ngx_int_t         rc;
    ngx_table_elt_t  *h;

    h = ngx_http_safedelete_header_in(ctx->request, "SafeDelete-Confirm");

    if (h == NULL) {
        return NGX_OK;
    }

    rc = ngx_http_safedelete_confirm_check(ctx, &h->value);

    if (rc == NGX_OK) {
        ctx->confirm_ok = 1;
        return NGX_OK;
    }

    if (rc == NGX_BUSY) {
        return ngx_http_safedelete_require_confirm(ctx,
                       NGX_HTTP_PRECONDITION_FAILED, "CONFIRMATION_EXPIRED",
                       "the confirmation has expired; confirm again with "
                       "the new token");
    }

    ngx_log_error(NGX_LOG_WARN, ctx->request->connection->log, 0,
                  "safedelete: invalid confirmation token for \"%V\"",
                  &ctx->request->uri);

    ngx_http_safedelete_refuse(ctx, NGX_HTTP_PRECONDITION_FAILED,
                               "CONFIRMATION_INVALID",
                               "the confirmation token is not valid for "
                               "this delete");
    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_safedelete_require_confirm(ngx_http_safedelete_ctx_t *ctx,
    ngx_uint_t status, const char *code, const char *detail)
{
    json_t  *extra;

    if (ngx_http_safedelete_confirm_make(ctx, &ctx->confirm_token)
        != NGX_OK)
    {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "INTERNAL_ERROR", "no token");
        return NGX_DECLINED;
    }

    extra = json_pack("{s:s%,s:I}",
                      "confirm_token", ctx->confirm_token.data,
                      ctx->confirm_token.len,
                      "expires_in", (json_int_t) ctx->policy->confirm_ttl);

    if (extra == NULL
        || ngx_http_safedelete_json_own(ctx->request->pool, extra) != NGX_OK)
    {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "INTERNAL_ERROR", "out of memory");
        return NGX_DECLINED;
    }

    if (ctx->snapshot) {
        json_object_set(extra, "record", ctx->snapshot);
    }

    if (ctx->counts) {
        json_object_set(extra, "dependencies", ctx->counts);
    }

    ctx->problem_extra = extra;

    ngx_http_safedelete_refuse(ctx, status, code, detail);

    return NGX_DECLINED;
}


ngx_table_elt_t *
ngx_http_safedelete_header_in(ngx_http_request_t *r, const char *name)
{
    size_t            len;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    len = ngx_strlen(name);
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}


ngx_int_t
ngx_http_safedelete_header_out(ngx_http_request_t *r, const char *name,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value = *value;

    return NGX_OK;
}


/* an HTTP call that outlives its request: nobody waits for its answer */

void
ngx_http_safedelete_background(ngx_http_safedelete_ctx_t *ctx,
    ngx_str_t *method, ngx_str_t *url, ngx_str_t *body)
{
    ngx_http_safedelete_http_request_t  req;

    ngx_memzero(&req, sizeof(ngx_http_safedelete_http_request_t));

    if (ngx_http_safedelete_call_headers(ctx, &req.headers) != NGX_OK) {
        return;
    }

    req.method = *method;
    req.url = *url;

    if (body) {
        req.body = *body;
    }

    req.timeout = ctx->policy->upstream_timeout;
    req.log = ngx_cycle->log;

    (void) ngx_http_safedelete_http_start(&req);
}


/* an undo record with the snapshot, before anything is changed */

static void
ngx_http_safedelete_step_record(ngx_http_safedelete_ctx_t *ctx)
{
    u_char                          *p;
    void                            *op;
    ngx_str_t                        expires;
    ngx_keyval_t                     f[18];
    ngx_uint_t                       n;
    ngx_msec_t                       ttl;
    ngx_http_request_t              *r;
    ngx_http_safedelete_loc_conf_t  *sdlcf;

    r = ctx->request;
    sdlcf = ctx->policy;

    if (sdlcf->undo_window == 0) {
        ctx->next = ngx_http_safedelete_step_record_done;
        return;
    }

    if (ctx->mode == NGX_HTTP_SAFEDELETE_MODE_SOFT
        && ngx_http_safedelete_soft_body(ctx) != NGX_OK)
    {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "INTERNAL_ERROR",
                                   "the soft-delete request could not be "
                                   "built; nothing was deleted");
        return;
    }

    if (ngx_http_safedelete_token_random(r->pool, &ctx->undo_token)
        != NGX_OK)
    {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "INTERNAL_ERROR",
                                   "no undo token could be made");
        return;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (p == NULL) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "INTERNAL_ERROR", "out of memory");
        return;
    }

    expires.data = p;
    expires.len = ngx_sprintf(p, "%L",
                              ctx->now_ms
                              + (int64_t) sdlcf->undo_window * 1000)
                  - p;

    n = 0;

#define ngx_http_safedelete_field(k, v)                                       \
    ngx_str_set(&f[n].key, k); f[n].value = v; n++

    ngx_http_safedelete_field("state", (ngx_str_t) ngx_string("active"));
    ngx_http_safedelete_field("policy", sdlcf->policy);
    ngx_http_safedelete_field("mode",
                              ngx_http_safedelete_mode_names[ctx->mode]);
    ngx_http_safedelete_field("actor", ctx->actor);
    ngx_http_safedelete_field("collection", ctx->collection);
    ngx_http_safedelete_field("id", ctx->id);
    ngx_http_safedelete_field("record_url", ctx->record_url);
    ngx_http_safedelete_field("collection_url", ctx->collection_url);
    ngx_http_safedelete_field("uri", r->uri);
    ngx_http_safedelete_field("deleted_at", ctx->now);
    ngx_http_safedelete_field("expires_at", expires);
    ngx_http_safedelete_field("snapshot", ctx->snapshot_text);

    if (ctx->cascade_text.len) {
        ngx_http_safedelete_field("cascade", ctx->cascade_text);
    }

    if (ctx->soft_revert.len) {
        ngx_http_safedelete_field("revert", ctx->soft_revert);
    }

    if (ngx_http_safedelete_request_id(r, &f[n].value) == NGX_OK) {
        ngx_str_set(&f[n].key, "request_id");
        n++;
    }

#undef ngx_http_safedelete_field

    ttl = (ngx_msec_t) (sdlcf->undo_window + sdlcf->backup_ttl) * 1000;

    ctx->call = ngx_http_safedelete_call_new(ctx);
    if (ctx->call == NULL) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "INTERNAL_ERROR", "out of memory");
        return;
    }

    op = ngx_http_safedelete_store_undo_put(&ctx->undo_token, f, n, ttl,
                                       ngx_http_safedelete_call_store_done,
                                       ctx->call);
    if (op == NULL) {
        ctx->call->rc = NGX_ERROR;
        ctx->next = ngx_http_safedelete_step_record_done;
        return;
    }

    ngx_http_safedelete_track_store(ctx, ctx->call, op);

    ctx->next = ngx_http_safedelete_step_record_done;
}


static void
ngx_http_safedelete_step_record_done(ngx_http_safedelete_ctx_t *ctx)
{
    if (ctx->undo_token.len && ctx->call->rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "safedelete: undo record for \"%V\" not stored",
                      &ctx->record_url);
        ngx_str_null(&ctx->undo_token);
        ngx_http_safedelete_fail_open(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "STORE_UNAVAILABLE",
                                      "the undo record could not be "
                                      "stored; nothing was deleted",
                                      ngx_http_safedelete_cascade_wave);
        return;
    }

    /*
     * related records change first: if one of them cannot, the record
     * itself is never touched and the others are put back
     */
    ctx->then = ngx_http_safedelete_step_act;
    ctx->next = ngx_http_safedelete_cascade_wave;
}


static void
ngx_http_safedelete_step_act(ngx_http_safedelete_ctx_t *ctx)
{
    if (ctx->mode == NGX_HTTP_SAFEDELETE_MODE_SOFT
        && ngx_http_safedelete_rewrite_soft(ctx) != NGX_OK)
    {
        if (ctx->undo_token.len) {
            ngx_http_safedelete_store_undo_delete(&ctx->undo_token);
            ngx_str_null(&ctx->undo_token);
        }

        ngx_http_safedelete_refuse(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "INTERNAL_ERROR",
                                   "the soft-delete request could not be "
                                   "built; nothing was deleted");
        return;
    }

    ngx_http_safedelete_finish(ctx);
}


/*
 * "safedelete_fail open": the delete goes on without the check that
 * failed, and an operator sees why
 */

static void
ngx_http_safedelete_fail_open(ngx_http_safedelete_ctx_t *ctx,
    ngx_uint_t status, const char *code, const char *detail,
    ngx_http_safedelete_step_pt resume)
{
    if (ctx->policy->fail == NGX_HTTP_SAFEDELETE_FAIL_CLOSED) {
        ngx_http_safedelete_refuse(ctx, status, code, detail);
        return;
    }

    ngx_log_error(NGX_LOG_WARN, ctx->request->connection->log, 0,
                  "safedelete: fail open: %s, DELETE of \"%V\" goes on "
                  "without undo", code, &ctx->record_url);

    ngx_str_null(&ctx->undo_token);
    ctx->then = ngx_http_safedelete_step_act;
    ctx->next = resume;
}


/*
 * the soft-delete body, and what it overwrites: the undo sets back the
 * record's own values (a draft stays a draft), not the defaults
 */

static ngx_int_t
ngx_http_safedelete_soft_body(ngx_http_safedelete_ctx_t *ctx)
{
    json_t                          *body, *revert, *v;
    ngx_http_request_t              *r;
    ngx_http_safedelete_loc_conf_t  *sdlcf;

    r = ctx->request;
    sdlcf = ctx->policy;

    body = json_object();

    if (body == NULL || ngx_http_safedelete_json_own(r->pool, body) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_safedelete_json_set_str(body, "deleted_at", &ctx->now)
           != NGX_OK
        || ngx_http_safedelete_json_set_str(body, "deleted_by",
                                            ctx->actor.len ? &ctx->actor
                                                           : NULL)
           != NGX_OK
        || json_object_set_new(body, "status", json_string("deleted")) != 0
        || ngx_http_safedelete_json_apply(r, body, sdlcf->soft_fields)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->snapshot) {
        revert = json_object();
        if (revert == NULL
            || ngx_http_safedelete_json_own(r->pool, revert) != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (ngx_http_safedelete_json_revert(revert, body, ctx->snapshot)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (ngx_http_safedelete_json_dump(r->pool, revert, &ctx->soft_revert)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (sdlcf->soft_method == NGX_HTTP_PUT && ctx->snapshot) {
        /* PUT replaces the record: send it whole, with the marks */
        v = json_deep_copy(ctx->snapshot);

        if (v == NULL || ngx_http_safedelete_json_own(r->pool, v) != NGX_OK
            || json_object_update(v, body) != 0)
        {
            return NGX_ERROR;
        }

        body = v;
    }

    return ngx_http_safedelete_json_dump(r->pool, body, &ctx->soft_body);
}


static ngx_int_t
ngx_http_safedelete_rewrite_soft(ngx_http_safedelete_ctx_t *ctx)
{
    ngx_str_t                        text, uri;
    ngx_buf_t                       *b;
    ngx_chain_t                     *cl;
    ngx_http_request_t              *r;
    ngx_http_request_body_t         *rb;
    ngx_http_safedelete_loc_conf_t  *sdlcf;

    r = ctx->request;
    sdlcf = ctx->policy;

    if (ctx->soft_body.data == NULL
        && ngx_http_safedelete_soft_body(ctx) != NGX_OK)
    {
        return NGX_ERROR;
    }

    text = ctx->soft_body;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "safedelete: soft delete body: %V", &text);

    b = ngx_create_temp_buf(r->pool, text.len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_cpymem(b->last, text.data, text.len);
    b->last_buf = 1;
    b->last_in_chain = 1;

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->buf = b;
    cl->next = NULL;

    rb = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
    if (rb == NULL) {
        return NGX_ERROR;
    }

    rb->bufs = cl;
    rb->buf = b;
    rb->rest = 0;

    r->request_body = rb;
    r->request_body_no_buffering = 0;
    r->headers_in.chunked = 0;
    r->headers_in.content_length_n = text.len;

    switch (sdlcf->soft_method) {

    case NGX_HTTP_PUT:
        ngx_str_set(&r->method_name, "PUT");
        break;

    case NGX_HTTP_POST:
        ngx_str_set(&r->method_name, "POST");
        break;

    default:
        ngx_str_set(&r->method_name, "PATCH");
        break;
    }

    r->method = sdlcf->soft_method;

    if (sdlcf->soft_uri) {
        if (ngx_http_complex_value(r, sdlcf->soft_uri, &uri) != NGX_OK) {
            return NGX_ERROR;
        }

        r->uri = uri;
        r->valid_unparsed_uri = 0;
    }

    return ngx_http_safedelete_set_content_type(r);
}


static ngx_int_t
ngx_http_safedelete_set_content_type(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("Content-Type") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Content-Type",
                               sizeof("Content-Type") - 1)
               == 0)
        {
            ngx_str_set(&h[i].value, "application/json");
            r->headers_in.content_type = &h[i];
            return NGX_OK;
        }
    }

    h = ngx_list_push(&r->headers_in.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    ngx_str_set(&h->key, "Content-Type");
    ngx_str_set(&h->value, "application/json");
    h->lowcase_key = (u_char *) "content-type";
    h->hash = ngx_hash_key(h->lowcase_key, h->key.len);

    r->headers_in.content_type = h;

    return NGX_OK;
}


static ngx_int_t
ngx_http_safedelete_request_id(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_http_variable_value_t        *vv;
    ngx_http_safedelete_main_conf_t  *sdmcf;

    sdmcf = ngx_http_get_module_main_conf(r, ngx_http_safedelete_module);

    if (sdmcf->request_id_index == NGX_ERROR) {
        return NGX_DECLINED;
    }

    vv = ngx_http_get_indexed_variable(r, sdmcf->request_id_index);

    if (vv == NULL || vv->not_found) {
        return NGX_DECLINED;
    }

    id->data = vv->data;
    id->len = vv->len;

    return NGX_OK;
}


void
ngx_http_safedelete_audit(ngx_http_safedelete_ctx_t *ctx, const char *event,
    ngx_uint_t status, const char *code)
{
    ngx_http_safedelete_audit_ext(ctx, event, status, code, NULL, 0);
}


void
ngx_http_safedelete_audit_ext(ngx_http_safedelete_ctx_t *ctx,
    const char *event, ngx_uint_t status, const char *code,
    ngx_keyval_t *extra, ngx_uint_t nextra)
{
    u_char                           *p;
    ngx_str_t                         st, deps;
    ngx_uint_t                        n, i, j;
    ngx_keyval_t                      f[24];
    ngx_http_request_t               *r;

    r = ctx->request;

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return;
    }

    st.data = p;
    st.len = status ? (size_t) (ngx_sprintf(p, "%ui", status) - p) : 0;

    n = 0;

#define ngx_http_safedelete_field(k, v)                                       \
    ngx_str_set(&f[n].key, k); f[n].value = v; n++

    ngx_http_safedelete_field("event",
                              ((ngx_str_t) { ngx_strlen(event),
                                             (u_char *) event }));
    ngx_http_safedelete_field("time", ctx->now);
    ngx_http_safedelete_field("actor", ctx->actor);
    ngx_http_safedelete_field("client", r->connection->addr_text);
    ngx_http_safedelete_field("method",
                              ctx->api ? r->method_name
                                       : ((ngx_str_t) ngx_string("DELETE")));
    ngx_http_safedelete_field("uri", r->uri);
    ngx_http_safedelete_field("collection", ctx->collection);
    ngx_http_safedelete_field("id", ctx->id);
    ngx_http_safedelete_field("mode",
                              ngx_http_safedelete_mode_names[ctx->mode]);
    ngx_http_safedelete_field("status", st);

    if (code) {
        ngx_http_safedelete_field("code",
                                  ((ngx_str_t) { ngx_strlen(code),
                                                 (u_char *) code }));
    }

    if (ctx->snapshot_text.len && extra == NULL) {
        ngx_http_safedelete_field("snapshot", ctx->snapshot_text);
    }

    if (ctx->counts && json_object_size(ctx->counts)
        && ngx_http_safedelete_json_dump(r->pool, ctx->counts, &deps)
           == NGX_OK)
    {
        ngx_http_safedelete_field("dependencies", deps);
    }

    /* an extra field of the same name replaces the request's own */
    for (i = 0; i < nextra; i++) {
        for (j = 0; j < n; j++) {
            if (f[j].key.len == extra[i].key.len
                && ngx_strncmp(f[j].key.data, extra[i].key.data,
                               f[j].key.len)
                   == 0)
            {
                f[j].value = extra[i].value;
                break;
            }
        }

        if (j == n && n < sizeof(f) / sizeof(f[0])) {
            f[n++] = extra[i];
        }
    }

    if (ngx_http_safedelete_request_id(r, &f[n].value) == NGX_OK) {
        ngx_str_set(&f[n].key, "request_id");
        n++;
    }

#undef ngx_http_safedelete_field

    ngx_http_safedelete_store_audit(f, n);
}
