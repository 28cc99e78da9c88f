/* SPDX-License-Identifier: Apache-2.0 */
/* layer_map.c -- reference-counted layers, immutable layer maps and the search across them. */
#include "pageserver/layer_map.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

/* ---- values ---- */

void ps_values_init(struct ps_values *vals)
{
    memset(vals, 0, sizeof(*vals));
}

void ps_values_fini(struct ps_values *vals)
{
    free(vals->items);
    free(vals->offs);
    kc_sbuf_fini(&vals->bytes);
    ps_values_init(vals);
}

void ps_values_reset(struct ps_values *vals)
{
    vals->complete = vals->has_base = false;
    memset(&vals->base, 0, sizeof(vals->base));
    vals->records = NULL;
    vals->nrecords = 0;
    vals->n = 0;
    kc_sbuf_reset(&vals->bytes);
}

uint8_t *ps_values_space(struct ps_values *vals, size_t len)
{
    kc_sbuf_reserve(&vals->bytes, len);
    return vals->bytes.data + vals->bytes.len;
}

void ps_values_push(struct ps_values *vals, kc_lsn lsn, const struct ps_value *v)
{
    if (vals->n == vals->cap) {
        vals->cap = vals->cap ? 2 * vals->cap : 8;
        vals->items = kc_realloc(vals->items, vals->cap * sizeof(*vals->items));
        vals->offs = kc_realloc(vals->offs, vals->cap * sizeof(*vals->offs));
    }
    vals->items[vals->n].lsn = lsn;
    vals->items[vals->n].v = *v;
    vals->items[vals->n].v.data = NULL; /* set by ps_values_finish */
    vals->offs[vals->n] = vals->bytes.len;
    if (v->len > 0 && v->data == vals->bytes.data + vals->bytes.len) {
        /* Written in place through ps_values_space (which left room for it). */
        vals->bytes.len += v->len;
        vals->bytes.data[vals->bytes.len] = '\0';
    } else {
        kc_sbuf_append(&vals->bytes, v->data, v->len);
    }
    vals->n++;
}

bool ps_values_chain_ended(const struct ps_values *vals)
{
    return vals->n > 0 && ps_value_ends_chain(&vals->items[vals->n - 1].v);
}

void ps_values_finish(struct ps_values *vals, bool complete)
{
    /* Oldest first, and the bytes where the arena finally is. */
    for (size_t i = 0, j = vals->n; i + 1 < j; i++, j--) {
        struct ps_found t = vals->items[i];
        uint64_t o = vals->offs[i];
        vals->items[i] = vals->items[j - 1];
        vals->offs[i] = vals->offs[j - 1];
        vals->items[j - 1] = t;
        vals->offs[j - 1] = o;
    }
    for (size_t i = 0; i < vals->n; i++)
        vals->items[i].v.data = vals->bytes.data != NULL ? vals->bytes.data + vals->offs[i] : NULL;
    vals->complete = complete;
    vals->has_base = vals->n > 0 && vals->items[0].v.kind == PS_VALUE_IMAGE;
    if (vals->has_base)
        vals->base = vals->items[0];
    vals->records = vals->items + (vals->has_base ? 1 : 0);
    vals->nrecords = vals->n - (vals->has_base ? 1 : 0);
}

/* ---- layers ---- */

struct ps_layer *ps_layer_from_memlayer(struct ps_memlayer *m, const struct kc_id *tenant,
                                        const struct kc_id *timeline, kc_lsn end)
{
    struct ps_layer *l = kc_calloc(1, sizeof(*l));
    struct ps_key a = ps_key_min(), b = ps_key_max();

    atomic_init(&l->refs, 1);
    ps_layer_desc_delta(&l->desc, tenant, timeline, &a, &b, ps_memlayer_start_lsn(m) + 1, end + 1);
    l->mem = m;
    return l;
}

struct ps_layer *ps_layer_from_file(struct ps_layer_reader *r)
{
    struct ps_layer *l = kc_calloc(1, sizeof(*l));

    atomic_init(&l->refs, 1);
    l->desc = *ps_layer_reader_desc(r);
    l->file = r;
    l->file_size = ps_layer_reader_file_size(r);
    ps_layer_name_format(&l->desc, l->name);
    return l;
}

struct ps_layer *ps_layer_ref(struct ps_layer *l)
{
    atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
    return l;
}

void ps_layer_unref(struct ps_layer *l)
{
    if (l == NULL || atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
        return;
    ps_memlayer_destroy(l->mem);
    ps_layer_close(l->file);
    free(l);
}

/* ---- maps ---- */

struct ps_layer_map *ps_layer_map_create(void)
{
    struct ps_layer_map *m = kc_calloc(1, sizeof(*m));

    atomic_init(&m->refs, 1);
    return m;
}

/* Map order: LSN end descending, then LSN start descending, then key start. */
static int ps_layer_order(const void *a, const void *b)
{
    const struct ps_layer *x = *(struct ps_layer *const *)a, *y = *(struct ps_layer *const *)b;

    if (x->desc.lsn_end != y->desc.lsn_end)
        return x->desc.lsn_end > y->desc.lsn_end ? -1 : 1;
    if (x->desc.lsn_start != y->desc.lsn_start)
        return x->desc.lsn_start > y->desc.lsn_start ? -1 : 1;
    return ps_key_cmp(&x->desc.key_start, &y->desc.key_start);
}

struct ps_layer_map *ps_layer_map_edit(const struct ps_layer_map *m, struct ps_layer *add,
                                       const struct ps_layer *remove)
{
    struct ps_layer_map *e = ps_layer_map_create();

    e->layers = kc_malloc((m->n + 1) * sizeof(*e->layers));
    for (size_t i = 0; i < m->n; i++)
        if (m->layers[i] != remove)
            e->layers[e->n++] = ps_layer_ref(m->layers[i]);
    if (add != NULL)
        e->layers[e->n++] = ps_layer_ref(add);
    qsort(e->layers, e->n, sizeof(*e->layers), ps_layer_order);
    return e;
}

struct ps_layer_map *ps_layer_map_ref(struct ps_layer_map *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void ps_layer_map_unref(struct ps_layer_map *m)
{
    if (m == NULL || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < m->n; i++)
        ps_layer_unref(m->layers[i]);
    free(m->layers);
    free(m);
}

static bool ps_ranges_meet(const struct ps_layer_desc *a, const struct ps_layer_desc *b)
{
    return ps_key_cmp(&a->key_start, &b->key_end) < 0 &&
           ps_key_cmp(&b->key_start, &a->key_end) < 0 && a->lsn_start < b->lsn_end &&
           b->lsn_start < a->lsn_end;
}

int ps_layer_map_check_add(const struct ps_layer_map *m, const struct ps_layer_desc *d,
                           struct kc_error *err)
{
    char a[PS_LAYER_NAME_MAX], b[PS_LAYER_NAME_MAX];

    for (size_t i = 0; i < m->n; i++) {
        const struct ps_layer_desc *o = &m->layers[i]->desc;
        if (o->kind != d->kind || !ps_ranges_meet(o, d))
            continue;
        kc_error_set(err, KC_EINVAL, "layer %s overlaps layer %s", ps_layer_name_format(d, a),
                     m->layers[i]->mem != NULL ? "in memory" : ps_layer_name_format(o, b));
        kc_error_detail(err,
                        "Two %s layers of a timeline may not cover the same key at the "
                        "same LSN.",
                        d->kind == PS_LAYER_DELTA ? "delta" : "image");
        return KC_EINVAL;
    }
    return 0;
}

struct ps_layer *ps_layer_map_oldest_mem(const struct ps_layer_map *m)
{
    struct ps_layer *best = NULL;

    for (size_t i = 0; i < m->n; i++)
        if (m->layers[i]->mem != NULL &&
            (best == NULL || m->layers[i]->desc.lsn_start < best->desc.lsn_start))
            best = m->layers[i];
    return best;
}

size_t ps_layer_map_nmem(const struct ps_layer_map *m)
{
    size_t n = 0;

    for (size_t i = 0; i < m->n; i++)
        n += m->layers[i]->mem != NULL;
    return n;
}

/* ---- search ---- */

/* State of a search of an in-memory layer bounded below by a floor. */
struct ps_mem_visit {
    struct ps_values *vals;
    kc_lsn floor;
};

#define PS_VISIT_FLOOR 1 /* positive: the visitor reached the floor (not an error) */

static int ps_mem_visit_cb(void *arg, kc_lsn lsn, const struct ps_value *v)
{
    struct ps_mem_visit *s = arg;

    if (lsn <= s->floor)
        return PS_VISIT_FLOOR;
    ps_values_push(s->vals, lsn, v);
    return 0;
}

int ps_memlayer_search_range(const struct ps_memlayer *m, const struct ps_key *key, kc_lsn top,
                             kc_lsn floor, struct ps_values *vals, enum ps_search_result *result,
                             struct kc_error *err)
{
    struct ps_mem_visit s = {vals, floor};
    struct kc_error sub;
    kc_lsn drop = ps_memlayer_drop_lsn(m, key, top);
    enum ps_search_result r;
    int rc = ps_memlayer_search(m, key, top, ps_mem_visit_cb, &s, &r, &sub);

    if (rc < 0) {
        if (err != NULL)
            *err = sub;
        return rc;
    }
    /*
     * rc == PS_VISIT_FLOOR: stopped at the floor, every value in (floor, top]
     * visited. Otherwise the memlayer's verdict, with a drop at or below the
     * floor left to the layers below it.
     */
    if (rc == 0 && r == PS_SEARCH_COMPLETE)
        *result = PS_SEARCH_COMPLETE;
    else
        *result = drop > floor ? PS_SEARCH_ABSENT : PS_SEARCH_CONTINUE;
    return 0;
}

/* Search the layer file r (a delta or an image layer) in (floor, top]. */
static int ps_file_search(const struct ps_layer *l, const struct ps_key *key, kc_lsn top,
                          kc_lsn floor, struct ps_values *vals, enum ps_search_result *result,
                          struct kc_error *err)
{
    struct ps_layer_iter *it = ps_layer_iter_create(l->file);
    kc_lsn drop = l->desc.kind == PS_LAYER_DELTA ? ps_layer_reader_drop_lsn(l->file, key, top) : 0;
    kc_lsn stop = drop > floor ? drop : floor;
    int rc;

    *result = PS_SEARCH_CONTINUE;
    for (rc = ps_layer_iter_versions(it, key, top, err); rc == 1;
         rc = ps_layer_iter_next(it, err)) {
        const struct ps_layer_entry *e = ps_layer_iter_entry(it);
        struct ps_value v;
        if (e->lsn <= stop)
            break;
        rc = ps_layer_iter_read(it, ps_values_space(vals, e->len), e->len, &v, err);
        if (rc != 0)
            break;
        ps_values_push(vals, e->lsn, &v); /* read in place: nothing copied */
        if (ps_value_ends_chain(&v)) {
            *result = PS_SEARCH_COMPLETE;
            rc = 0;
            break;
        }
    }
    ps_layer_iter_destroy(it);
    if (rc < 0)
        return rc;
    if (*result != PS_SEARCH_COMPLETE) {
        /* An image layer without the key: the key does not exist at its LSN. */
        if (l->desc.kind == PS_LAYER_IMAGE || drop > floor)
            *result = PS_SEARCH_ABSENT;
    }
    return 0;
}

int ps_layer_search(const struct ps_layer *l, const struct ps_key *key, kc_lsn top, kc_lsn floor,
                    struct ps_values *vals, enum ps_search_result *result, struct kc_error *err)
{
    if (l->mem != NULL)
        return ps_memlayer_search_range(l->mem, key, top, floor, vals, result, err);
    return ps_file_search(l, key, top, floor, vals, result, err);
}

/* The highest LSN at or below cur that l covers, or 0 when l is not a candidate for key. */
static kc_lsn ps_layer_top(const struct ps_layer *l, const struct ps_key *key, kc_lsn cur)
{
    const struct ps_layer_desc *d = &l->desc;

    if (d->lsn_start > cur || ps_key_cmp(key, &d->key_start) < 0 ||
        ps_key_cmp(key, &d->key_end) >= 0)
        return 0;
    return d->lsn_end - 1 < cur ? d->lsn_end - 1 : cur;
}

/* The next layer to visit at cur (NULL when none), its top and the floor below it. */
static const struct ps_layer *ps_layer_map_pick(const struct ps_layer_map *m,
                                                const struct ps_key *key, kc_lsn cur, kc_lsn *top,
                                                kc_lsn *floor)
{
    const struct ps_layer *best = NULL;
    kc_lsn best_top = 0, next = 0;

    for (size_t i = 0; i < m->n; i++) {
        const struct ps_layer *l = m->layers[i];
        kc_lsn t = ps_layer_top(l, key, cur);
        if (t != 0 && (t > best_top || (t == best_top && l->desc.kind == PS_LAYER_IMAGE))) {
            best = l;
            best_top = t;
        }
    }
    for (size_t i = 0; best != NULL && i < m->n; i++) {
        kc_lsn t = ps_layer_top(m->layers[i], key, cur);
        if (t < best_top && t > next)
            next = t;
    }
    *top = best_top;
    *floor = next;
    return best;
}

int ps_layer_map_search(const struct ps_layer_map *m, const struct ps_key *key, kc_lsn *cur,
                        struct ps_values *vals, enum ps_search_result *result, struct kc_error *err)
{
    *result = PS_SEARCH_CONTINUE;
    while (*cur > 0) {
        kc_lsn top, floor;
        const struct ps_layer *l = ps_layer_map_pick(m, key, *cur, &top, &floor);
        int rc;

        if (l == NULL)
            return 0;
        if ((rc = ps_layer_search(l, key, top, floor, vals, result, err)) != 0)
            return rc;
        if (*result != PS_SEARCH_CONTINUE)
            return 0;
        /* Below the floor this layer may still hold values: it stays a candidate. */
        *cur = floor >= l->desc.lsn_start ? floor : l->desc.lsn_start - 1;
    }
    return 0;
}
