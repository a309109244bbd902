/*
 * Copyright (C) ngx_safedelete_module authors
 *
 * Structures shared by the files of the module.
 */


#ifndef _NGX_HTTP_SAFEDELETE_H_INCLUDED_
#define _NGX_HTTP_SAFEDELETE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_safedelete_redis.h"
#include "ngx_http_safedelete_http.h"


#define NGX_HTTP_SAFEDELETE_MODE_SOFT       0
#define NGX_HTTP_SAFEDELETE_MODE_HARD       1
#define NGX_HTTP_SAFEDELETE_MODE_DEFERRED   2
#define NGX_HTTP_SAFEDELETE_MODE_DENY       3

#define NGX_HTTP_SAFEDELETE_DEP_BLOCK       0
#define NGX_HTTP_SAFEDELETE_DEP_CASCADE     1
#define NGX_HTTP_SAFEDELETE_DEP_UPDATE      2
#define NGX_HTTP_SAFEDELETE_DEP_REPORT      3

/* related records changed at once, as a cascade or its undo */
#define NGX_HTTP_SAFEDELETE_WAVE            8

#define NGX_HTTP_SAFEDELETE_FAIL_CLOSED     0
#define NGX_HTTP_SAFEDELETE_FAIL_OPEN       1

#define NGX_HTTP_SAFEDELETE_ID_MAX          512

/* nginx 1.22 names no constant for it */
#define NGX_HTTP_SAFEDELETE_GONE            410
#define NGX_HTTP_SAFEDELETE_PRECONDITION_REQUIRED  428


typedef enum {
    NGX_HTTP_SAFEDELETE_STATE_NEW = 0,
    NGX_HTTP_SAFEDELETE_STATE_WORKING,
    NGX_HTTP_SAFEDELETE_STATE_DONE,
    NGX_HTTP_SAFEDELETE_STATE_FORWARDED,
    NGX_HTTP_SAFEDELETE_STATE_ANSWERED
} ngx_http_safedelete_state_e;


typedef struct {
    ngx_str_t                         name;
    ngx_http_complex_value_t          value;
    ngx_uint_t                        json;     /* value is raw JSON */
} ngx_http_safedelete_field_t;


typedef struct {
    ngx_str_t                         name;
    ngx_http_complex_value_t          value;
} ngx_http_safedelete_header_t;


typedef struct {
    ngx_str_t                         name;
    ngx_http_complex_value_t          uri;
    ngx_uint_t                        action;
    ngx_array_t                      *fields;   /* dependency_set */
} ngx_http_safedelete_dependency_t;


typedef struct ngx_http_safedelete_loc_conf_s
    ngx_http_safedelete_loc_conf_t;


typedef struct {
    ngx_str_t                         name;
    ngx_http_safedelete_loc_conf_t   *conf;
} ngx_http_safedelete_policy_t;


typedef struct {
    ngx_http_safedelete_redis_conf_t  redis;
    ngx_str_t                         key_prefix;
    ngx_uint_t                        audit_maxlen;
    ngx_array_t                       policies;
    ngx_int_t                         request_id_index;
    ngx_str_t                         secret_file;
    ngx_str_t                         secret;
    ngx_uint_t                        confirm_used;
    ngx_uint_t                        enabled;  /* a location uses us */
} ngx_http_safedelete_main_conf_t;


struct ngx_http_safedelete_loc_conf_s {
    ngx_flag_t                        enable;
    ngx_uint_t                        mode;
    ngx_flag_t                        api;
    ngx_flag_t                        hard_override;

    ngx_str_t                         upstream;        /* as written */
    ngx_str_t                         upstream_origin; /* scheme://host */
    ngx_str_t                         upstream_path;   /* base path */
    ngx_flag_t                        upstream_has_uri;
    ngx_str_t                         upstream_prefix; /* its location */

    ngx_array_t                      *forward_headers; /* ngx_str_t */
    ngx_array_t                      *upstream_headers;
    ngx_msec_t                        upstream_timeout;

    ngx_http_complex_value_t         *id;
    ngx_http_complex_value_t         *record_uri;
    ngx_http_complex_value_t         *actor;
    ngx_http_complex_value_t         *admin;
    ngx_http_complex_value_t         *soft_uri;

    ngx_uint_t                        soft_method;
    ngx_array_t                      *soft_fields;
    ngx_array_t                      *restore_fields;

    time_t                            undo_window;
    time_t                            backup_ttl;
    ngx_uint_t                        fail;

    ngx_flag_t                        require_actor;
    ngx_str_t                         owner_field;
    ngx_array_t                      *dependencies;
    ngx_array_t                      *restore_checks;
    ngx_uint_t                        dependency_limit;
    ngx_flag_t                        confirm;
    time_t                            confirm_ttl;

    ngx_str_t                         policy;          /* location name */
};


typedef struct ngx_http_safedelete_ctx_s  ngx_http_safedelete_ctx_t;
typedef struct ngx_http_safedelete_call_s  ngx_http_safedelete_call_t;

typedef void (*ngx_http_safedelete_step_pt)(ngx_http_safedelete_ctx_t *ctx);


/* one lookup of related records, and what it found */
typedef struct {
    ngx_http_safedelete_dependency_t *dep;
    ngx_http_safedelete_call_t       *call;
    ngx_int_t                         count;
    ngx_str_t                         collection;      /* below the base */
    ngx_str_t                         collection_url;
    json_t                           *items;
} ngx_http_safedelete_lookup_t;


/* one related record a cascade changes, and how to put it back */
typedef struct {
    ngx_http_safedelete_lookup_t     *lookup;
    ngx_str_t                         id;
    ngx_str_t                         method;
    ngx_str_t                         url;
    ngx_str_t                         body;
    ngx_str_t                         revert_method;
    ngx_str_t                         revert_url;
    ngx_str_t                         revert_body;
    ngx_http_safedelete_call_t       *call;
    ngx_uint_t                        done;
} ngx_http_safedelete_child_t;


/* one asynchronous call of a request, and what it brought back */
struct ngx_http_safedelete_call_s {
    ngx_http_safedelete_ctx_t        *ctx;
    void                             *op;
    ngx_uint_t                        redis;
    ngx_int_t                         rc;
    ngx_uint_t                        status;
    ngx_str_t                         body;
    ngx_str_t                         error;
    ngx_int_t                         total_count;
    ngx_array_t                      *fields;   /* ngx_keyval_t */
};


struct ngx_http_safedelete_ctx_s {
    ngx_http_request_t               *request;
    ngx_http_safedelete_loc_conf_t   *policy;
    ngx_http_safedelete_state_e       state;
    ngx_int_t                         verdict;
    ngx_http_safedelete_step_pt       next;
    ngx_uint_t                        pending;
    ngx_queue_t                       http_ops;
    ngx_queue_t                       redis_ops;
    ngx_event_t                       resume;
    ngx_event_t                       timeout;
    ngx_uint_t                        api;
    ngx_uint_t                        claimed;  /* undo holds the token */
    ngx_uint_t                        in_uri;   /* escape values for it */

    ngx_str_t                         id;
    ngx_str_t                         collection;
    ngx_str_t                         actor;
    ngx_flag_t                        admin;
    ngx_str_t                         now;
    ngx_str_t                         ts;
    int64_t                           now_ms;
    ngx_uint_t                        mode;
    ngx_str_t                         decision;
    ngx_str_t                         undo_token;

    ngx_str_t                         record_url;
    ngx_str_t                         collection_url;
    json_t                           *snapshot;
    ngx_str_t                         snapshot_text;
    ngx_str_t                         soft_body;
    ngx_str_t                         soft_revert;  /* what it overwrote */

    ngx_http_safedelete_call_t       *call;

    /* the undo record, for the endpoint */
    ngx_array_t                      *record;
    ngx_str_t                         restored_body;

    /* related records */
    ngx_array_t                      *lookups;  /* lookup_t */
    ngx_array_t                      *children; /* child_t */
    ngx_uint_t                        next_child;
    ngx_uint_t                        children_failed;
    json_t                           *cascade_failures;
    ngx_str_t                         cascade_text;
    ngx_str_t                         cascade_header;
    json_t                           *counts;

    ngx_http_safedelete_step_pt       then;

    /* confirmation */
    ngx_str_t                         confirm_token;
    ngx_str_t                         confirm_sig;
    ngx_uint_t                        confirm_ok;
    time_t                            confirm_expiry;

    /* a refusal waiting to be sent */
    const char                       *problem_event;
    json_t                           *problem_extra;
    ngx_uint_t                        problem_status;
    ngx_str_t                         problem_code;
    ngx_str_t                         problem_detail;
};


extern ngx_module_t  ngx_http_safedelete_module;
extern ngx_str_t     ngx_http_safedelete_mode_names[];


/* handler.c */
ngx_int_t ngx_http_safedelete_delete_handler(ngx_http_request_t *r);
ngx_http_safedelete_ctx_t *ngx_http_safedelete_ctx_create(
    ngx_http_request_t *r, ngx_http_safedelete_loc_conf_t *policy);
void ngx_http_safedelete_ctx_clock(ngx_http_safedelete_ctx_t *ctx);
ngx_int_t ngx_http_safedelete_ctx_identity(ngx_http_safedelete_ctx_t *ctx);
void ngx_http_safedelete_start(ngx_http_safedelete_ctx_t *ctx,
    ngx_http_safedelete_step_pt step);
void ngx_http_safedelete_finish(ngx_http_safedelete_ctx_t *ctx);
void ngx_http_safedelete_refuse(ngx_http_safedelete_ctx_t *ctx,
    ngx_uint_t status, const char *code, const char *detail);
ngx_http_safedelete_call_t *ngx_http_safedelete_call_http(
    ngx_http_safedelete_ctx_t *ctx, ngx_str_t *method, ngx_str_t *url,
    ngx_str_t *body);
ngx_http_safedelete_call_t *ngx_http_safedelete_call_new(
    ngx_http_safedelete_ctx_t *ctx);
void ngx_http_safedelete_call_store_done(void *data, ngx_int_t rc,
    ngx_str_t *str, ngx_keyval_t *fields, ngx_uint_t nfields);
void ngx_http_safedelete_track_store(ngx_http_safedelete_ctx_t *ctx,
    ngx_http_safedelete_call_t *call, void *op);
void ngx_http_safedelete_audit(ngx_http_safedelete_ctx_t *ctx,
    const char *event, ngx_uint_t status, const char *code);
void ngx_http_safedelete_audit_ext(ngx_http_safedelete_ctx_t *ctx,
    const char *event, ngx_uint_t status, const char *code,
    ngx_keyval_t *extra, ngx_uint_t nextra);
ngx_table_elt_t *ngx_http_safedelete_header_in(ngx_http_request_t *r,
    const char *name);
ngx_int_t ngx_http_safedelete_header_out(ngx_http_request_t *r,
    const char *name, ngx_str_t *value);

ngx_int_t ngx_http_safedelete_call_headers(ngx_http_safedelete_ctx_t *ctx,
    ngx_array_t **headers);
void ngx_http_safedelete_background(ngx_http_safedelete_ctx_t *ctx,
    ngx_str_t *method, ngx_str_t *url, ngx_str_t *body);

/* depends.c */
ngx_int_t ngx_http_safedelete_deps_start(ngx_http_safedelete_ctx_t *ctx,
    ngx_array_t *deps);
ngx_int_t ngx_http_safedelete_deps_collect(ngx_http_safedelete_ctx_t *ctx,
    ngx_uint_t checks);
ngx_int_t ngx_http_safedelete_deps_plan(ngx_http_safedelete_ctx_t *ctx);
void ngx_http_safedelete_cascade_wave(ngx_http_safedelete_ctx_t *ctx);
void ngx_http_safedelete_cascade_revert(ngx_http_safedelete_ctx_t *ctx);
ngx_int_t ngx_http_safedelete_replay_plan(ngx_http_safedelete_ctx_t *ctx,
    ngx_str_t *text);
void ngx_http_safedelete_replay_wave(ngx_http_safedelete_ctx_t *ctx);

/* confirm.c */
ngx_int_t ngx_http_safedelete_confirm_make(ngx_http_safedelete_ctx_t *ctx,
    ngx_str_t *token);
ngx_int_t ngx_http_safedelete_confirm_check(ngx_http_safedelete_ctx_t *ctx,
    ngx_str_t *token);

ngx_int_t ngx_http_safedelete_uri_value(ngx_http_safedelete_ctx_t *ctx,
    ngx_http_complex_value_t *cv, ngx_str_t *value);

/* filter.c */
ngx_int_t ngx_http_safedelete_filter_init(ngx_conf_t *cf);

/* api.c */
ngx_int_t ngx_http_safedelete_api_handler(ngx_http_request_t *r);
void ngx_http_safedelete_api_respond(ngx_http_safedelete_ctx_t *ctx);
void ngx_http_safedelete_undo_release(ngx_http_safedelete_ctx_t *ctx);

/* variables.c */
ngx_int_t ngx_http_safedelete_add_variables(ngx_conf_t *cf);

/* module.c */
ngx_http_safedelete_loc_conf_t *ngx_http_safedelete_find_policy(
    ngx_http_request_t *r, ngx_str_t *name);


#endif /* _NGX_HTTP_SAFEDELETE_H_INCLUDED_ */
