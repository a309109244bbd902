/*
 * Copyright (C) ngx_safedelete_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_safedelete_redis.h"
#include "ngx_http_safedelete_store.h"


#define NGX_HTTP_SAFEDELETE_STORE_KEY_MAX  256


static void ngx_http_safedelete_store_status_reply(
    ngx_http_safedelete_redis_op_t *op, redisReply *reply);
static void ngx_http_safedelete_store_hash_reply(
    ngx_http_safedelete_redis_op_t *op, redisReply *reply);
static void ngx_http_safedelete_store_set_reply(
    ngx_http_safedelete_redis_op_t *op, redisReply *reply);
static size_t ngx_http_safedelete_store_key(u_char *buf, const char *kind,
    ngx_str_t *id);


/* replaces any record of the same token, and sets fields and TTL at once */
static const char  ngx_http_safedelete_store_put_lua[] =
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('HSET', KEYS[1], unpack(ARGV, 2))\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[1])\n"
    "return 'OK'\n";

/*
 * moves an undo record from one state to another, so that of two undo
 * calls racing on two gateways exactly one wins; a claim older than a
 * minute belongs to a worker that died mid-undo and may be taken over
 */
static const char  ngx_http_safedelete_store_transition_lua[] =
    "local s = redis.call('HGET', KEYS[1], 'state')\n"
    "if not s then return 'missing' end\n"
    "local now = tonumber(ARGV[3])\n"
    "if s == 'restoring' and ARGV[1] == 'active' and now > 0 then\n"
    "  local c = tonumber(redis.call('HGET', KEYS[1], 'claimed_at') or 0)\n"
    "  if c + 60000 < now then s = 'active' end\n"
    "end\n"
    "if s ~= ARGV[1] then return s end\n"
    "if now > 0 then\n"
    "  local e = tonumber(redis.call('HGET', KEYS[1], 'expires_at') or 0)\n"
    "  if e < now then return 'expired' end\n"
    "  redis.call('HSET', KEYS[1], 'claimed_at', ARGV[3])\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'state', ARGV[2])\n"
    "return 'ok'\n";


static ngx_http_safedelete_redis_script_t  ngx_http_safedelete_store_put;
static ngx_http_safedelete_redis_script_t  ngx_http_safedelete_store_trans;
static ngx_str_t                           ngx_http_safedelete_store_prefix;
static ngx_uint_t                          ngx_http_safedelete_store_maxlen;


void
ngx_http_safedelete_store_configure(ngx_str_t *prefix,
    ngx_uint_t audit_maxlen)
{
    ngx_http_safedelete_store_prefix = *prefix;
    ngx_http_safedelete_store_maxlen = audit_maxlen;

    ngx_http_safedelete_redis_script_init(&ngx_http_safedelete_store_put,
                                          ngx_http_safedelete_store_put_lua);
    ngx_http_safedelete_redis_script_init(&ngx_http_safedelete_store_trans,
                                    ngx_http_safedelete_store_transition_lua);
}


ngx_uint_t
ngx_http_safedelete_store_available(void)
{
    return ngx_http_safedelete_redis_available();
}


static size_t
ngx_http_safedelete_store_key(u_char *buf, const char *kind, ngx_str_t *id)
{
    u_char  *p;

    p = ngx_cpymem(buf, ngx_http_safedelete_store_prefix.data,
                   ngx_http_safedelete_store_prefix.len);
    p = ngx_cpymem(p, kind, ngx_strlen(kind));
    p = ngx_cpymem(p, id->data, ngx_min(id->len, 64));

    return p - buf;
}


void *
ngx_http_safedelete_store_undo_put(ngx_str_t *token, ngx_keyval_t *fields,
    ngx_uint_t nfields, ngx_msec_t ttl, ngx_http_safedelete_store_pt handler,
    void *data)
{
    u_char       key[NGX_HTTP_SAFEDELETE_STORE_KEY_MAX];
    u_char       ms[NGX_INT64_LEN];
    void        *op;
    size_t      *lens;
    ngx_uint_t   i, n;
    const char **argv;

    n = 2 + 2 * nfields;

    argv = ngx_alloc(n * (sizeof(char *) + sizeof(size_t)), ngx_cycle->log);
    if (argv == NULL) {
        return NULL;
    }

    lens = (size_t *) (argv + n);

    argv[0] = (char *) key;
    lens[0] = ngx_http_safedelete_store_key(key, "undo:", token);
    argv[1] = (char *) ms;
    lens[1] = ngx_sprintf(ms, "%M", ttl) - ms;

    for (i = 0; i < nfields; i++) {
        argv[2 + 2 * i] = (char *) fields[i].key.data;
        lens[2 + 2 * i] = fields[i].key.len;
        argv[3 + 2 * i] = (char *) fields[i].value.data;
        lens[3 + 2 * i] = fields[i].value.len;
    }

    op = ngx_http_safedelete_redis_eval(&ngx_http_safedelete_store_put, 1,
                                        (int) n, argv, lens,
                                        ngx_http_safedelete_store_status_reply,
                                        (void *) handler, data);
    ngx_free(argv);

    return op;
}


void *
ngx_http_safedelete_store_undo_get(ngx_str_t *token,
    ngx_http_safedelete_store_pt handler, void *data)
{
    u_char       key[NGX_HTTP_SAFEDELETE_STORE_KEY_MAX];
    size_t       lens[2];
    const char  *argv[2];

    argv[0] = "HGETALL";
    lens[0] = 7;
    argv[1] = (char *) key;
    lens[1] = ngx_http_safedelete_store_key(key, "undo:", token);

    return ngx_http_safedelete_redis_command(2, argv, lens,
                                        ngx_http_safedelete_store_hash_reply,
                                        (void *) handler, data);
}


void *
ngx_http_safedelete_store_undo_transition(ngx_str_t *token, const char *from,
    const char *to, int64_t not_after_ms,
    ngx_http_safedelete_store_pt handler, void *data)
{
    u_char       key[NGX_HTTP_SAFEDELETE_STORE_KEY_MAX];
    u_char       ms[NGX_INT64_LEN];
    size_t       lens[4];
    const char  *argv[4];

    argv[0] = (char *) key;
    lens[0] = ngx_http_safedelete_store_key(key, "undo:", token);
    argv[1] = from;
    lens[1] = ngx_strlen(from);
    argv[2] = to;
    lens[2] = ngx_strlen(to);
    argv[3] = (char *) ms;
    lens[3] = ngx_sprintf(ms, "%L", not_after_ms) - ms;

    return ngx_http_safedelete_redis_eval(&ngx_http_safedelete_store_trans,
                                        1, 4, argv, lens,
                                        ngx_http_safedelete_store_status_reply,
                                        (void *) handler, data);
}


void
ngx_http_safedelete_store_undo_delete(ngx_str_t *token)
{
    u_char       key[NGX_HTTP_SAFEDELETE_STORE_KEY_MAX];
    size_t       lens[2];
    const char  *argv[2];

    argv[0] = "DEL";
    lens[0] = 3;
    argv[1] = (char *) key;
    lens[1] = ngx_http_safedelete_store_key(key, "undo:", token);

    (void) ngx_http_safedelete_redis_command(2, argv, lens, NULL, NULL, NULL);
}


/* NGX_OK: first use; NGX_DECLINED: used before */

void *
ngx_http_safedelete_store_confirm_use(ngx_str_t *sig, ngx_msec_t ttl,
    ngx_http_safedelete_store_pt handler, void *data)
{
    u_char       key[NGX_HTTP_SAFEDELETE_STORE_KEY_MAX];
    u_char       ms[NGX_INT_T_LEN];
    size_t       lens[7];
    const char  *argv[7];

    argv[0] = "SET";
    lens[0] = 3;
    argv[1] = (char *) key;
    lens[1] = ngx_http_safedelete_store_key(key, "confirm:", sig);
    argv[2] = "1";
    lens[2] = 1;
    argv[3] = "NX";
    lens[3] = 2;
    argv[4] = "PX";
    lens[4] = 2;
    argv[5] = (char *) ms;
    lens[5] = ngx_sprintf(ms, "%M", ttl) - ms;

    return ngx_http_safedelete_redis_command(6, argv, lens,
                                        ngx_http_safedelete_store_set_reply,
                                        (void *) handler, data);
}


void
ngx_http_safedelete_store_audit(ngx_keyval_t *fields, ngx_uint_t nfields)
{
    u_char       key[NGX_HTTP_SAFEDELETE_STORE_KEY_MAX];
    u_char       maxlen[NGX_INT_T_LEN];
    size_t      *lens;
    ngx_str_t    name;
    ngx_uint_t   i, n;
    const char **argv;

    n = 6 + 2 * nfields;

    argv = ngx_alloc(n * (sizeof(char *) + sizeof(size_t)), ngx_cycle->log);
    if (argv == NULL) {
        return;
    }

    lens = (size_t *) (argv + n);

    ngx_str_null(&name);

    argv[0] = "XADD";
    lens[0] = 4;
    argv[1] = (char *) key;
    lens[1] = ngx_http_safedelete_store_key(key, "audit", &name);
    argv[2] = "MAXLEN";
    lens[2] = 6;
    argv[3] = "~";
    lens[3] = 1;
    argv[4] = (char *) maxlen;
    lens[4] = ngx_sprintf(maxlen, "%ui", ngx_http_safedelete_store_maxlen)
              - maxlen;
    argv[5] = "*";
    lens[5] = 1;

    for (i = 0; i < nfields; i++) {
        argv[6 + 2 * i] = (char *) fields[i].key.data;
        lens[6 + 2 * i] = fields[i].key.len;
        argv[7 + 2 * i] = (char *) fields[i].value.data;
        lens[7 + 2 * i] = fields[i].value.len;
    }

    (void) ngx_http_safedelete_redis_command((int) n, argv, lens, NULL, NULL,
                                             NULL);
    ngx_free(argv);
}


void
ngx_http_safedelete_store_cancel(void *op)
{
    ngx_http_safedelete_redis_cancel(op);
}


static void
ngx_http_safedelete_store_status_reply(ngx_http_safedelete_redis_op_t *op,
    redisReply *reply)
{
    ngx_str_t                     str;
    ngx_http_safedelete_store_pt  handler;

    handler = (ngx_http_safedelete_store_pt) op->handler;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR
        || (reply->type != REDIS_REPLY_STRING
            && reply->type != REDIS_REPLY_STATUS))
    {
        handler(op->data, NGX_ERROR, NULL, NULL, 0);
        return;
    }

    str.data = (u_char *) reply->str;
    str.len = reply->len;

    handler(op->data, NGX_OK, &str, NULL, 0);
}


static void
ngx_http_safedelete_store_hash_reply(ngx_http_safedelete_redis_op_t *op,
    redisReply *reply)
{
    size_t                        i, n;
    redisReply                   *k, *v;
    ngx_keyval_t                 *kv;
    ngx_http_safedelete_store_pt  handler;

    handler = (ngx_http_safedelete_store_pt) op->handler;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements % 2)
    {
        handler(op->data, NGX_ERROR, NULL, NULL, 0);
        return;
    }

    if (reply->elements == 0) {
        handler(op->data, NGX_DECLINED, NULL, NULL, 0);
        return;
    }

    n = reply->elements / 2;

    kv = ngx_alloc(n * sizeof(ngx_keyval_t), ngx_cycle->log);
    if (kv == NULL) {
        handler(op->data, NGX_ERROR, NULL, NULL, 0);
        return;
    }

    for (i = 0; i < n; i++) {
        k = reply->element[2 * i];
        v = reply->element[2 * i + 1];

        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            ngx_free(kv);
            handler(op->data, NGX_ERROR, NULL, NULL, 0);
            return;
        }

        kv[i].key.data = (u_char *) k->str;
        kv[i].key.len = k->len;
        kv[i].value.data = (u_char *) v->str;
        kv[i].value.len = v->len;
    }

    handler(op->data, NGX_OK, NULL, kv, n);

    ngx_free(kv);
}


static void
ngx_http_safedelete_store_set_reply(ngx_http_safedelete_redis_op_t *op,
    redisReply *reply)
{
    ngx_http_safedelete_store_pt  handler;

    handler = (ngx_http_safedelete_store_pt) op->handler;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        handler(op->data, NGX_ERROR, NULL, NULL, 0);
        return;
    }

    handler(op->data, reply->type == REDIS_REPLY_NIL ? NGX_DECLINED : NGX_OK,
            NULL, NULL, 0);
}
