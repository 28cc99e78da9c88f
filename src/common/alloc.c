/* SPDX-License-Identifier: Apache-2.0 */
/* alloc.c -- aborting allocators. See alloc.h. */
#include "common/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void kc_oom(size_t size) __attribute__((noreturn));

static void kc_oom(size_t size)
{
    /* No logging module here: it may itself need memory. */
    fprintf(stderr, "FATAL: out of memory allocating %zu bytes\n", size);
    abort();
}

void *kc_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        kc_oom(size);
    return p;
}

void *kc_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL)
        kc_oom(count * size);
    return p;
}

void *kc_realloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (p == NULL)
        kc_oom(size);
    return p;
}

char *kc_strdup(const char *s)
{
    return kc_strndup(s, strlen(s));
}

char *kc_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = kc_malloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void *kc_try_malloc(size_t size)
{
    return malloc(size ? size : 1);
}
