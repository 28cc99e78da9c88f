/* SPDX-License-Identifier: Apache-2.0 */
/*
 * alloc.h -- memory allocation that never returns NULL for our own sizes.
 *
 * kc_malloc and friends log and abort when memory runs out: a fixed-size
 * allocation of our own failing means the process cannot go on. Sizes taken
 * from input (a length field of a frame, a file) go through kc_try_malloc,
 * which returns NULL so that only that request fails.
 * Everything returned is freed by the caller with free().
 */
#ifndef KC_ALLOC_H
#define KC_ALLOC_H

#include <stddef.h>

void *kc_malloc(size_t size);
void *kc_calloc(size_t count, size_t size);
void *kc_realloc(void *ptr, size_t size);
char *kc_strdup(const char *s);
char *kc_strndup(const char *s, size_t n);
/* May return NULL; for sizes that come from input. */
void *kc_try_malloc(size_t size);

#endif
