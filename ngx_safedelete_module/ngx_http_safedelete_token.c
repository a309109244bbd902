/*
 * Copyright (C) ngx_safedelete_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "ngx_http_safedelete_token.h"


ngx_int_t
ngx_http_safedelete_token_random(ngx_pool_t *pool, ngx_str_t *out)
{
    u_char     raw[16];
    ngx_str_t  src;

    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        return NGX_ERROR;
    }

    out->data = ngx_pnalloc(pool, ngx_base64_encoded_length(sizeof(raw)));
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    src.data = raw;
    src.len = sizeof(raw);

    ngx_http_safedelete_token_base64url(out, &src);

    return NGX_OK;
}


void
ngx_http_safedelete_token_base64url(ngx_str_t *dst, ngx_str_t *src)
{
    ngx_encode_base64url(dst, src);
}


ngx_uint_t
ngx_http_safedelete_token_valid(ngx_str_t *token)
{
    size_t   i;
    u_char   ch;

    if (token->len != NGX_HTTP_SAFEDELETE_TOKEN_LEN) {
        return 0;
    }

    for (i = 0; i < token->len; i++) {
        ch = token->data[i];

        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z')
              || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
        {
            return 0;
        }
    }

    return 1;
}


ngx_int_t
ngx_http_safedelete_token_hmac(ngx_str_t *key, ngx_str_t *msg, u_char *md)
{
    unsigned int  len;

    if (HMAC(EVP_sha256(), key->data, (int) key->len, msg->data, msg->len,
             md, &len)
        == NULL)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_uint_t
ngx_http_safedelete_token_equal(u_char *a, u_char *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}
