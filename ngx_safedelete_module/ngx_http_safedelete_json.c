/*
 * Copyright (C) ngx_safedelete_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_safedelete.h"
#include "ngx_http_safedelete_json.h"


typedef struct {
    ngx_str_t   code;
    ngx_str_t   title;
} ngx_http_safedelete_problem_title_t;


static void ngx_http_safedelete_json_cleanup(void *data);
static ngx_str_t *ngx_http_safedelete_problem_title(ngx_str_t *code,
    ngx_uint_t status);


/* one row per refusal: adding a code is adding a row */
static ngx_http_safedelete_problem_title_t  ngx_http_safedelete_titles[] = {
    { ngx_string("NOT_FOUND"), ngx_string("Record not found") },
    { ngx_string("INVALID_ID"), ngx_string("Invalid record id") },
    { ngx_string("ACTOR_REQUIRED"), ngx_string("Actor required") },
    { ngx_string("ACCESS_DENIED"), ngx_string("Access denied") },
    { ngx_string("DELETE_NOT_ALLOWED"),
      ngx_string("Deletion is not allowed here") },
    { ngx_string("UPSTREAM_DENIED"),
      ngx_string("The backend refused to show the record") },
    { ngx_string("SNAPSHOT_FAILED"),
      ngx_string("The record could not be read") },
    { ngx_string("SNAPSHOT_INVALID"),
      ngx_string("The record is not a JSON object") },
    { ngx_string("STORE_UNAVAILABLE"),
      ngx_string("The safety store is unavailable") },
    { ngx_string("TIMEOUT"), ngx_string("The safety checks timed out") },
    { ngx_string("INTERNAL_ERROR"), ngx_string("Internal error") },
    { ngx_string("INVALID_TOKEN"), ngx_string("Malformed token") },
    { ngx_string("UNDO_NOT_FOUND"), ngx_string("Unknown undo token") },
    { ngx_string("UNDO_EXPIRED"), ngx_string("The undo window has ended") },
    { ngx_string("UNDO_ALREADY_DONE"),
      ngx_string("The deletion was already undone") },
    { ngx_string("UNDO_IN_PROGRESS"),
      ngx_string("The deletion is being undone") },
    { ngx_string("RESTORE_FAILED"),
      ngx_string("The record could not be restored") },
    { ngx_string("ROUTE_NOT_FOUND"), ngx_string("No such endpoint") },
    { ngx_string("METHOD_NOT_ALLOWED"), ngx_string("Method not allowed") },
    { ngx_string("HAS_DEPENDENCIES"),
      ngx_string("The record has dependent records") },
    { ngx_string("TOO_MANY_DEPENDENTS"),
      ngx_string("Too many related records") },
    { ngx_string("DEPENDENCY_CHECK_FAILED"),
      ngx_string("A dependency lookup failed") },
    { ngx_string("CASCADE_FAILED"),
      ngx_string("A related record could not be changed") },
    { ngx_string("RESTORE_CONFLICT"),
      ngx_string("The record cannot be restored as it was") },
    { ngx_string("CONFIRMATION_REQUIRED"),
      ngx_string("Confirmation required") },
    { ngx_string("CONFIRMATION_EXPIRED"),
      ngx_string("Confirmation expired") },
    { ngx_string("CONFIRMATION_INVALID"),
      ngx_string("Confirmation invalid") },
    { ngx_string("CONFIRMATION_USED"),
      ngx_string("Confirmation already used") },
    { ngx_null_string, ngx_null_string }
};


ngx_int_t
ngx_http_safedelete_json_own(ngx_pool_t *pool, json_t *json)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        json_decref(json);
        return NGX_ERROR;
    }

    cln->handler = ngx_http_safedelete_json_cleanup;
    cln->data = json;

    return NGX_OK;
}


static void
ngx_http_safedelete_json_cleanup(void *data)
{
    json_decref(data);
}


json_t *
ngx_http_safedelete_json_parse(ngx_pool_t *pool, ngx_str_t *text,
    ngx_log_t *log)
{
    json_t        *json;
    json_error_t   err;

    json = json_loadb((char *) text->data, text->len,
                      JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
    if (json == NULL) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "safedelete: invalid JSON at %d:%d: %s",
                      err.line, err.column, err.text);
        return NULL;
    }

    if (ngx_http_safedelete_json_own(pool, json) != NGX_OK) {
        return NULL;
    }

    return json;
}


ngx_int_t
ngx_http_safedelete_json_dump(ngx_pool_t *pool, json_t *json, ngx_str_t *out)
{
    char  *s;

    s = json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s == NULL) {
        return NGX_ERROR;
    }

    out->len = ngx_strlen(s);
    out->data = ngx_pnalloc(pool, out->len);
    if (out->data == NULL) {
        free(s);
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, s, out->len);
    free(s);

    return NGX_OK;
}


ngx_int_t
ngx_http_safedelete_json_set_str(json_t *obj, const char *name,
    ngx_str_t *value)
{
    json_t  *v;

    v = value ? json_stringn((char *) value->data, value->len) : json_null();
    if (v == NULL) {
        return NGX_ERROR;
    }

    return json_object_set_new(obj, name, v) == 0 ? NGX_OK : NGX_ERROR;
}


ngx_int_t
ngx_http_safedelete_json_apply(ngx_http_request_t *r, json_t *obj,
    ngx_array_t *fields)
{
    u_char                       *name;
    json_t                       *v;
    ngx_str_t                     value;
    ngx_uint_t                    i;
    json_error_t                  err;
    ngx_http_safedelete_field_t  *f;

    if (fields == NULL) {
        return NGX_OK;
    }

    f = fields->elts;

    for (i = 0; i < fields->nelts; i++) {

        if (ngx_http_complex_value(r, &f[i].value, &value) != NGX_OK) {
            return NGX_ERROR;
        }

        if (f[i].json) {
            v = json_loadb((char *) value.data, value.len, JSON_DECODE_ANY,
                           &err);
            if (v == NULL) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "safedelete: field \"%V\" is not JSON "
                              "after expansion: %s", &f[i].name, err.text);
                return NGX_ERROR;
            }

        } else {
            v = json_stringn((char *) value.data, value.len);
            if (v == NULL) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "safedelete: field \"%V\" is not valid "
                              "UTF-8 after expansion", &f[i].name);
                return NGX_ERROR;
            }
        }

        /* names were NUL-terminated when the configuration was read */
        name = f[i].name.data;

        if (json_object_set_new(obj, (char *) name, v) != 0) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* what a change overwrites: each changed field's old value, or null */

ngx_int_t
ngx_http_safedelete_json_revert(json_t *revert, json_t *changes,
    json_t *original)
{
    json_t      *v;
    const char  *key;

    json_object_foreach(changes, key, v) {
        v = json_object_get(original, key);

        if (json_object_set(revert, key, v ? v : json_null()) != 0) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* nginx lower-cases variable names: match fields without case */

json_t *
ngx_http_safedelete_json_get(json_t *obj, ngx_str_t *name)
{
    json_t      *v;
    const char  *key;

    if (obj == NULL || !json_is_object(obj)) {
        return NULL;
    }

    json_object_foreach(obj, key, v) {
        if (ngx_strlen(key) == name->len
            && ngx_strncasecmp((u_char *) key, name->data, name->len) == 0)
        {
            return v;
        }
    }

    return NULL;
}


ngx_int_t
ngx_http_safedelete_json_text(ngx_pool_t *pool, json_t *value, ngx_str_t *out)
{
    if (value == NULL || json_is_null(value)) {
        return NGX_DECLINED;
    }

    if (json_is_string(value)) {
        out->len = json_string_length(value);
        out->data = ngx_pnalloc(pool, out->len);
        if (out->data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(out->data, json_string_value(value), out->len);
        return NGX_OK;
    }

    return ngx_http_safedelete_json_dump(pool, value, out);
}


ngx_int_t
ngx_http_safedelete_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *content_type, ngx_str_t *body)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;

    if (status == NGX_HTTP_SAFEDELETE_PRECONDITION_REQUIRED) {
        /* nginx 1.22 has no reason phrase of its own for it */
        ngx_str_set(&r->headers_out.status_line, "428 Precondition Required");
    }

    r->headers_out.content_type = *content_type;
    r->headers_out.content_type_len = content_type->len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = body->len;

    ngx_http_clear_accept_ranges(r);
    ngx_http_clear_last_modified(r);
    ngx_http_clear_etag(r);

    if (body->len == 0 || r->method == NGX_HTTP_HEAD) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_create_temp_buf(r->pool, body->len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_cpymem(b->last, body->data, body->len);
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_str_t *
ngx_http_safedelete_problem_title(ngx_str_t *code, ngx_uint_t status)
{
    ngx_uint_t  i;

    for (i = 0; ngx_http_safedelete_titles[i].code.len; i++) {
        if (ngx_http_safedelete_titles[i].code.len == code->len
            && ngx_strncmp(ngx_http_safedelete_titles[i].code.data,
                           code->data, code->len)
               == 0)
        {
            return &ngx_http_safedelete_titles[i].title;
        }
    }

    return &ngx_http_safedelete_titles[0].title;
}


ngx_int_t
ngx_http_safedelete_send_problem(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *code, ngx_str_t *detail, json_t *extra)
{
    u_char      *p, *type;
    json_t      *doc;
    ngx_str_t    body, *title, ctype;
    ngx_uint_t   i;

    title = ngx_http_safedelete_problem_title(code, status);

    type = ngx_pnalloc(r->pool, sizeof("urn:safedelete:problem:") + code->len);
    if (type == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(type, "urn:safedelete:problem:",
                   sizeof("urn:safedelete:problem:") - 1);

    for (i = 0; i < code->len; i++) {
        *p++ = code->data[i] == '_' ? '-' : ngx_tolower(code->data[i]);
    }

    *p = '\0';

    doc = json_object();
    if (doc == NULL || ngx_http_safedelete_json_own(r->pool, doc) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (json_object_set_new(doc, "type", json_string((char *) type)) != 0
        || json_object_set_new(doc, "title",
                               json_stringn((char *) title->data, title->len))
           != 0
        || json_object_set_new(doc, "status", json_integer(status)) != 0
        || json_object_set_new(doc, "detail",
                               json_stringn((char *) detail->data,
                                            detail->len))
           != 0
        || json_object_set_new(doc, "code",
                               json_stringn((char *) code->data, code->len))
           != 0
        || json_object_set_new(doc, "success", json_false()) != 0
        || json_object_set_new(doc, "error",
                               json_stringn((char *) detail->data,
                                            detail->len))
           != 0)
    {
        return NGX_ERROR;
    }

    if (extra && json_object_update(doc, extra) != 0) {
        return NGX_ERROR;
    }

    if (ngx_http_safedelete_json_dump(r->pool, doc, &body) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_str_set(&ctype, "application/problem+json");

    return ngx_http_safedelete_send(r, status, &ctype, &body);
}
