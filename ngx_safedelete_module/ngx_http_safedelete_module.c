/*
 * Copyright (C) ngx_safedelete_module authors
 *
 * Directives, configuration, and the per-worker life of the module.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_safedelete.h"
#include "ngx_http_safedelete_store.h"
#include "ngx_http_safedelete_uri.h"

#include <openssl/rand.h>


static ngx_int_t ngx_http_safedelete_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_safedelete_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_safedelete_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_safedelete_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_safedelete_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_safedelete_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_http_safedelete_init_process(ngx_cycle_t *cycle);
static void ngx_http_safedelete_exit_process(ngx_cycle_t *cycle);

static char *ngx_http_safedelete_redis_slot(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_safedelete_upstream_slot(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_safedelete_field_slot(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_safedelete_forward_headers_slot(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_safedelete_upstream_header_slot(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_safedelete_api_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_safedelete_dependency_slot(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_safedelete_dependency_set_slot(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_safedelete_secret_file_slot(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_safedelete_add_field(ngx_conf_t *cf,
    ngx_array_t **fields, ngx_str_t *name, ngx_str_t *value,
    ngx_uint_t json);
static u_char *ngx_http_safedelete_cstr(ngx_conf_t *cf, ngx_str_t *s);


static ngx_conf_enum_t  ngx_http_safedelete_modes[] = {
    { ngx_string("soft"), NGX_HTTP_SAFEDELETE_MODE_SOFT },
    { ngx_string("hard"), NGX_HTTP_SAFEDELETE_MODE_HARD },
    /* "deferred" comes with its scheduler: until then nginx -t says no */
    { ngx_string("deny"), NGX_HTTP_SAFEDELETE_MODE_DENY },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_safedelete_methods[] = {
    { ngx_string("PATCH"), NGX_HTTP_PATCH },
    { ngx_string("PUT"), NGX_HTTP_PUT },
    { ngx_string("POST"), NGX_HTTP_POST },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_safedelete_fail_policies[] = {
    { ngx_string("closed"), NGX_HTTP_SAFEDELETE_FAIL_CLOSED },
    { ngx_string("open"), NGX_HTTP_SAFEDELETE_FAIL_OPEN },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_safedelete_dep_actions[] = {
    { ngx_string("block"), NGX_HTTP_SAFEDELETE_DEP_BLOCK },
    { ngx_string("cascade"), NGX_HTTP_SAFEDELETE_DEP_CASCADE },
    { ngx_string("update"), NGX_HTTP_SAFEDELETE_DEP_UPDATE },
    { ngx_string("report"), NGX_HTTP_SAFEDELETE_DEP_REPORT },
    { ngx_null_string, 0 }
};


static ngx_conf_num_bounds_t  ngx_http_safedelete_limit_bounds = {
    ngx_conf_check_num_bounds, 0, 100000
};


static ngx_conf_num_bounds_t  ngx_http_safedelete_maxlen_bounds = {
    ngx_conf_check_num_bounds, 1, 1000000000
};


#define NGX_HTTP_SAFEDELETE_CONF                                              \
    (NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF)


static ngx_command_t  ngx_http_safedelete_commands[] = {

    { ngx_string("safedelete"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_safedelete_loc_conf_t, enable),
      NULL },

    { ngx_string("safedelete_mode"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_safedelete_loc_conf_t, mode),
      &ngx_http_safedelete_modes },

    { ngx_string("safedelete_hard_override"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_safedelete_loc_conf_t, hard_override),
      NULL },

    { ngx_string("safedelete_upstream"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_TAKE1,
      ngx_http_safedelete_upstream_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("safedelete_forward_headers"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_1MORE,
      ngx_http_safedelete_forward_headers_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("safedelete_upstream_header"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_TAKE2,
      ngx_http_safedelete_upstream_header_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("safedelete_upstream_timeout"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_safedelete_loc_conf_t, upstream_timeout),
      NULL },

    { ngx_string("safedelete_id"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_safedelete_loc_conf_t, id),
      NULL },

    { ngx_string("safedelete_record_uri"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_safedelete_loc_conf_t, record_uri),
      NULL },

    { ngx_string("safedelete_actor"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_safedelete_loc_conf_t, actor),
      NULL },

    { ngx_string("safedelete_admin"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_safedelete_loc_conf_t, admin),
      NULL },

    { ngx_string("safedelete_soft_method"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_safedelete_loc_conf_t, soft_method),
      &ngx_http_safedelete_methods },

    { ngx_string("safedelete_soft_uri"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_safedelete_loc_conf_t, soft_uri),
      NULL },

    { ngx_string("safedelete_soft_set"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_TAKE2,
      ngx_http_safedelete_field_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_safedelete_loc_conf_t, soft_fields),
      (void *) 0 },

    { ngx_string("safedelete_soft_set_json"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_TAKE2,
      ngx_http_safedelete_field_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_safedelete_loc_conf_t, soft_fields),
      (void *) 1 },

    { ngx_string("safedelete_restore_set"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_TAKE2,
      ngx_http_safedelete_field_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_safedelete_loc_conf_t, restore_fields),
      (void *) 0 },

    { ngx_string("safedelete_restore_set_json"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_TAKE2,
      ngx_http_safedelete_field_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_safedelete_loc_conf_t, restore_fields),
      (void *) 1 },

    { ngx_string("safedelete_undo_window"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_safedelete_loc_conf_t, undo_window),
      NULL },

    { ngx_string("safedelete_backup_ttl"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_safedelete_loc_conf_t, backup_ttl),
      NULL },

    { ngx_string("safedelete_fail"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_safedelete_loc_conf_t, fail),
      &ngx_http_safedelete_fail_policies },

    { ngx_string("safedelete_require_actor"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_safedelete_loc_conf_t, require_actor),
      NULL },

    { ngx_string("safedelete_owner_field"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_safedelete_loc_conf_t, owner_field),
      NULL },

    { ngx_string("safedelete_dependency"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_TAKE23,
      ngx_http_safedelete_dependency_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_safedelete_loc_conf_t, dependencies),
      NULL },

    { ngx_string("safedelete_dependency_set"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_TAKE3,
      ngx_http_safedelete_dependency_set_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      (void *) 0 },

    { ngx_string("safedelete_dependency_set_json"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_TAKE3,
      ngx_http_safedelete_dependency_set_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      (void *) 1 },

    { ngx_string("safedelete_dependency_limit"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_safedelete_loc_conf_t, dependency_limit),
      &ngx_http_safedelete_limit_bounds },

    { ngx_string("safedelete_restore_check"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_TAKE2,
      ngx_http_safedelete_dependency_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_safedelete_loc_conf_t, restore_checks),
      NULL },

    { ngx_string("safedelete_confirm"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_safedelete_loc_conf_t, confirm),
      NULL },

    { ngx_string("safedelete_confirm_ttl"),
      NGX_HTTP_SAFEDELETE_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_safedelete_loc_conf_t, confirm_ttl),
      NULL },

    { ngx_string("safedelete_secret_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_safedelete_secret_file_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("safedelete_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_safedelete_api_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("safedelete_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_safedelete_redis_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("safedelete_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_safedelete_main_conf_t, redis.timeout),
      NULL },

    { ngx_string("safedelete_key_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_safedelete_main_conf_t, key_prefix),
      NULL },

    { ngx_string("safedelete_audit_maxlen"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_safedelete_main_conf_t, audit_maxlen),
      &ngx_http_safedelete_maxlen_bounds },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_safedelete_module_ctx = {
    ngx_http_safedelete_preconfiguration,  /* preconfiguration */
    ngx_http_safedelete_postconfiguration, /* postconfiguration */

    ngx_http_safedelete_create_main_conf,  /* create main configuration */
    ngx_http_safedelete_init_main_conf,    /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_safedelete_create_loc_conf,   /* create location configuration */
    ngx_http_safedelete_merge_loc_conf     /* merge location configuration */
};


ngx_module_t  ngx_http_safedelete_module = {
    NGX_MODULE_V1,
    &ngx_http_safedelete_module_ctx,       /* module context */
    ngx_http_safedelete_commands,          /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_safedelete_init_process,      /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_safedelete_exit_process,      /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_http_safedelete_request_id = ngx_string("request_id");


static ngx_int_t
ngx_http_safedelete_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_safedelete_add_variables(cf);
}


static ngx_int_t
ngx_http_safedelete_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_handler_pt              *h;
    ngx_http_core_main_conf_t        *cmcf;
    ngx_http_safedelete_main_conf_t  *sdmcf;

    sdmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_safedelete_module);

    if (ngx_http_safedelete_filter_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (!sdmcf->enabled) {
        return NGX_OK;
    }

    if (sdmcf->redis.url.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"safedelete\" or \"safedelete_api\" is used "
                           "but \"safedelete_redis\" is not set in http{}");
        return NGX_ERROR;
    }

    if (sdmcf->confirm_used && sdmcf->secret.len == 0) {
        /* tokens then hold for this nginx only, until its next start */
        sdmcf->secret.data = ngx_pnalloc(cf->pool, 32);
        if (sdmcf->secret.data == NULL
            || RAND_bytes(sdmcf->secret.data, 32) != 1)
        {
            return NGX_ERROR;
        }

        sdmcf->secret.len = 32;

        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"safedelete_confirm\" is used without "
                           "\"safedelete_secret_file\": confirmation "
                           "tokens hold for this nginx only until it "
                           "restarts");
    }

    sdmcf->request_id_index = ngx_http_get_variable_index(cf,
                                             &ngx_http_safedelete_request_id);
    if (sdmcf->request_id_index == NGX_ERROR) {
        return NGX_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    /* after every access check of the location, before proxy_pass */
    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_safedelete_delete_handler;

    return NGX_OK;
}


static void *
ngx_http_safedelete_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_safedelete_main_conf_t  *sdmcf;

    sdmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_safedelete_main_conf_t));
    if (sdmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     sdmcf->redis.url = { 0, NULL };
     *     sdmcf->key_prefix = { 0, NULL };
     *     sdmcf->enabled = 0;
     */

    sdmcf->redis.timeout = NGX_CONF_UNSET_MSEC;
    sdmcf->audit_maxlen = NGX_CONF_UNSET_UINT;
    sdmcf->request_id_index = NGX_ERROR;

    if (ngx_array_init(&sdmcf->policies, cf->pool, 4,
                       sizeof(ngx_http_safedelete_policy_t))
        != NGX_OK)
    {
        return NULL;
    }

    return sdmcf;
}


static char *
ngx_http_safedelete_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_safedelete_main_conf_t *sdmcf = conf;

    ngx_conf_init_msec_value(sdmcf->redis.timeout, 3000);
    ngx_conf_init_uint_value(sdmcf->audit_maxlen, 1000000);

    if (sdmcf->key_prefix.data == NULL) {
        ngx_str_set(&sdmcf->key_prefix, "safedelete:");
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_safedelete_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_safedelete_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_safedelete_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->upstream = { 0, NULL };
     *     conf->upstream_origin = { 0, NULL };
     *     conf->upstream_path = { 0, NULL };
     *     conf->upstream_has_uri = 0;
     *     conf->api = 0;
     *     conf->policy = { 0, NULL };
     *     conf->owner_field = { 0, NULL };
     */

    conf->enable = NGX_CONF_UNSET;
    conf->mode = NGX_CONF_UNSET_UINT;
    conf->hard_override = NGX_CONF_UNSET;
    conf->forward_headers = NGX_CONF_UNSET_PTR;
    conf->upstream_headers = NGX_CONF_UNSET_PTR;
    conf->upstream_timeout = NGX_CONF_UNSET_MSEC;
    conf->id = NGX_CONF_UNSET_PTR;
    conf->record_uri = NGX_CONF_UNSET_PTR;
    conf->actor = NGX_CONF_UNSET_PTR;
    conf->admin = NGX_CONF_UNSET_PTR;
    conf->soft_uri = NGX_CONF_UNSET_PTR;
    conf->soft_method = NGX_CONF_UNSET_UINT;
    conf->soft_fields = NGX_CONF_UNSET_PTR;
    conf->restore_fields = NGX_CONF_UNSET_PTR;
    conf->undo_window = NGX_CONF_UNSET;
    conf->backup_ttl = NGX_CONF_UNSET;
    conf->fail = NGX_CONF_UNSET_UINT;
    conf->require_actor = NGX_CONF_UNSET;
    conf->dependencies = NGX_CONF_UNSET_PTR;
    conf->restore_checks = NGX_CONF_UNSET_PTR;
    conf->dependency_limit = NGX_CONF_UNSET_UINT;
    conf->confirm = NGX_CONF_UNSET;
    conf->confirm_ttl = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_safedelete_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_safedelete_loc_conf_t *prev = parent;
    ngx_http_safedelete_loc_conf_t *conf = child;

    ngx_str_t                        *name;
    ngx_http_core_loc_conf_t         *clcf;
    ngx_http_safedelete_policy_t     *policy;
    ngx_http_safedelete_main_conf_t  *sdmcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_uint_value(conf->mode, prev->mode,
                              NGX_HTTP_SAFEDELETE_MODE_SOFT);
    ngx_conf_merge_value(conf->hard_override, prev->hard_override, 0);
    ngx_conf_merge_ptr_value(conf->forward_headers, prev->forward_headers,
                             NULL);
    ngx_conf_merge_ptr_value(conf->upstream_headers, prev->upstream_headers,
                             NULL);
    ngx_conf_merge_msec_value(conf->upstream_timeout, prev->upstream_timeout,
                              5000);
    ngx_conf_merge_ptr_value(conf->id, prev->id, NULL);
    ngx_conf_merge_ptr_value(conf->record_uri, prev->record_uri, NULL);
    ngx_conf_merge_ptr_value(conf->actor, prev->actor, NULL);
    ngx_conf_merge_ptr_value(conf->admin, prev->admin, NULL);
    ngx_conf_merge_ptr_value(conf->soft_uri, prev->soft_uri, NULL);
    ngx_conf_merge_uint_value(conf->soft_method, prev->soft_method,
                              NGX_HTTP_PATCH);
    ngx_conf_merge_ptr_value(conf->soft_fields, prev->soft_fields, NULL);
    ngx_conf_merge_ptr_value(conf->restore_fields, prev->restore_fields,
                             NULL);
    ngx_conf_merge_sec_value(conf->undo_window, prev->undo_window, 30);
    ngx_conf_merge_sec_value(conf->backup_ttl, prev->backup_ttl,
                             7 * 24 * 3600);
    ngx_conf_merge_uint_value(conf->fail, prev->fail,
                              NGX_HTTP_SAFEDELETE_FAIL_CLOSED);
    ngx_conf_merge_value(conf->require_actor, prev->require_actor, 0);
    ngx_conf_merge_str_value(conf->owner_field, prev->owner_field, "");
    ngx_conf_merge_ptr_value(conf->dependencies, prev->dependencies, NULL);
    ngx_conf_merge_ptr_value(conf->restore_checks, prev->restore_checks,
                             NULL);
    ngx_conf_merge_uint_value(conf->dependency_limit, prev->dependency_limit,
                              100);
    ngx_conf_merge_value(conf->confirm, prev->confirm, 0);
    ngx_conf_merge_sec_value(conf->confirm_ttl, prev->confirm_ttl, 60);

    if (conf->upstream.data == NULL) {
        conf->upstream = prev->upstream;
        conf->upstream_origin = prev->upstream_origin;
        conf->upstream_path = prev->upstream_path;
        conf->upstream_has_uri = prev->upstream_has_uri;
        conf->upstream_prefix = prev->upstream_prefix;
    }

    if (conf->forward_headers == NULL) {
        /* the default: the client's credentials reach the backend */
        conf->forward_headers = ngx_array_create(cf->pool, 1,
                                                 sizeof(ngx_str_t));
        if (conf->forward_headers == NULL) {
            return NGX_CONF_ERROR;
        }

        name = ngx_array_push(conf->forward_headers);
        if (name == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_str_set(name, "Authorization");
    }

    if (!conf->enable && !conf->api) {
        return NGX_CONF_OK;
    }

    sdmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_safedelete_module);
    sdmcf->enabled = 1;

    if (conf->confirm) {
        sdmcf->confirm_used = 1;
    }

    if (!conf->enable) {
        return NGX_CONF_OK;
    }

    /*
     * an undo names the location of its delete, so it is restored with
     * that location's upstream, fields and identity
     */
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf == NULL || clcf->name.len == 0 || conf->policy.len) {
        return NGX_CONF_OK;
    }

    conf->policy = clcf->name;

    policy = ngx_array_push(&sdmcf->policies);
    if (policy == NULL) {
        return NGX_CONF_ERROR;
    }

    policy->name = clcf->name;
    policy->conf = conf;

    return NGX_CONF_OK;
}


ngx_http_safedelete_loc_conf_t *
ngx_http_safedelete_find_policy(ngx_http_request_t *r, ngx_str_t *name)
{
    ngx_uint_t                        i;
    ngx_http_safedelete_policy_t     *policy;
    ngx_http_safedelete_main_conf_t  *sdmcf;

    sdmcf = ngx_http_get_module_main_conf(r, ngx_http_safedelete_module);

    policy = sdmcf->policies.elts;

    for (i = 0; i < sdmcf->policies.nelts; i++) {
        if (policy[i].name.len == name->len
            && ngx_strncmp(policy[i].name.data, name->data, name->len) == 0)
        {
            return policy[i].conf;
        }
    }

    return NULL;
}


static char *
ngx_http_safedelete_redis_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_safedelete_main_conf_t *sdmcf = conf;

    ngx_str_t  *value;

    if (sdmcf->redis.url.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_http_safedelete_redis_parse_url(cf, &value[1], &sdmcf->redis)
        != NGX_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid redis URL \"%V\", expected "
                           "\"redis://[:password@]host[:port][/db]\" or "
                           "\"unix:/path/to/redis.sock\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_safedelete_upstream_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_safedelete_loc_conf_t *sdlcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (sdlcf->upstream.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    sdlcf->upstream = value[1];

    /*
     * like proxy_pass, the URI part replaces the prefix of the location
     * where it is written, also in the locations nested in it
     */
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (cf->cmd_type == NGX_HTTP_LOC_CONF && clcf->regex == NULL
        && !clcf->named)
    {
        sdlcf->upstream_prefix = clcf->name;
    }

    return ngx_http_safedelete_uri_upstream(cf, sdlcf);
}


static char *
ngx_http_safedelete_field_slot(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_str_t  *value;

    value = cf->args->elts;

    return ngx_http_safedelete_add_field(cf,
                                         (ngx_array_t **) (p + cmd->offset),
                                         &value[1], &value[2],
                                         (ngx_uint_t) cmd->post);
}


static char *
ngx_http_safedelete_add_field(ngx_conf_t *cf, ngx_array_t **fields,
    ngx_str_t *name, ngx_str_t *value, ngx_uint_t json)
{
    ngx_http_safedelete_field_t       *f;
    ngx_http_compile_complex_value_t   ccv;

    if (*fields == NGX_CONF_UNSET_PTR || *fields == NULL) {
        *fields = ngx_array_create(cf->pool, 4,
                                   sizeof(ngx_http_safedelete_field_t));
        if (*fields == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (name->len == 0
        || ngx_strlchr(name->data, name->data + name->len, '\0'))
    {
        return "has an empty or invalid field name";
    }

    f = ngx_array_push(*fields);
    if (f == NULL) {
        return NGX_CONF_ERROR;
    }

    f->name.data = ngx_http_safedelete_cstr(cf, name);
    if (f->name.data == NULL) {
        return NGX_CONF_ERROR;
    }

    f->name.len = name->len;
    f->json = json;

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = value;
    ccv.complex_value = &f->value;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_safedelete_forward_headers_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_safedelete_loc_conf_t *sdlcf = conf;

    ngx_str_t   *value, *name;
    ngx_uint_t   i;

    if (sdlcf->forward_headers != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    sdlcf->forward_headers = ngx_array_create(cf->pool, cf->args->nelts,
                                              sizeof(ngx_str_t));
    if (sdlcf->forward_headers == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        return NGX_CONF_OK;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        name = ngx_array_push(sdlcf->forward_headers);
        if (name == NULL) {
            return NGX_CONF_ERROR;
        }

        *name = value[i];
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_safedelete_upstream_header_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_safedelete_loc_conf_t *sdlcf = conf;

    ngx_str_t                         *value;
    ngx_http_safedelete_header_t      *h;
    ngx_http_compile_complex_value_t   ccv;

    if (sdlcf->upstream_headers == NGX_CONF_UNSET_PTR) {
        sdlcf->upstream_headers = ngx_array_create(cf->pool, 2,
                                          sizeof(ngx_http_safedelete_header_t));
        if (sdlcf->upstream_headers == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    h = ngx_array_push(sdlcf->upstream_headers);
    if (h == NULL) {
        return NGX_CONF_ERROR;
    }

    h->name = value[1];

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[2];
    ccv.complex_value = &h->value;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_safedelete_api_slot(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_safedelete_loc_conf_t *sdlcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (sdlcf->api) {
        return "is duplicate";
    }

    sdlcf->api = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_safedelete_api_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_safedelete_init_process(ngx_cycle_t *cycle)
{
    ngx_http_safedelete_main_conf_t  *sdmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    if (ngx_get_conf(cycle->conf_ctx, ngx_http_module) == NULL) {
        return NGX_OK;
    }

    sdmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                                ngx_http_safedelete_module);

    if (sdmcf == NULL || !sdmcf->enabled) {
        return NGX_OK;
    }

    ngx_http_safedelete_store_configure(&sdmcf->key_prefix,
                                        sdmcf->audit_maxlen);

    if (ngx_http_safedelete_http_init(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_safedelete_redis_init(cycle, &sdmcf->redis);
}


static void
ngx_http_safedelete_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_safedelete_redis_done();
    ngx_http_safedelete_http_done();
}


/* jansson takes NUL-terminated keys */

static u_char *
ngx_http_safedelete_cstr(ngx_conf_t *cf, ngx_str_t *s)
{
    u_char  *p;

    p = ngx_pnalloc(cf->pool, s->len + 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, s->data, s->len);
    p[s->len] = '\0';

    return p;
}


static char *
ngx_http_safedelete_dependency_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char  *p = conf;

    ngx_str_t                          *value;
    ngx_uint_t                          i;
    ngx_array_t                       **deps;
    ngx_http_safedelete_dependency_t   *dep, *d;
    ngx_http_compile_complex_value_t    ccv;

    deps = (ngx_array_t **) (p + cmd->offset);
    value = cf->args->elts;

    if (*deps == NGX_CONF_UNSET_PTR) {
        *deps = ngx_array_create(cf->pool, 4,
                                 sizeof(ngx_http_safedelete_dependency_t));
        if (*deps == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    d = (*deps)->elts;

    for (i = 0; i < (*deps)->nelts; i++) {
        if (d[i].name.len == value[1].len
            && ngx_strncmp(d[i].name.data, value[1].data, value[1].len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" is defined twice", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if (value[1].len == 0) {
        return "has an empty name";
    }

    dep = ngx_array_push(*deps);
    if (dep == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(dep, sizeof(ngx_http_safedelete_dependency_t));

    dep->name.data = ngx_http_safedelete_cstr(cf, &value[1]);
    if (dep->name.data == NULL) {
        return NGX_CONF_ERROR;
    }

    dep->name.len = value[1].len;
    dep->action = NGX_HTTP_SAFEDELETE_DEP_BLOCK;

    if (cf->args->nelts == 4) {
        for (i = 0; ngx_http_safedelete_dep_actions[i].name.len; i++) {
            if (ngx_http_safedelete_dep_actions[i].name.len == value[3].len
                && ngx_strncmp(ngx_http_safedelete_dep_actions[i].name.data,
                               value[3].data, value[3].len)
                   == 0)
            {
                dep->action = ngx_http_safedelete_dep_actions[i].value;
                break;
            }
        }

        if (ngx_http_safedelete_dep_actions[i].name.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid action \"%V\", expected \"block\", "
                               "\"cascade\", \"update\" or \"report\"",
                               &value[3]);
            return NGX_CONF_ERROR;
        }
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[2];
    ccv.complex_value = &dep->uri;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_safedelete_dependency_set_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_safedelete_loc_conf_t *sdlcf = conf;

    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_http_safedelete_dependency_t  *dep;

    value = cf->args->elts;

    if (sdlcf->dependencies == NGX_CONF_UNSET_PTR) {
        goto unknown;
    }

    dep = sdlcf->dependencies->elts;

    for (i = 0; i < sdlcf->dependencies->nelts; i++) {
        if (dep[i].name.len == value[1].len
            && ngx_strncmp(dep[i].name.data, value[1].data, value[1].len)
               == 0)
        {
            if (dep[i].action != NGX_HTTP_SAFEDELETE_DEP_CASCADE
                && dep[i].action != NGX_HTTP_SAFEDELETE_DEP_UPDATE)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "dependency \"%V\" is neither \"cascade\" "
                                   "nor \"update\": it changes nothing",
                                   &value[1]);
                return NGX_CONF_ERROR;
            }

            return ngx_http_safedelete_add_field(cf, &dep[i].fields,
                                                 &value[2], &value[3],
                                                 (ngx_uint_t) cmd->post);
        }
    }

unknown:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "unknown dependency \"%V\": define it first with "
                       "\"safedelete_dependency\" in the same block",
                       &value[1]);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_safedelete_secret_file_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_safedelete_main_conf_t *sdmcf = conf;

    ssize_t     n;
    ngx_str_t  *value;
    ngx_file_t  file;
    u_char      buf[1024];

    if (sdmcf->secret_file.len) {
        return "is duplicate";
    }

    value = cf->args->elts;
    sdmcf->secret_file = value[1];

    if (ngx_conf_full_name(cf->cycle, &sdmcf->secret_file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));

    file.name = sdmcf->secret_file;
    file.log = cf->log;
    file.fd = ngx_open_file(file.name.data, NGX_FILE_RDONLY,
                            NGX_FILE_OPEN, 0);

    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &file.name);
        return NGX_CONF_ERROR;
    }

    n = ngx_read_file(&file, buf, sizeof(buf), 0);

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%V\" failed", &file.name);
    }

    if (n == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    /* an editor's final newline is no part of the key */
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'
                     || buf[n - 1] == ' '))
    {
        n--;
    }

    if (n < 16) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "secret file \"%V\" holds fewer than 16 bytes",
                           &file.name);
        return NGX_CONF_ERROR;
    }

    sdmcf->secret.data = ngx_pnalloc(cf->pool, n);
    if (sdmcf->secret.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(sdmcf->secret.data, buf, n);
    sdmcf->secret.len = n;

    ngx_explicit_memzero(buf, sizeof(buf));

    return NGX_CONF_OK;
}
