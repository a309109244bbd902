/*
 * Copyright (C) ngx_safedelete_module authors
 *
 * The module's endpoints, served where "safedelete_api" is set:
 * POST <location>undo/<token> restores what a delete changed.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_safedelete.h"
#include "ngx_http_safedelete_json.h"
#include "ngx_http_safedelete_store.h"
#include "ngx_http_safedelete_token.h"


static ngx_int_t ngx_http_safedelete_api_route(ngx_http_request_t *r,
    ngx_str_t *route);
static ngx_int_t ngx_http_safedelete_api_preflight(ngx_http_request_t *r);
static ngx_int_t ngx_http_safedelete_api_cors(ngx_http_request_t *r);
static ngx_int_t ngx_http_safedelete_api_refuse(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *detail);
static void ngx_http_safedelete_api_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_safedelete_api_token(ngx_http_safedelete_ctx_t *ctx);
static ngx_int_t ngx_http_safedelete_api_count_header(ngx_http_request_t *r,
    const char *name, ngx_uint_t n);
static ngx_str_t *ngx_http_safedelete_api_field(
    ngx_http_safedelete_ctx_t *ctx, const char *name);

static void ngx_http_safedelete_undo_lookup(ngx_http_safedelete_ctx_t *ctx);
static void ngx_http_safedelete_undo_found(ngx_http_safedelete_ctx_t *ctx);
static void ngx_http_safedelete_undo_claimed(ngx_http_safedelete_ctx_t *ctx);
static void ngx_http_safedelete_undo_current(ngx_http_safedelete_ctx_t *ctx);
static void ngx_http_safedelete_undo_checks(ngx_http_safedelete_ctx_t *ctx);
static void ngx_http_safedelete_undo_checked(ngx_http_safedelete_ctx_t *ctx);
static void ngx_http_safedelete_undo_apply(ngx_http_safedelete_ctx_t *ctx);
static void ngx_http_safedelete_undo_restored(
    ngx_http_safedelete_ctx_t *ctx);
static void ngx_http_safedelete_undo_mark(ngx_http_safedelete_ctx_t *ctx);
static void ngx_http_safedelete_undo_fail(ngx_http_safedelete_ctx_t *ctx,
    ngx_uint_t status, const char *code, const char *detail);
static ngx_int_t ngx_http_safedelete_undo_revert(
    ngx_http_safedelete_ctx_t *ctx, json_t *body);
static void ngx_http_safedelete_undo_finished(
    ngx_http_safedelete_ctx_t *ctx);
static ngx_int_t ngx_http_safedelete_undo_transition(
    ngx_http_safedelete_ctx_t *ctx, const char *from, const char *to,
    int64_t not_after);


ngx_int_t
ngx_http_safedelete_api_handler(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_str_t                        route;
    ngx_http_safedelete_ctx_t       *ctx;
    ngx_http_safedelete_loc_conf_t  *sdlcf;

    if (r->method == NGX_HTTP_OPTIONS) {
        return ngx_http_safedelete_api_preflight(r);
    }

    if (ngx_http_safedelete_api_route(r, &route) != NGX_OK) {
        return ngx_http_safedelete_api_refuse(r, NGX_HTTP_NOT_FOUND,
                                              "ROUTE_NOT_FOUND",
                                              "no such endpoint");
    }

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_safedelete_api_refuse(r, NGX_HTTP_NOT_ALLOWED,
                                              "METHOD_NOT_ALLOWED",
                                              "undo takes POST");
    }

    sdlcf = ngx_http_get_module_loc_conf(r, ngx_http_safedelete_module);

    ctx = ngx_http_safedelete_ctx_create(r, sdlcf);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->api = 1;
    ctx->undo_token = route;

    rc = ngx_http_read_client_request_body(r,
                                        ngx_http_safedelete_api_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/* "undo/<token>" or "undo" below the location; the token, if any */

static ngx_int_t
ngx_http_safedelete_api_route(ngx_http_request_t *r, ngx_str_t *token)
{
    u_char                    *p, *last;
    ngx_str_t                  rel;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    rel = r->uri;

    if (clcf->regex == NULL && !clcf->named
        && rel.len >= clcf->name.len
        && ngx_strncmp(rel.data, clcf->name.data, clcf->name.len) == 0)
    {
        rel.data += clcf->name.len;
        rel.len -= clcf->name.len;
    }

    while (rel.len && rel.data[0] == '/') {
        rel.data++;
        rel.len--;
    }

    p = rel.data;
    last = rel.data + rel.len;

    if (rel.len < 4 || ngx_strncmp(p, "undo", 4) != 0
        || (rel.len > 4 && p[4] != '/'))
    {
        return NGX_DECLINED;
    }

    p += 4;

    while (p < last && *p == '/') {
        p++;
    }

    token->data = p;
    token->len = last - p;

    if (token->len && token->data[token->len - 1] == '/') {
        token->len--;
    }

    return NGX_OK;
}


static void
ngx_http_safedelete_api_body_handler(ngx_http_request_t *r)
{
    ngx_http_safedelete_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_safedelete_module);

    /* a bad token is refused from the resume event like any answer */
    (void) ngx_http_safedelete_api_token(ctx);

    ngx_http_safedelete_start(ctx, ngx_http_safedelete_undo_lookup);
}


/* the token from the path, or from {"token": "..."} in the body */

static ngx_int_t
ngx_http_safedelete_api_token(ngx_http_safedelete_ctx_t *ctx)
{
    json_t              *doc, *v;
    ngx_str_t            body;
    ngx_buf_t           *b;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (ctx->undo_token.len == 0
        && r->request_body && r->request_body->bufs
        && r->request_body->bufs->next == NULL
        && !r->request_body->bufs->buf->in_file)
    {
        b = r->request_body->bufs->buf;
        body.data = b->pos;
        body.len = b->last - b->pos;

        doc = body.len ? ngx_http_safedelete_json_parse(r->pool, &body,
                                                        r->connection->log)
                       : NULL;

        v = doc ? json_object_get(doc, "token") : NULL;

        if (v && json_is_string(v)) {
            ctx->undo_token.data = (u_char *) json_string_value(v);
            ctx->undo_token.len = json_string_length(v);
        }
    }

    if (!ngx_http_safedelete_token_valid(&ctx->undo_token)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "safedelete: malformed undo token");
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_BAD_REQUEST,
                                   "INVALID_TOKEN",
                                   "the undo token is missing or "
                                   "malformed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_safedelete_undo_lookup(ngx_http_safedelete_ctx_t *ctx)
{
    void  *op;

    ctx->call = ngx_http_safedelete_call_new(ctx);
    if (ctx->call == NULL) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "INTERNAL_ERROR", "out of memory");
        return;
    }

    op = ngx_http_safedelete_store_undo_get(&ctx->undo_token,
                                        ngx_http_safedelete_call_store_done,
                                        ctx->call);
    if (op == NULL) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "STORE_UNAVAILABLE",
                                   "the undo store is unavailable");
        return;
    }

    ngx_http_safedelete_track_store(ctx, ctx->call, op);

    ctx->next = ngx_http_safedelete_undo_found;
}


static ngx_str_t *
ngx_http_safedelete_api_field(ngx_http_safedelete_ctx_t *ctx,
    const char *name)
{
    size_t         len;
    ngx_uint_t     i;
    ngx_keyval_t  *kv;

    static ngx_str_t  empty = ngx_null_string;

    if (ctx->record == NULL) {
        return &empty;
    }

    len = ngx_strlen(name);
    kv = ctx->record->elts;

    for (i = 0; i < ctx->record->nelts; i++) {
        if (kv[i].key.len == len
            && ngx_strncmp(kv[i].key.data, name, len) == 0)
        {
            return &kv[i].value;
        }
    }

    return &empty;
}


static void
ngx_http_safedelete_undo_found(ngx_http_safedelete_ctx_t *ctx)
{
    int64_t                          expires;
    ngx_str_t                       *state, *mode, *owner, *v;
    ngx_http_request_t              *r;
    ngx_http_safedelete_loc_conf_t  *policy;

    r = ctx->request;

    if (ctx->call->rc == NGX_DECLINED) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_NOT_FOUND, "UNDO_NOT_FOUND",
                                   "no deletion is known for this token");
        return;
    }

    if (ctx->call->rc != NGX_OK) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "STORE_UNAVAILABLE",
                                   "the undo store is unavailable");
        return;
    }

    ctx->record = ctx->call->fields;

    /* restore with the policy of the location that deleted */
    policy = ngx_http_safedelete_find_policy(r,
                               ngx_http_safedelete_api_field(ctx, "policy"));
    if (policy) {
        ctx->policy = policy;
    }

    if (ngx_http_safedelete_ctx_identity(ctx) != NGX_OK) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "INTERNAL_ERROR", "identity failed");
        return;
    }

    mode = ngx_http_safedelete_api_field(ctx, "mode");
    ctx->mode = (mode->len == 4 && ngx_strncmp(mode->data, "hard", 4) == 0)
                ? NGX_HTTP_SAFEDELETE_MODE_HARD
                : NGX_HTTP_SAFEDELETE_MODE_SOFT;

    ctx->collection = *ngx_http_safedelete_api_field(ctx, "collection");
    ctx->id = *ngx_http_safedelete_api_field(ctx, "id");
    ctx->record_url = *ngx_http_safedelete_api_field(ctx, "record_url");
    ctx->collection_url = *ngx_http_safedelete_api_field(ctx,
                                                         "collection_url");
    ctx->snapshot_text = *ngx_http_safedelete_api_field(ctx, "snapshot");

    v = ngx_http_safedelete_api_field(ctx, "expires_at");
    expires = ngx_atoof(v->data, v->len);

    state = ngx_http_safedelete_api_field(ctx, "state");

    if (state->len == 6 && ngx_strncmp(state->data, "undone", 6) == 0) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_CONFLICT,
                                   "UNDO_ALREADY_DONE",
                                   "this deletion was already undone");
        return;
    }

    if (expires == NGX_ERROR || expires < ctx->now_ms) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_SAFEDELETE_GONE,
                                   "UNDO_EXPIRED",
                                   "the undo window of this deletion "
                                   "has ended");
        return;
    }

    owner = ngx_http_safedelete_api_field(ctx, "actor");

    if (ctx->policy->actor && owner->len && !ctx->admin
        && (ctx->actor.len != owner->len
            || ngx_strncmp(ctx->actor.data, owner->data, owner->len) != 0))
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "safedelete: undo by \"%V\" of a deletion by \"%V\" "
                      "refused", &ctx->actor, owner);
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_FORBIDDEN, "ACCESS_DENIED",
                                   "only the deleter or an admin may undo "
                                   "this deletion");
        return;
    }

    if (ngx_http_safedelete_undo_transition(ctx, "active", "restoring",
                                            ctx->now_ms)
        != NGX_OK)
    {
        return;
    }

    ctx->next = ngx_http_safedelete_undo_claimed;
}


static ngx_int_t
ngx_http_safedelete_undo_transition(ngx_http_safedelete_ctx_t *ctx,
    const char *from, const char *to, int64_t not_after)
{
    void  *op;

    ctx->call = ngx_http_safedelete_call_new(ctx);
    if (ctx->call == NULL) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "INTERNAL_ERROR", "out of memory");
        return NGX_ERROR;
    }

    op = ngx_http_safedelete_store_undo_transition(&ctx->undo_token, from,
                                        to, not_after,
                                        ngx_http_safedelete_call_store_done,
                                        ctx->call);
    if (op == NULL) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "STORE_UNAVAILABLE",
                                   "the undo store is unavailable");
        return NGX_ERROR;
    }

    ngx_http_safedelete_track_store(ctx, ctx->call, op);

    return NGX_OK;
}


static void
ngx_http_safedelete_undo_claimed(ngx_http_safedelete_ctx_t *ctx)
{
    ngx_str_t                   *res;
    ngx_http_safedelete_call_t  *call;

    static ngx_str_t  get = ngx_string("GET");

    call = ctx->call;
    res = &call->body;

    if (call->rc != NGX_OK) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "STORE_UNAVAILABLE",
                                   "the undo store is unavailable");
        return;
    }

    if (res->len == 2 && ngx_strncmp(res->data, "ok", 2) == 0) {

        ctx->claimed = 1;

        if (ctx->mode == NGX_HTTP_SAFEDELETE_MODE_HARD) {
            /* the record is gone: the backup stands for it */
            ctx->snapshot = ngx_http_safedelete_json_parse(
                                ctx->request->pool, &ctx->snapshot_text,
                                ctx->request->connection->log);
            ctx->next = ngx_http_safedelete_undo_checks;
            return;

        } else {
            /* what the record holds now feeds the restore fields */
            ctx->call = ngx_http_safedelete_call_http(ctx, &get,
                                                      &ctx->record_url, NULL);
            ctx->next = ngx_http_safedelete_undo_current;
        }

        if (ctx->call == NULL) {
            ngx_http_safedelete_undo_fail(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "INTERNAL_ERROR",
                                          "the restore could not be started");
        }

        return;
    }

    if (res->len == 7 && ngx_strncmp(res->data, "expired", 7) == 0) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_SAFEDELETE_GONE,
                                   "UNDO_EXPIRED",
                                   "the undo window of this deletion "
                                   "has ended");
        return;
    }

    if (res->len == 7 && ngx_strncmp(res->data, "missing", 7) == 0) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_NOT_FOUND, "UNDO_NOT_FOUND",
                                   "no deletion is known for this token");
        return;
    }

    if (res->len == 6 && ngx_strncmp(res->data, "undone", 6) == 0) {
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_CONFLICT,
                                   "UNDO_ALREADY_DONE",
                                   "this deletion was already undone");
        return;
    }

    ngx_http_safedelete_refuse(ctx, NGX_HTTP_CONFLICT, "UNDO_IN_PROGRESS",
                               "this deletion is being undone");
}


static void
ngx_http_safedelete_undo_current(ngx_http_safedelete_ctx_t *ctx)
{
    ngx_http_request_t          *r;
    ngx_http_safedelete_call_t  *call;

    r = ctx->request;
    call = ctx->call;

    if (call->rc != NGX_OK || call->status < 200 || call->status > 299) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "safedelete: undo: GET \"%V\" failed: %ui %V",
                      &ctx->record_url, call->status, &call->error);
        ngx_http_safedelete_undo_fail(ctx, NGX_HTTP_BAD_GATEWAY,
                                      "RESTORE_FAILED",
                                      "the record could not be read from the "
                                      "backend; nothing was restored");
        return;
    }

    ctx->snapshot = ngx_http_safedelete_json_parse(r->pool, &call->body,
                                                   r->connection->log);

    if (ctx->snapshot == NULL || !json_is_object(ctx->snapshot)) {
        ctx->snapshot = NULL;
        ngx_http_safedelete_undo_fail(ctx, NGX_HTTP_BAD_GATEWAY,
                                      "RESTORE_FAILED",
                                      "the backend's record is not a JSON "
                                      "object; nothing was restored");
        return;
    }

    ctx->next = ngx_http_safedelete_undo_checks;
}


/* "the original email is now taken by another user" and its kind */

static void
ngx_http_safedelete_undo_checks(ngx_http_safedelete_ctx_t *ctx)
{
    if (ctx->policy->restore_checks == NULL) {
        ctx->next = ngx_http_safedelete_undo_apply;
        return;
    }

    if (ngx_http_safedelete_deps_start(ctx, ctx->policy->restore_checks)
        != NGX_OK)
    {
        ngx_http_safedelete_undo_fail(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                      "INTERNAL_ERROR",
                                      "the restore checks could not be "
                                      "started; nothing was restored");
        return;
    }

    ctx->next = ngx_http_safedelete_undo_checked;
}


static void
ngx_http_safedelete_undo_checked(ngx_http_safedelete_ctx_t *ctx)
{
    json_t                        *extra;
    ngx_int_t                      rc;
    ngx_uint_t                     i, conflict;
    ngx_http_safedelete_lookup_t  *lookup;

    rc = ngx_http_safedelete_deps_collect(ctx, 1);

    if (rc != NGX_OK) {
        ngx_http_safedelete_undo_release(ctx);

        if (rc == NGX_ERROR) {
            ngx_http_safedelete_refuse(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                       "INTERNAL_ERROR", "out of memory");
        }

        return;
    }

    conflict = 0;
    lookup = ctx->lookups->elts;

    for (i = 0; i < ctx->lookups->nelts; i++) {
        if (lookup[i].count > 0) {
            conflict = 1;
        }
    }

    if (!conflict) {
        ctx->next = ngx_http_safedelete_undo_apply;
        return;
    }

    ngx_http_safedelete_undo_release(ctx);

    extra = json_pack("{s:O}", "conflicts", ctx->counts);
    if (extra) {
        (void) ngx_http_safedelete_json_own(ctx->request->pool, extra);
    }

    ctx->problem_extra = extra;

    ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                  "safedelete: undo of \"%V\" conflicts with current data",
                  &ctx->record_url);

    ngx_http_safedelete_refuse(ctx, NGX_HTTP_CONFLICT, "RESTORE_CONFLICT",
                               "the record cannot be restored as it was: "
                               "current data conflicts with it; nothing "
                               "was changed and the token stays valid");
}


static void
ngx_http_safedelete_undo_apply(ngx_http_safedelete_ctx_t *ctx)
{
    json_t                          *body;
    ngx_str_t                        text, method;
    ngx_http_request_t              *r;
    ngx_http_safedelete_loc_conf_t  *sdlcf;

    static ngx_str_t  post = ngx_string("POST");

    r = ctx->request;
    sdlcf = ctx->policy;

    if (ctx->mode == NGX_HTTP_SAFEDELETE_MODE_HARD) {
        /* the record is gone: create it again from the backup */
        ctx->call = ngx_http_safedelete_call_http(ctx, &post,
                                                  &ctx->collection_url,
                                                  &ctx->snapshot_text);
        if (ctx->call == NULL) {
            ngx_http_safedelete_undo_fail(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "INTERNAL_ERROR",
                                          "the restore could not be started");
            return;
        }

        ctx->next = ngx_http_safedelete_undo_restored;
        return;
    }

    body = sdlcf->soft_method == NGX_HTTP_PUT ? json_deep_copy(ctx->snapshot)
                                              : json_object();

    if (body == NULL
        || ngx_http_safedelete_json_own(r->pool, body) != NGX_OK
        || ngx_http_safedelete_undo_revert(ctx, body) != NGX_OK
        || ngx_http_safedelete_json_set_str(body, "restored_at", &ctx->now)
           != NGX_OK
        || ngx_http_safedelete_json_set_str(body, "restored_by",
                                            ctx->actor.len ? &ctx->actor
                                                           : NULL)
           != NGX_OK
        || ngx_http_safedelete_json_apply(r, body, sdlcf->restore_fields)
           != NGX_OK
        || ngx_http_safedelete_json_dump(r->pool, body, &text) != NGX_OK)
    {
        ngx_http_safedelete_undo_fail(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                      "INTERNAL_ERROR",
                                      "the restore request could not be "
                                      "built; nothing was restored");
        return;
    }

    if (sdlcf->soft_method == NGX_HTTP_PUT) {
        ngx_str_set(&method, "PUT");

    } else {
        ngx_str_set(&method, "PATCH");
    }

    ctx->call = ngx_http_safedelete_call_http(ctx, &method, &ctx->record_url,
                                              &text);
    if (ctx->call == NULL) {
        ngx_http_safedelete_undo_fail(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                      "INTERNAL_ERROR",
                                      "the restore could not be started");
        return;
    }

    ctx->next = ngx_http_safedelete_undo_restored;
}


static void
ngx_http_safedelete_undo_restored(ngx_http_safedelete_ctx_t *ctx)
{
    ngx_http_request_t          *r;
    ngx_http_safedelete_call_t  *call;

    r = ctx->request;
    call = ctx->call;

    if (call->rc != NGX_OK || call->status < 200 || call->status > 299) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "safedelete: undo of \"%V\" failed: backend "
                      "answered %ui %V", &ctx->record_url, call->status,
                      &call->error);
        ngx_http_safedelete_undo_release(ctx);
        ngx_http_safedelete_audit(ctx, "undo.failed", call->status,
                                  "RESTORE_FAILED");
        ngx_http_safedelete_refuse(ctx, NGX_HTTP_BAD_GATEWAY,
                                   "RESTORE_FAILED",
                                   "the backend refused the restore; the "
                                   "token stays valid");
        return;
    }

    ctx->restored_body = call->body;

    ngx_http_safedelete_audit(ctx, "undo", call->status, NULL);

    /* then what the cascade changed, as it was planned */
    if (ngx_http_safedelete_replay_plan(ctx,
                               ngx_http_safedelete_api_field(ctx, "cascade"))
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "safedelete: undo of \"%V\": the cascade plan is "
                      "unreadable, related records stay as they are",
                      &ctx->record_url);
        ctx->children = NULL;
    }

    ctx->then = ngx_http_safedelete_undo_mark;
    ctx->next = ngx_http_safedelete_cascade_wave;
}


static void
ngx_http_safedelete_undo_mark(ngx_http_safedelete_ctx_t *ctx)
{
    if (ngx_http_safedelete_undo_transition(ctx, "restoring", "undone", 0)
        != NGX_OK)
    {
        return;
    }

    ctx->claimed = 0;

    ctx->next = ngx_http_safedelete_undo_finished;
}


static void
ngx_http_safedelete_undo_finished(ngx_http_safedelete_ctx_t *ctx)
{
    if (ctx->call->rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "safedelete: undo of \"%V\" done but not recorded",
                      &ctx->record_url);
    }

    ngx_str_set(&ctx->decision, "undone");
    ngx_http_safedelete_finish(ctx);
}


/*
 * the values the soft delete overwrote; records deleted by an older
 * version of the module get the defaults
 */

static ngx_int_t
ngx_http_safedelete_undo_revert(ngx_http_safedelete_ctx_t *ctx, json_t *body)
{
    json_t     *revert;
    ngx_str_t  *text;

    text = ngx_http_safedelete_api_field(ctx, "revert");

    if (text->len) {
        revert = ngx_http_safedelete_json_parse(ctx->request->pool, text,
                                                ctx->request->connection->log);

        if (revert && json_is_object(revert)) {
            return json_object_update(body, revert) == 0 ? NGX_OK
                                                         : NGX_ERROR;
        }
    }

    if (json_object_set_new(body, "deleted_at", json_null()) != 0
        || json_object_set_new(body, "deleted_by", json_null()) != 0
        || json_object_set_new(body, "status", json_string("active")) != 0)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* a refusal after the token was claimed gives the token back */

static void
ngx_http_safedelete_undo_fail(ngx_http_safedelete_ctx_t *ctx,
    ngx_uint_t status, const char *code, const char *detail)
{
    ngx_http_safedelete_undo_release(ctx);
    ngx_http_safedelete_refuse(ctx, status, code, detail);
}


/* a failed restore gives the token back for another try */

void
ngx_http_safedelete_undo_release(ngx_http_safedelete_ctx_t *ctx)
{
    if (!ctx->claimed) {
        return;
    }

    ctx->claimed = 0;

    (void) ngx_http_safedelete_store_undo_transition(&ctx->undo_token,
                                                     "restoring", "active",
                                                     0, NULL, NULL);
}


void
ngx_http_safedelete_api_respond(ngx_http_safedelete_ctx_t *ctx)
{
    ngx_int_t            rc;
    ngx_str_t            ctype, body;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (ngx_http_safedelete_api_cors(r) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    if (ctx->problem_status) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "safedelete: undo refused: %ui %V: %V",
                      ctx->problem_status, &ctx->problem_code,
                      &ctx->problem_detail);

        rc = ngx_http_safedelete_send_problem(r, ctx->problem_status,
                                              &ctx->problem_code,
                                              &ctx->problem_detail,
                                              ctx->problem_extra);
        ngx_http_finalize_request(r, rc);
        return;
    }

    body = ctx->restored_body;

    if (body.len == 0) {
        ngx_str_set(&body, "{}");
    }

    if (ctx->children && ctx->children->nelts
        && ngx_http_safedelete_api_count_header(r, "SafeDelete-Restored",
                         ctx->children->nelts - ctx->children_failed)
           != NGX_OK)
    {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    if (ctx->children_failed
        && ngx_http_safedelete_api_count_header(r, "SafeDelete-Restore-Failed",
                                                ctx->children_failed)
           != NGX_OK)
    {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    ngx_str_set(&ctype, "application/json");

    rc = ngx_http_safedelete_send(r, NGX_HTTP_OK, &ctype, &body);

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_safedelete_api_refuse(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *detail)
{
    ngx_int_t  rc;
    ngx_str_t  c, d;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_safedelete_api_cors(r) != NGX_OK) {
        return NGX_ERROR;
    }

    c.data = (u_char *) code;
    c.len = ngx_strlen(code);
    d.data = (u_char *) detail;
    d.len = ngx_strlen(detail);

    return ngx_http_safedelete_send_problem(r, status, &c, &d, NULL);
}


/* a frontend on another origin calls undo with its own credentials */

static ngx_int_t
ngx_http_safedelete_api_cors(ngx_http_request_t *r)
{
    ngx_str_t         v;
    ngx_table_elt_t  *origin;

    origin = ngx_http_safedelete_header_in(r, "Origin");

    if (origin == NULL) {
        return NGX_OK;
    }

    ngx_str_set(&v, "true");

    if (ngx_http_safedelete_header_out(r, "Access-Control-Allow-Origin",
                                    &origin->value)
           != NGX_OK
        || ngx_http_safedelete_header_out(r, "Access-Control-Allow-Credentials",
                                       &v)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_str_set(&v, "Origin");

    return ngx_http_safedelete_header_out(r, "Vary", &v);
}


static ngx_int_t
ngx_http_safedelete_api_preflight(ngx_http_request_t *r)
{
    ngx_int_t         rc;
    ngx_str_t         v;
    ngx_table_elt_t  *req;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_safedelete_api_cors(r) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_str_set(&v, "POST, GET, OPTIONS");

    if (ngx_http_safedelete_header_out(r, "Access-Control-Allow-Methods", &v)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    req = ngx_http_safedelete_header_in(r,
                                           "Access-Control-Request-Headers");

    if (req && ngx_http_safedelete_header_out(r, "Access-Control-Allow-Headers",
                                           &req->value)
               != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_str_set(&v, "600");

    if (ngx_http_safedelete_header_out(r, "Access-Control-Max-Age", &v)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    r->headers_out.status = NGX_HTTP_NO_CONTENT;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    return ngx_http_send_header(r);
}


static ngx_int_t
ngx_http_safedelete_api_count_header(ngx_http_request_t *r, const char *name,
    ngx_uint_t n)
{
    ngx_str_t  v;

    v.data = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (v.data == NULL) {
        return NGX_ERROR;
    }

    v.len = ngx_sprintf(v.data, "%ui", n) - v.data;

    return ngx_http_safedelete_header_out(r, name, &v);
}
