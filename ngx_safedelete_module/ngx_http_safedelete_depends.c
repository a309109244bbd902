/*
 * Copyright (C) ngx_safedelete_module authors
 *
 * Related records: lookups (all of a request at once), their counts, and
 * the cascades that change them, in waves of a bounded size.  Every
 * change is planned with the request that puts it back, so a failed
 * cascade, a refused main delete and an undo all replay the same list.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_safedelete.h"
#include "ngx_http_safedelete_json.h"
#include "ngx_http_safedelete_store.h"
#include "ngx_http_safedelete_uri.h"


static ngx_int_t ngx_http_safedelete_deps_count(json_t *doc,
    ngx_int_t header, ngx_int_t *count, json_t **items);
static ngx_int_t ngx_http_safedelete_deps_child(
    ngx_http_safedelete_ctx_t *ctx, ngx_http_safedelete_lookup_t *lookup,
    json_t *item, json_t *plan);
static ngx_int_t ngx_http_safedelete_deps_item_id(ngx_pool_t *pool,
    json_t *item, ngx_str_t *id);
static void ngx_http_safedelete_wave_done(ngx_http_safedelete_ctx_t *ctx);
static void ngx_http_safedelete_putback_wave(ngx_http_safedelete_ctx_t *ctx);
static void ngx_http_safedelete_putback_done(ngx_http_safedelete_ctx_t *ctx);
static void ngx_http_safedelete_putback_finished(
    ngx_http_safedelete_ctx_t *ctx);
static void ngx_http_safedelete_dependency_failed(
    ngx_http_safedelete_ctx_t *ctx, ngx_http_safedelete_lookup_t *lookup,
    const char *why, ngx_uint_t checks);


static ngx_str_t  ngx_http_safedelete_patch = ngx_string("PATCH");
static ngx_str_t  ngx_http_safedelete_post = ngx_string("POST");
static ngx_str_t  ngx_http_safedelete_delete = ngx_string("DELETE");


ngx_int_t
ngx_http_safedelete_deps_start(ngx_http_safedelete_ctx_t *ctx,
    ngx_array_t *deps)
{
    u_char                            *q;
    ngx_str_t                          rel, url;
    ngx_uint_t                         i;
    ngx_http_request_t                *r;
    ngx_http_safedelete_lookup_t      *lookup;
    ngx_http_safedelete_dependency_t  *dep;

    static ngx_str_t  get = ngx_string("GET");

    r = ctx->request;

    ctx->lookups = ngx_array_create(r->pool, deps->nelts,
                                    sizeof(ngx_http_safedelete_lookup_t));
    if (ctx->lookups == NULL) {
        return NGX_ERROR;
    }

    dep = deps->elts;

    for (i = 0; i < deps->nelts; i++) {

        lookup = ngx_array_push(ctx->lookups);
        if (lookup == NULL) {
            return NGX_ERROR;
        }

        ngx_memzero(lookup, sizeof(ngx_http_safedelete_lookup_t));
        lookup->dep = &dep[i];

        if (ngx_http_safedelete_uri_value(ctx, &dep[i].uri, &rel) != NGX_OK
            || ngx_http_safedelete_uri_resolve(r, ctx->policy, &rel, &url)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        q = ngx_strlchr(rel.data, rel.data + rel.len, '?');

        lookup->collection.data = rel.data;
        lookup->collection.len = (q ? q : rel.data + rel.len) - rel.data;

        q = ngx_strlchr(url.data, url.data + url.len, '?');

        lookup->collection_url.data = url.data;
        lookup->collection_url.len = (q ? q : url.data + url.len) - url.data;

        while (lookup->collection_url.len > 1
               && lookup->collection_url.data[lookup->collection_url.len - 1]
                  == '/')
        {
            lookup->collection_url.len--;
        }

        lookup->call = ngx_http_safedelete_call_http(ctx, &get, &url, NULL);
        if (lookup->call == NULL) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * counts every lookup; checks (restore checks) never fail open: a check
 * that did not run is a conflict nobody looked for
 */

ngx_int_t
ngx_http_safedelete_deps_collect(ngx_http_safedelete_ctx_t *ctx,
    ngx_uint_t checks)
{
    json_t                        *doc, *counts;
    ngx_uint_t                     i;
    ngx_http_request_t            *r;
    ngx_http_safedelete_call_t    *call;
    ngx_http_safedelete_lookup_t  *lookup;

    r = ctx->request;

    counts = json_object();
    if (counts == NULL
        || ngx_http_safedelete_json_own(r->pool, counts) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->counts = counts;

    lookup = ctx->lookups->elts;

    for (i = 0; i < ctx->lookups->nelts; i++) {
        call = lookup[i].call;

        if (call->rc != NGX_OK || call->status < 200 || call->status > 299) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "safedelete: lookup \"%V\" failed: %ui %V",
                          &lookup[i].dep->name, call->status, &call->error);
            ngx_http_safedelete_dependency_failed(ctx, &lookup[i],
                                                  "the lookup failed",
                                                  checks);
            if (ctx->state == NGX_HTTP_SAFEDELETE_STATE_DONE) {
                return NGX_DECLINED;
            }

            continue;
        }

        doc = ngx_http_safedelete_json_parse(r->pool, &call->body,
                                             r->connection->log);

        if (ngx_http_safedelete_deps_count(doc, call->total_count,
                                           &lookup[i].count,
                                           &lookup[i].items)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "safedelete: lookup \"%V\" answered nothing "
                          "countable", &lookup[i].dep->name);
            ngx_http_safedelete_dependency_failed(ctx, &lookup[i],
                                                  "the lookup's answer "
                                                  "cannot be counted",
                                                  checks);
            if (ctx->state == NGX_HTTP_SAFEDELETE_STATE_DONE) {
                return NGX_DECLINED;
            }

            continue;
        }

        if (json_object_set_new(counts, (char *) lookup[i].dep->name.data,
                                json_integer(lookup[i].count))
            != 0)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_http_safedelete_dependency_failed(ngx_http_safedelete_ctx_t *ctx,
    ngx_http_safedelete_lookup_t *lookup, const char *why, ngx_uint_t checks)
{
    json_t  *extra;

    if (!checks && ctx->policy->fail == NGX_HTTP_SAFEDELETE_FAIL_OPEN
        && lookup->dep->action != NGX_HTTP_SAFEDELETE_DEP_CASCADE
        && lookup->dep->action != NGX_HTTP_SAFEDELETE_DEP_UPDATE)
    {
        ngx_log_error(NGX_LOG_WARN, ctx->request->connection->log, 0,
                      "safedelete: fail open: lookup \"%V\" skipped",
                      &lookup->dep->name);
        lookup->count = 0;
        return;
    }

    extra = json_pack("{s:s}", "dependency", lookup->dep->name.data);

    if (extra) {
        (void) ngx_http_safedelete_json_own(ctx->request->pool, extra);
    }

    ctx->problem_extra = extra;

    ngx_http_safedelete_refuse(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                               "DEPENDENCY_CHECK_FAILED", why);
}


/* X-Total-Count, a JSON array, or Xano's itemsTotal / items */

static ngx_int_t
ngx_http_safedelete_deps_count(json_t *doc, ngx_int_t header,
    ngx_int_t *count, json_t **items)
{
    json_t  *v;

    *items = NULL;

    if (doc == NULL) {
        return NGX_ERROR;
    }

    if (json_is_array(doc)) {
        *items = doc;

    } else if (json_is_object(doc)) {
        v = json_object_get(doc, "items");
        if (json_is_array(v)) {
            *items = v;
        }
    }

    if (header >= 0) {
        *count = header;
        return NGX_OK;
    }

    if (json_is_object(doc)) {
        v = json_object_get(doc, "itemsTotal");

        if (json_is_integer(v) && json_integer_value(v) >= 0) {
            *count = (ngx_int_t) json_integer_value(v);
            return NGX_OK;
        }
    }

    if (*items) {
        *count = (ngx_int_t) json_array_size(*items);
        return NGX_OK;
    }

    return NGX_ERROR;
}


/* what cascade and update dependencies will change, and its undo */

ngx_int_t
ngx_http_safedelete_deps_plan(ngx_http_safedelete_ctx_t *ctx)
{
    u_char                        *p;
    json_t                        *plan, *item, *extra;
    size_t                         index, size;
    ngx_int_t                      total;
    ngx_uint_t                     i;
    ngx_http_request_t            *r;
    ngx_http_safedelete_lookup_t  *lookup;

    r = ctx->request;

    if (ctx->lookups == NULL) {
        return NGX_OK;
    }

    lookup = ctx->lookups->elts;
    total = 0;
    size = 0;

    for (i = 0; i < ctx->lookups->nelts; i++) {
        if (lookup[i].dep->action != NGX_HTTP_SAFEDELETE_DEP_CASCADE
            && lookup[i].dep->action != NGX_HTTP_SAFEDELETE_DEP_UPDATE)
        {
            continue;
        }

        total += lookup[i].count;
        size += lookup[i].dep->name.len + NGX_INT_T_LEN + 3;

        /* a paged answer hides records: never change only some of them */
        if (lookup[i].items == NULL
            || (ngx_int_t) json_array_size(lookup[i].items) < lookup[i].count)
        {
            total = NGX_MAX_INT_T_VALUE;
        }
    }

    if (total > (ngx_int_t) ctx->policy->dependency_limit) {
        extra = json_pack("{s:O,s:i}", "dependencies", ctx->counts,
                          "limit", (json_int_t) ctx->policy->dependency_limit);
        if (extra) {
            (void) ngx_http_safedelete_json_own(r->pool, extra);
        }

        ctx->problem_extra = extra;
        ctx->problem_event = "delete.blocked";

        ngx_http_safedelete_refuse(ctx, NGX_HTTP_CONFLICT,
                                   "TOO_MANY_DEPENDENTS",
                                   "this delete would change more related "
                                   "records than allowed; nothing was "
                                   "changed");
        return NGX_DECLINED;
    }

    if (size == 0) {
        return NGX_OK;
    }

    ctx->children = ngx_array_create(r->pool, total ? total : 1,
                                     sizeof(ngx_http_safedelete_child_t));
    if (ctx->children == NULL) {
        return NGX_ERROR;
    }

    plan = json_array();
    if (plan == NULL || ngx_http_safedelete_json_own(r->pool, plan) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->cascade_header.data = ngx_pnalloc(r->pool, size);
    if (ctx->cascade_header.data == NULL) {
        return NGX_ERROR;
    }

    p = ctx->cascade_header.data;

    for (i = 0; i < ctx->lookups->nelts; i++) {
        if (lookup[i].dep->action != NGX_HTTP_SAFEDELETE_DEP_CASCADE
            && lookup[i].dep->action != NGX_HTTP_SAFEDELETE_DEP_UPDATE)
        {
            continue;
        }

        if (p != ctx->cascade_header.data) {
            *p++ = ',';
            *p++ = ' ';
        }

        p = ngx_sprintf(p, "%V=%i", &lookup[i].dep->name, lookup[i].count);

        json_array_foreach(lookup[i].items, index, item) {
            if (ngx_http_safedelete_deps_child(ctx, &lookup[i], item, plan)
                != NGX_OK)
            {
                return ctx->state == NGX_HTTP_SAFEDELETE_STATE_DONE
                       ? NGX_DECLINED : NGX_ERROR;
            }
        }
    }

    ctx->cascade_header.len = p - ctx->cascade_header.data;

    return ngx_http_safedelete_json_dump(r->pool, plan, &ctx->cascade_text);
}


static ngx_int_t
ngx_http_safedelete_deps_child(ngx_http_safedelete_ctx_t *ctx,
    ngx_http_safedelete_lookup_t *lookup, json_t *item, json_t *plan)
{
    u_char                       *p;
    json_t                       *body, *revert, *v;
    ngx_str_t                     id;
    ngx_http_request_t           *r;
    ngx_http_safedelete_child_t  *child;

    r = ctx->request;

    if (!json_is_object(item)
        || ngx_http_safedelete_deps_item_id(r->pool, item, &id) != NGX_OK)
    {
        ngx_http_safedelete_dependency_failed(ctx, lookup,
                                              "a related record has no "
                                              "usable id", 1);
        return NGX_DECLINED;
    }

    child = ngx_array_push(ctx->children);
    if (child == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(child, sizeof(ngx_http_safedelete_child_t));

    child->lookup = lookup;
    child->id = id;

    child->url.len = lookup->collection_url.len + 1 + 3 * id.len;
    child->url.data = ngx_pnalloc(r->pool, child->url.len);
    if (child->url.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(child->url.data, lookup->collection_url.data,
                   lookup->collection_url.len);
    *p++ = '/';
    p = (u_char *) ngx_escape_uri(p, id.data, id.len, NGX_ESCAPE_ARGS);
    child->url.len = p - child->url.data;

    child->revert_url = child->url;

    if (lookup->dep->action == NGX_HTTP_SAFEDELETE_DEP_CASCADE
        && ctx->mode == NGX_HTTP_SAFEDELETE_MODE_HARD)
    {
        /* gone for good unless the backup is posted back */
        child->method = ngx_http_safedelete_delete;
        child->revert_method = ngx_http_safedelete_post;
        child->revert_url = lookup->collection_url;

        if (ngx_http_safedelete_json_dump(r->pool, item, &child->revert_body)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        revert = json_deep_copy(item);

    } else {
        body = json_object();
        if (body == NULL
            || ngx_http_safedelete_json_own(r->pool, body) != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (lookup->dep->action == NGX_HTTP_SAFEDELETE_DEP_CASCADE
            && (ngx_http_safedelete_json_set_str(body, "deleted_at",
                                                 &ctx->now)
                   != NGX_OK
                || ngx_http_safedelete_json_set_str(body, "deleted_by",
                                                    ctx->actor.len
                                                    ? &ctx->actor : NULL)
                   != NGX_OK
                || json_object_set_new(body, "status",
                                       json_string("deleted"))
                   != 0))
        {
            return NGX_ERROR;
        }

        if (ngx_http_safedelete_json_apply(r, body, lookup->dep->fields)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        /* the undo sets back exactly what the change set */
        revert = json_object();
        if (revert == NULL
            || ngx_http_safedelete_json_own(r->pool, revert) != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (ngx_http_safedelete_json_revert(revert, body, item) != NGX_OK) {
            return NGX_ERROR;
        }

        child->method = ngx_http_safedelete_patch;
        child->revert_method = ngx_http_safedelete_patch;

        if (ngx_http_safedelete_json_dump(r->pool, body, &child->body)
               != NGX_OK
            || ngx_http_safedelete_json_dump(r->pool, revert,
                                             &child->revert_body)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        json_incref(revert);
    }

    if (revert == NULL) {
        return NGX_ERROR;
    }

    v = json_pack("{s:s%,s:s%,s:s%,s:o}",
                  "dependency", lookup->dep->name.data, lookup->dep->name.len,
                  "method", child->revert_method.data,
                  child->revert_method.len,
                  "url", child->revert_url.data, child->revert_url.len,
                  "body", revert);

    if (v == NULL || json_array_append_new(plan, v) != 0) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_safedelete_deps_item_id(ngx_pool_t *pool, json_t *item,
    ngx_str_t *id)
{
    size_t   i;
    json_t  *v;

    v = json_object_get(item, "id");

    if (!json_is_string(v) && !json_is_integer(v)) {
        return NGX_ERROR;
    }

    if (ngx_http_safedelete_json_text(pool, v, id) != NGX_OK
        || id->len == 0 || id->len > NGX_HTTP_SAFEDELETE_ID_MAX)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < id->len; i++) {
        if (id->data[i] < 0x20 || id->data[i] == 0x7f || id->data[i] == '/'
            || (id->data[i] == '.' && i + 1 < id->len
                && id->data[i + 1] == '.'))
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* the undo record's plan, read back: each entry is a change to replay */

ngx_int_t
ngx_http_safedelete_replay_plan(ngx_http_safedelete_ctx_t *ctx,
    ngx_str_t *text)
{
    json_t                       *plan, *entry, *m, *u, *b;
    size_t                        index;
    ngx_str_t                     s;
    ngx_http_request_t           *r;
    ngx_http_safedelete_child_t  *child;

    r = ctx->request;

    if (text->len == 0) {
        return NGX_OK;
    }

    plan = ngx_http_safedelete_json_parse(r->pool, text, r->connection->log);
    if (plan == NULL || !json_is_array(plan)) {
        return NGX_ERROR;
    }

    ctx->children = ngx_array_create(r->pool, json_array_size(plan) + 1,
                                     sizeof(ngx_http_safedelete_child_t));
    if (ctx->children == NULL) {
        return NGX_ERROR;
    }

    json_array_foreach(plan, index, entry) {
        m = json_object_get(entry, "method");
        u = json_object_get(entry, "url");
        b = json_object_get(entry, "body");

        if (!json_is_string(m) || !json_is_string(u) || b == NULL) {
            return NGX_ERROR;
        }

        child = ngx_array_push(ctx->children);
        if (child == NULL) {
            return NGX_ERROR;
        }

        ngx_memzero(child, sizeof(ngx_http_safedelete_child_t));

        s.data = (u_char *) json_string_value(m);
        s.len = json_string_length(m);
        child->method = s;

        s.data = (u_char *) json_string_value(u);
        s.len = json_string_length(u);
        child->url = s;

        if (ngx_http_safedelete_json_dump(r->pool, b, &child->body)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* up to NGX_HTTP_SAFEDELETE_WAVE changes at once; ctx->then follows */

void
ngx_http_safedelete_cascade_wave(ngx_http_safedelete_ctx_t *ctx)
{
    ngx_uint_t                    n;
    ngx_http_safedelete_child_t  *child;

    if (ctx->children == NULL || ctx->next_child >= ctx->children->nelts) {
        ctx->next = ctx->then;
        return;
    }

    child = ctx->children->elts;

    for (n = 0;
         n < NGX_HTTP_SAFEDELETE_WAVE
         && ctx->next_child < ctx->children->nelts;
         n++, ctx->next_child++)
    {
        child[ctx->next_child].call = ngx_http_safedelete_call_http(ctx,
                                          &child[ctx->next_child].method,
                                          &child[ctx->next_child].url,
                                          child[ctx->next_child].body.len
                                          ? &child[ctx->next_child].body
                                          : NULL);
    }

    ctx->next = ngx_http_safedelete_wave_done;
}


static void
ngx_http_safedelete_wave_done(ngx_http_safedelete_ctx_t *ctx)
{
    json_t                       *failed, *v;
    ngx_uint_t                    i;
    ngx_keyval_t                  kv[4];
    ngx_http_safedelete_call_t   *call;
    ngx_http_safedelete_child_t  *child;

    child = ctx->children->elts;
    failed = ctx->cascade_failures;

    for (i = 0; i < ctx->next_child; i++) {
        call = child[i].call;

        if (child[i].done || call == NULL || call->op) {
            continue;
        }

        if (call->rc == NGX_OK && call->status >= 200
            && call->status <= 299)
        {
            child[i].done = 1;

            if (child[i].lookup) {
                /* an entry about the related record, naming its cause */
                ngx_str_set(&kv[0].key, "collection");
                kv[0].value = child[i].lookup->collection;
                ngx_str_set(&kv[1].key, "id");
                kv[1].value = child[i].id;
                ngx_str_set(&kv[2].key, "dependency");
                kv[2].value = child[i].lookup->dep->name;
                ngx_str_set(&kv[3].key, "parent_id");
                kv[3].value = ctx->id;

                ngx_http_safedelete_audit_ext(ctx, "delete.cascaded",
                                              call->status, NULL, kv, 4);
            }

            continue;
        }

        ctx->children_failed++;

        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "safedelete: %V \"%V\" failed: %ui %V",
                      &child[i].method, &child[i].url, call->status,
                      &call->error);

        if (child[i].lookup == NULL) {
            /* an undo's replay: counted, the rest goes on */
            child[i].done = 1;
            continue;
        }

        if (failed == NULL) {
            failed = json_array();
            if (failed == NULL
                || ngx_http_safedelete_json_own(ctx->request->pool, failed)
                   != NGX_OK)
            {
                failed = NULL;
                continue;
            }
        }

        v = json_pack("{s:s%,s:s%,s:i}",
                      "dependency", child[i].lookup->dep->name.data,
                      child[i].lookup->dep->name.len,
                      "id", child[i].id.data, child[i].id.len,
                      "status", (json_int_t) call->status);
        if (v) {
            json_array_append_new(failed, v);
        }

        child[i].done = 2;
    }

    ctx->cascade_failures = failed;

    if (ctx->children_failed && ctx->children->nelts
        && child[0].lookup != NULL)
    {
        if (ctx->undo_token.len) {
            ngx_http_safedelete_store_undo_delete(&ctx->undo_token);
            ngx_str_null(&ctx->undo_token);
        }

        /* the client hears of it once the data is as it was */
        ctx->next = ngx_http_safedelete_putback_wave;
        return;
    }

    ngx_http_safedelete_cascade_wave(ctx);
}


static void
ngx_http_safedelete_putback_wave(ngx_http_safedelete_ctx_t *ctx)
{
    ngx_uint_t                    i, n;
    ngx_http_safedelete_child_t  *child;

    child = ctx->children->elts;
    n = 0;

    for (i = 0; i < ctx->children->nelts && n < NGX_HTTP_SAFEDELETE_WAVE;
         i++)
    {
        if (child[i].done != 1) {
            continue;
        }

        child[i].call = ngx_http_safedelete_call_http(ctx,
                                                 &child[i].revert_method,
                                                 &child[i].revert_url,
                                                 &child[i].revert_body);
        child[i].done = 3;
        n++;
    }

    ctx->next = n ? ngx_http_safedelete_putback_done
                  : ngx_http_safedelete_putback_finished;
}


static void
ngx_http_safedelete_putback_done(ngx_http_safedelete_ctx_t *ctx)
{
    ngx_uint_t                    i;
    ngx_http_safedelete_call_t   *call;
    ngx_http_safedelete_child_t  *child;

    child = ctx->children->elts;

    for (i = 0; i < ctx->children->nelts; i++) {
        if (child[i].done != 3) {
            continue;
        }

        child[i].done = 4;
        call = child[i].call;

        if (call == NULL || call->rc != NGX_OK || call->status < 200
            || call->status > 299)
        {
            ngx_log_error(NGX_LOG_CRIT, ctx->request->connection->log, 0,
                          "safedelete: %V \"%V\" to put back a related "
                          "record failed: %ui; it stays changed",
                          &child[i].revert_method, &child[i].revert_url,
                          call ? call->status : 0);
        }
    }

    ctx->next = ngx_http_safedelete_putback_wave;
}


static void
ngx_http_safedelete_putback_finished(ngx_http_safedelete_ctx_t *ctx)
{
    json_t  *extra;

    extra = ctx->cascade_failures
            ? json_pack("{s:O}", "failed", ctx->cascade_failures) : NULL;
    if (extra) {
        (void) ngx_http_safedelete_json_own(ctx->request->pool, extra);
    }

    ctx->problem_extra = extra;
    ctx->problem_event = "delete.failed";

    ngx_http_safedelete_refuse(ctx, NGX_HTTP_BAD_GATEWAY, "CASCADE_FAILED",
                               "a related record could not be changed; "
                               "the record was not deleted and the "
                               "related records were put back");
}


/* puts back what a cascade changed, outside the request's life */

void
ngx_http_safedelete_cascade_revert(ngx_http_safedelete_ctx_t *ctx)
{
    ngx_uint_t                    i;
    ngx_http_safedelete_child_t  *child;

    if (ctx->children == NULL) {
        return;
    }

    child = ctx->children->elts;

    for (i = 0; i < ctx->children->nelts; i++) {
        if (child[i].done != 1 || child[i].lookup == NULL) {
            continue;
        }

        ngx_log_error(NGX_LOG_WARN, ctx->request->connection->log, 0,
                      "safedelete: putting back %V", &child[i].revert_url);

        ngx_http_safedelete_background(ctx, &child[i].revert_method,
                                       &child[i].revert_url,
                                       &child[i].revert_body);
        child[i].done = 0;
    }
}
