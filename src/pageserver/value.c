/* SPDX-License-Identifier: Apache-2.0 */
/* value.c -- checking and naming pageserver values. See value.h. */
#include "pageserver/value.h"

#include <stddef.h>

bool ps_value_kind_valid(unsigned kind)
{
    return kind == PS_VALUE_IMAGE || kind == PS_VALUE_PG_RECORD || kind == PS_VALUE_NATIVE_RECORD;
}

const char *ps_value_kind_name(unsigned kind)
{
    switch (kind) {
    case PS_VALUE_IMAGE: return "image";
    case PS_VALUE_PG_RECORD: return "pg-record";
    case PS_VALUE_NATIVE_RECORD: return "native-record";
    default: return "unknown";
    }
}

int ps_value_check(const struct ps_value *v, struct kc_error *err)
{
    if (!ps_value_kind_valid((unsigned)v->kind)) {
        kc_error_set(err, KC_EINVAL, "invalid value kind %u", (unsigned)v->kind);
        kc_error_detail(err, "A value is an image (1), a PostgreSQL record (2) or a native "
                             "record (3).");
        return KC_EINVAL;
    }
    if (v->len > PS_VALUE_MAX_LEN) {
        kc_error_set(err, KC_ETOOBIG, "value of %u bytes is too large", v->len);
        kc_error_detail(err, "The largest value a layer stores is %u bytes.", PS_VALUE_MAX_LEN);
        return KC_ETOOBIG;
    }
    if (v->len > 0 && v->data == NULL)
        return kc_error_set(err, KC_EINVAL, "value of %u bytes has no data", v->len);
    if (v->kind == PS_VALUE_IMAGE && !v->will_init) {
        kc_error_set(err, KC_EINVAL, "image value without will_init");
        kc_error_detail(err, "An image needs nothing older, so its will_init flag must be set.");
        return KC_EINVAL;
    }
    return 0;
}
