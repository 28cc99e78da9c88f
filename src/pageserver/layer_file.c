/* SPDX-License-Identifier: Apache-2.0 */
/* layer_file.c -- layer descriptions, names and the on-disk layout of their parts. */
#include "pageserver/layer_file.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/crc32c.h"

void ps_layer_desc_image(struct ps_layer_desc *d, const struct kc_id *tenant,
                         const struct kc_id *timeline, const struct ps_key *key_start,
                         const struct ps_key *key_end, kc_lsn lsn)
{
    ps_layer_desc_delta(d, tenant, timeline, key_start, key_end, lsn, lsn + 1);
    d->kind = PS_LAYER_IMAGE;
}

void ps_layer_desc_delta(struct ps_layer_desc *d, const struct kc_id *tenant,
                         const struct kc_id *timeline, const struct ps_key *key_start,
                         const struct ps_key *key_end, kc_lsn lsn_start, kc_lsn lsn_end)
{
    memset(d, 0, sizeof(*d));
    d->kind = PS_LAYER_DELTA;
    d->tenant = *tenant;
    d->timeline = *timeline;
    d->key_start = *key_start;
    d->key_end = *key_end;
    d->lsn_start = lsn_start;
    d->lsn_end = lsn_end;
}

int ps_layer_desc_check(const struct ps_layer_desc *d, struct kc_error *err)
{
    char a[PS_KEY_STRLEN], b[PS_KEY_STRLEN];

    if (d->kind != PS_LAYER_DELTA && d->kind != PS_LAYER_IMAGE)
        return kc_error_set(err, KC_EINVAL, "invalid layer kind %d", (int)d->kind);
    if (ps_key_cmp(&d->key_start, &d->key_end) >= 0) {
        kc_error_set(err, KC_EINVAL, "empty layer key range");
        kc_error_detail(err, "The start key %s is not below the end key %s.",
                        ps_key_format(&d->key_start, a), ps_key_format(&d->key_end, b));
        return KC_EINVAL;
    }
    if (d->lsn_start >= d->lsn_end) {
        kc_error_set(err, KC_EINVAL, "empty layer LSN range");
        kc_error_detail(err,
                        "The start LSN %016" PRIX64 " is not below the end LSN %016" PRIX64 ".",
                        d->lsn_start, d->lsn_end);
        return KC_EINVAL;
    }
    if (d->kind == PS_LAYER_IMAGE && d->lsn_end != d->lsn_start + 1) {
        kc_error_set(err, KC_EINVAL, "image layer spans more than one LSN");
        kc_error_detail(err, "An image layer at LSN %016" PRIX64 " must end at the next LSN.",
                        d->lsn_start);
        return KC_EINVAL;
    }
    return 0;
}

bool ps_layer_desc_contains(const struct ps_layer_desc *d, const struct ps_key *key, kc_lsn lsn)
{
    return ps_key_cmp(key, &d->key_start) >= 0 && ps_key_cmp(key, &d->key_end) < 0 &&
           lsn >= d->lsn_start && lsn < d->lsn_end;
}

int ps_layer_keylsn_cmp(const struct ps_key *ka, kc_lsn la, const struct ps_key *kb, kc_lsn lb)
{
    int c = ps_key_cmp(ka, kb);

    if (c != 0)
        return c;
    return la < lb ? -1 : la > lb ? 1 : 0;
}

/* ---- names ---- */

char *ps_layer_name_format(const struct ps_layer_desc *d, char buf[PS_LAYER_NAME_MAX])
{
    char ks[PS_KEY_STRLEN], ke[PS_KEY_STRLEN];

    ps_key_format(&d->key_start, ks);
    ps_key_format(&d->key_end, ke);
    if (d->kind == PS_LAYER_IMAGE)
        snprintf(buf, PS_LAYER_NAME_MAX, "%s-%s__%016" PRIX64, ks, ke, d->lsn_start);
    else
        snprintf(buf, PS_LAYER_NAME_MAX, "%s-%s__%016" PRIX64 "-%016" PRIX64, ks, ke, d->lsn_start,
                 d->lsn_end);
    return buf;
}

/* Parse n lower-case (upper == false) or upper-case hex digits at s; false on any other byte. */
static bool ps_parse_hex(const char *s, size_t n, bool upper, uint8_t *out_bytes, uint64_t *out_u64)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (!upper && c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (upper && c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return false;
        if (out_bytes != NULL) {
            if (i % 2 == 0)
                out_bytes[i / 2] = (uint8_t)(d << 4);
            else
                out_bytes[i / 2] |= (uint8_t)d;
        }
        v = v << 4 | d;
    }
    if (out_u64 != NULL)
        *out_u64 = v;
    return true;
}

static int ps_name_bad(struct kc_error *err, const char *name, const char *why)
{
    kc_error_set(err, KC_EINVAL, "invalid layer file name \"%.120s%s\"", name,
                 strlen(name) > 120 ? "..." : "");
    kc_error_detail(err, "%s", why);
    kc_error_hint(err, "A layer name is <start key>-<end key>__<LSN> (image) or "
                       "<start key>-<end key>__<start LSN>-<end LSN> (delta).");
    return KC_EINVAL;
}

int ps_layer_name_parse(const char *name, struct ps_layer_desc *out, struct kc_error *err)
{
    struct ps_layer_desc d;
    size_t len = strnlen(name, PS_LAYER_NAME_MAX + 1);
    struct kc_error sub;

    memset(&d, 0, sizeof(d));
    if (len != PS_LAYER_NAME_IMAGE_LEN && len != PS_LAYER_NAME_DELTA_LEN)
        return ps_name_bad(err, name, "Its length is not that of a layer name (91 or 108).");
    if (!ps_parse_hex(name, 36, false, d.key_start.b, NULL) || name[36] != '-' ||
        !ps_parse_hex(name + 37, 36, false, d.key_end.b, NULL))
        return ps_name_bad(err, name,
                           "It does not start with two keys of 36 lower-case "
                           "hexadecimal digits separated by '-'.");
    if (name[73] != '_' || name[74] != '_')
        return ps_name_bad(err, name, "The keys are not followed by \"__\".");
    if (!ps_parse_hex(name + 75, 16, true, NULL, &d.lsn_start))
        return ps_name_bad(err, name, "The first LSN is not 16 upper-case hexadecimal digits.");
    if (len == PS_LAYER_NAME_DELTA_LEN) {
        d.kind = PS_LAYER_DELTA;
        if (name[91] != '-' || !ps_parse_hex(name + 92, 16, true, NULL, &d.lsn_end))
            return ps_name_bad(err, name,
                               "The end LSN is not '-' and 16 upper-case "
                               "hexadecimal digits.");
    } else {
        d.kind = PS_LAYER_IMAGE;
        if (d.lsn_start == UINT64_MAX)
            return ps_name_bad(err, name, "The image LSN is the largest LSN.");
        d.lsn_end = d.lsn_start + 1;
    }
    if (ps_layer_desc_check(&d, &sub) != 0)
        return ps_name_bad(err, name, sub.detail[0] != '\0' ? sub.detail : sub.message);
    *out = d;
    return 0;
}

bool ps_layer_name_is_temp(const char *name)
{
    size_t len = strlen(name), slen = strlen(PS_LAYER_TEMP_SUFFIX);
    char base[PS_LAYER_NAME_MAX];
    struct ps_layer_desc d;
    size_t blen;

    /* <name>.<8 hex>.tmp */
    if (len < slen + 9 + PS_LAYER_NAME_IMAGE_LEN)
        return false;
    if (strcmp(name + len - slen, PS_LAYER_TEMP_SUFFIX) != 0)
        return false;
    blen = len - slen - 9;
    if (name[blen] != '.' || !ps_parse_hex(name + blen + 1, 8, false, NULL, NULL))
        return false;
    if (blen >= sizeof(base))
        return false;
    memcpy(base, name, blen);
    base[blen] = '\0';
    return ps_layer_name_parse(base, &d, NULL) == 0;
}

int ps_layer_remove_temp_files(const char *dir, unsigned *removed, struct kc_error *err)
{
    DIR *dh = opendir(dir);
    struct dirent *de;
    unsigned n = 0;
    int rc = 0;

    if (removed != NULL)
        *removed = 0;
    if (dh == NULL)
        return kc_error_set(err, KC_EIO, "could not open directory \"%s\": %s", dir,
                            strerror(errno));
    while ((de = readdir(dh)) != NULL) {
        char path[4096];
        if (!ps_layer_name_is_temp(de->d_name))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (unlink(path) != 0 && errno != ENOENT) {
            rc = kc_error_set(err, KC_EIO, "could not remove temporary layer file \"%s\": %s", path,
                              strerror(errno));
            break;
        }
        n++;
    }
    closedir(dh);
    if (removed != NULL)
        *removed = n;
    return rc;
}

/* ---- byte layout ---- */

int ps_layer_corrupt(struct kc_error *err, const char *path, uint64_t off, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        kc_error_set(err, KC_ECORRUPT, "corrupt layer file \"%s\" at offset %" PRIu64, path, off);
        va_start(ap, fmt);
        vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
        va_end(ap);
        kc_error_hint(err, "Remove the file so that the layer is fetched again from object "
                           "storage, or rebuilt from WAL.");
    }
    return KC_ECORRUPT;
}

void ps_layer_header_encode(const struct ps_layer_desc *d, unsigned version,
                            uint8_t out[PS_LAYER_HEADER_SIZE])
{
    memset(out, 0, PS_LAYER_HEADER_SIZE);
    kc_store_u32(out + 0, PS_LAYER_MAGIC);
    kc_store_u16(out + 4, (uint16_t)version);
    kc_store_u16(out + 6, PS_LAYER_HEADER_SIZE);
    out[8] = (uint8_t)d->kind;
    /* 9: flags, 10-11: reserved, all zero */
    memcpy(out + 12, d->tenant.b, KC_ID_LEN);
    memcpy(out + 28, d->timeline.b, KC_ID_LEN);
    memcpy(out + 44, d->key_start.b, PS_KEY_LEN);
    memcpy(out + 62, d->key_end.b, PS_KEY_LEN);
    kc_store_u64(out + 80, d->lsn_start);
    kc_store_u64(out + 88, d->lsn_end);
    kc_store_u32(out + 96, kc_crc32c(0, out, 96));
}

int ps_layer_header_decode(const uint8_t *data, size_t len, const char *path,
                           struct ps_layer_desc *out, uint32_t *header_len, unsigned *out_version,
                           struct kc_error *err)
{
    struct kc_buf b;
    uint32_t magic, crc, want;
    uint16_t version, hlen, reserved;
    uint8_t kind, flags;
    struct ps_layer_desc d;
    struct kc_error sub;

    kc_buf_init(&b, data, len);
    if (!kc_buf_get_u32(&b, &magic) || !kc_buf_get_u16(&b, &version) || !kc_buf_get_u16(&b, &hlen))
        return ps_layer_corrupt(err, path, 0, "The file is too short for a layer header.");
    if (magic != PS_LAYER_MAGIC)
        return ps_layer_corrupt(err, path, 0, "The magic number is 0x%08X, not 0x%08X.", magic,
                                PS_LAYER_MAGIC);
    if (hlen < 12 || hlen > PS_LAYER_HEADER_MAX || hlen > len)
        return ps_layer_corrupt(err, path, 6, "The header length %u is out of range.", hlen);
    crc = kc_load_u32(data + hlen - 4);
    want = kc_crc32c(0, data, (size_t)hlen - 4);
    if (crc != want)
        return ps_layer_corrupt(err, path, (uint64_t)hlen - 4,
                                "The header checksum is 0x%08X but the header's bytes give "
                                "0x%08X.",
                                crc, want);
    if (version < PS_LAYER_VERSION_MIN || version > PS_LAYER_VERSION) {
        kc_error_set(err, KC_EVERSION, "layer file \"%s\" has unsupported format version %u", path,
                     version);
        kc_error_detail(err, "This build reads layer format versions %d to %d.",
                        PS_LAYER_VERSION_MIN, PS_LAYER_VERSION);
        kc_error_hint(err, "Run a pageserver built for format version %u.", version);
        return KC_EVERSION;
    }
    if (hlen != PS_LAYER_HEADER_SIZE)
        return ps_layer_corrupt(err, path, 6, "A version %u header is %d bytes, not %u.", version,
                                PS_LAYER_HEADER_SIZE, hlen);
    memset(&d, 0, sizeof(d));
    if (!kc_buf_get_u8(&b, &kind) || !kc_buf_get_u8(&b, &flags) || !kc_buf_get_u16(&b, &reserved) ||
        !kc_buf_get_bytes(&b, d.tenant.b, KC_ID_LEN) ||
        !kc_buf_get_bytes(&b, d.timeline.b, KC_ID_LEN) ||
        !kc_buf_get_bytes(&b, d.key_start.b, PS_KEY_LEN) ||
        !kc_buf_get_bytes(&b, d.key_end.b, PS_KEY_LEN) || !kc_buf_get_u64(&b, &d.lsn_start) ||
        !kc_buf_get_u64(&b, &d.lsn_end))
        return ps_layer_corrupt(err, path, 8, "The header is truncated.");
    if (flags != 0 || reserved != 0)
        return ps_layer_corrupt(err, path, 9,
                                "Header flags 0x%02X and reserved bits 0x%04X "
                                "must be zero.",
                                flags, reserved);
    d.kind = (enum ps_layer_kind)kind;
    if (ps_layer_desc_check(&d, &sub) != 0)
        return ps_layer_corrupt(err, path, 8, "The header describes no valid layer: %s%s%s",
                                sub.message, sub.detail[0] != '\0' ? ". " : ".", sub.detail);
    *out = d;
    *header_len = hlen;
    *out_version = version;
    return 0;
}

size_t ps_layer_footer_size(unsigned version)
{
    switch (version) {
    case 1: return PS_LAYER_FOOTER_V1;
    case 2: return PS_LAYER_FOOTER_SIZE;
    default: return 0;
    }
}

/*
 * Footer layouts. Both start with the same 36 bytes (offsets and counts,
 * directory CRC); version 2 then has the drop count and CRC. Both end with
 * version u16, reserved u16, magic u32, CRC-32C u32 of everything before.
 */
void ps_layer_footer_encode(const struct ps_layer_footer *f, uint8_t *out)
{
    size_t tail = f->version == 1 ? 36 : 44;

    memset(out, 0, tail + 12);
    kc_store_u64(out + 0, f->index_off);
    kc_store_u64(out + 8, f->dir_off);
    kc_store_u64(out + 16, f->nvalues);
    kc_store_u32(out + 24, f->nblocks);
    kc_store_u32(out + 28, f->max_value_len);
    kc_store_u32(out + 32, f->dir_crc);
    if (f->version != 1) {
        kc_store_u32(out + 36, f->ndrops);
        kc_store_u32(out + 40, f->drops_crc);
    }
    kc_store_u16(out + tail, f->version);
    /* tail + 2: reserved, zero */
    kc_store_u32(out + tail + 4, PS_LAYER_FOOTER_MAGIC);
    kc_store_u32(out + tail + 8, kc_crc32c(0, out, tail + 8));
}

int ps_layer_footer_decode(const uint8_t *data, unsigned version, const char *path, uint64_t off,
                           struct ps_layer_footer *out, struct kc_error *err)
{
    size_t size = ps_layer_footer_size(version), tail = size - 12;
    struct kc_buf b;
    struct ps_layer_footer f;
    uint16_t fversion, reserved;
    uint32_t magic, crc, want;

    if (size == 0)
        return ps_layer_corrupt(err, path, off, "There is no footer layout for version %u.",
                                version);
    want = kc_crc32c(0, data, tail + 8);
    memset(&f, 0, sizeof(f));
    kc_buf_init(&b, data, size);
    if (!kc_buf_get_u64(&b, &f.index_off) || !kc_buf_get_u64(&b, &f.dir_off) ||
        !kc_buf_get_u64(&b, &f.nvalues) || !kc_buf_get_u32(&b, &f.nblocks) ||
        !kc_buf_get_u32(&b, &f.max_value_len) || !kc_buf_get_u32(&b, &f.dir_crc) ||
        (version >= 2 && (!kc_buf_get_u32(&b, &f.ndrops) || !kc_buf_get_u32(&b, &f.drops_crc))) ||
        !kc_buf_get_u16(&b, &fversion) || !kc_buf_get_u16(&b, &reserved) ||
        !kc_buf_get_u32(&b, &magic) || !kc_buf_get_u32(&b, &crc))
        return ps_layer_corrupt(err, path, off, "The footer is truncated.");
    if (magic != PS_LAYER_FOOTER_MAGIC)
        return ps_layer_corrupt(err, path, off + tail + 4,
                                "The footer magic number is 0x%08X, not 0x%08X; the file may "
                                "be truncated.",
                                magic, PS_LAYER_FOOTER_MAGIC);
    if (crc != want)
        return ps_layer_corrupt(err, path, off + tail + 8,
                                "The footer checksum is 0x%08X but the footer's bytes give "
                                "0x%08X.",
                                crc, want);
    if (fversion != version || reserved != 0)
        return ps_layer_corrupt(err, path, off + tail,
                                "The footer says version %u (reserved 0x%04X) but the header "
                                "says version %u.",
                                fversion, reserved, version);
    f.version = fversion;
    *out = f;
    return 0;
}

void ps_layer_dirent_encode(const struct ps_layer_block *b, uint8_t out[PS_LAYER_DIRENT_SIZE])
{
    memcpy(out + 0, b->first_key.b, PS_KEY_LEN);
    kc_store_u64(out + 18, b->first_lsn);
    kc_store_u64(out + 26, b->data_off);
    kc_store_u64(out + 34, b->data_len);
    kc_store_u64(out + 42, b->index_off);
    kc_store_u32(out + 50, b->index_len);
    kc_store_u16(out + 54, b->nentries);
    out[56] = b->flags;
    out[57] = 0; /* reserved */
    kc_store_u32(out + 58, b->crc);
}

void ps_layer_dirent_decode(const uint8_t in[PS_LAYER_DIRENT_SIZE], struct ps_layer_block *b)
{
    memcpy(b->first_key.b, in + 0, PS_KEY_LEN);
    b->first_lsn = kc_load_u64(in + 18);
    b->data_off = kc_load_u64(in + 26);
    b->data_len = kc_load_u64(in + 34);
    b->index_off = kc_load_u64(in + 42);
    b->index_len = kc_load_u32(in + 50);
    b->nentries = kc_load_u16(in + 54);
    /* The reserved byte 57 is folded into flags so that the reader rejects it when set. */
    b->flags = (uint8_t)(in[56] | (in[57] != 0 ? 0x80 : 0));
    b->crc = kc_load_u32(in + 58);
}

void ps_layer_entry_encode(const struct ps_layer_entry *e, uint8_t out[PS_LAYER_ENTRY_SIZE])
{
    uint8_t flags = 0;

    if (e->will_init)
        flags |= PS_LAYER_ENTRY_WILL_INIT;
    if (e->compressed)
        flags |= PS_LAYER_ENTRY_ZSTD;
    memcpy(out + 0, e->key.b, PS_KEY_LEN);
    kc_store_u64(out + 18, e->lsn);
    kc_store_u32(out + 26, e->stored_len);
    kc_store_u32(out + 30, e->len);
    out[34] = (uint8_t)e->kind;
    out[35] = flags;
    kc_store_u32(out + 36, e->crc);
}

int ps_layer_entry_decode(struct kc_buf *b, const char *path, uint64_t off,
                          struct ps_layer_entry *e, struct kc_error *err)
{
    uint8_t kind, flags;

    memset(e, 0, sizeof(*e));
    if (!kc_buf_get_bytes(b, e->key.b, PS_KEY_LEN) || !kc_buf_get_u64(b, &e->lsn) ||
        !kc_buf_get_u32(b, &e->stored_len) || !kc_buf_get_u32(b, &e->len) ||
        !kc_buf_get_u8(b, &kind) || !kc_buf_get_u8(b, &flags) || !kc_buf_get_u32(b, &e->crc))
        return ps_layer_corrupt(err, path, off, "The index entry is truncated.");
    if (!ps_value_kind_valid(kind))
        return ps_layer_corrupt(err, path, off, "The index entry has unknown value kind %u.", kind);
    if ((flags & ~(PS_LAYER_ENTRY_WILL_INIT | PS_LAYER_ENTRY_ZSTD)) != 0)
        return ps_layer_corrupt(err, path, off, "The index entry has unknown flags 0x%02X.", flags);
    e->kind = (enum ps_value_kind)kind;
    e->will_init = (flags & PS_LAYER_ENTRY_WILL_INIT) != 0;
    e->compressed = (flags & PS_LAYER_ENTRY_ZSTD) != 0;
    if (e->kind == PS_VALUE_IMAGE && !e->will_init)
        return ps_layer_corrupt(err, path, off, "The index entry is an image without will_init.");
    if (e->len > PS_VALUE_MAX_LEN)
        return ps_layer_corrupt(err, path, off, "The value length %u exceeds the limit %u.", e->len,
                                PS_VALUE_MAX_LEN);
    if (e->compressed ? (e->stored_len == 0 || e->stored_len >= e->len) : e->stored_len != e->len)
        return ps_layer_corrupt(err, path, off,
                                "The index entry stores %u bytes for a %s value of %u bytes.",
                                e->stored_len, e->compressed ? "compressed" : "plain", e->len);
    return 0;
}

void ps_layer_drop_encode(const struct ps_drop *d, uint8_t out[PS_LAYER_DROP_SIZE])
{
    memcpy(out + 0, d->start.b, PS_KEY_LEN);
    memcpy(out + 18, d->end.b, PS_KEY_LEN);
    kc_store_u64(out + 36, d->lsn);
}

void ps_layer_drop_decode(const uint8_t in[PS_LAYER_DROP_SIZE], struct ps_drop *d)
{
    memcpy(d->start.b, in + 0, PS_KEY_LEN);
    memcpy(d->end.b, in + 18, PS_KEY_LEN);
    d->lsn = kc_load_u64(in + 36);
}

int ps_layer_drop_check(const struct ps_layer_desc *d, const struct ps_drop *drop,
                        struct kc_error *err)
{
    char a[PS_KEY_STRLEN], b[PS_KEY_STRLEN], l[KC_LSN_STRLEN];

    if (d->kind != PS_LAYER_DELTA)
        return kc_error_set(err, KC_EINVAL, "an image layer cannot hold range drops");
    if (ps_key_cmp(&drop->start, &drop->end) >= 0) {
        kc_error_set(err, KC_EINVAL, "empty key range to drop");
        kc_error_detail(err, "The start key %s is not below the end key %s.",
                        ps_key_format(&drop->start, a), ps_key_format(&drop->end, b));
        return KC_EINVAL;
    }
    if (ps_key_cmp(&drop->start, &d->key_start) < 0 || ps_key_cmp(&drop->end, &d->key_end) > 0) {
        kc_error_set(err, KC_EINVAL, "drop of keys %s to %s is outside the layer",
                     ps_key_format(&drop->start, a), ps_key_format(&drop->end, b));
        kc_error_detail(err, "The layer covers keys %s to %s (exclusive).",
                        ps_key_format(&d->key_start, a), ps_key_format(&d->key_end, b));
        return KC_EINVAL;
    }
    if (drop->lsn < d->lsn_start || drop->lsn >= d->lsn_end) {
        kc_error_set(err, KC_EINVAL, "drop at LSN %s is outside the layer",
                     kc_lsn_format(drop->lsn, l));
        kc_error_detail(err, "The layer covers LSNs %016" PRIX64 " to %016" PRIX64 " (exclusive).",
                        d->lsn_start, d->lsn_end);
        return KC_EINVAL;
    }
    return 0;
}
