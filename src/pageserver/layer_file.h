/* SPDX-License-Identifier: Apache-2.0 */
/*
 * layer_file.h -- the layer file format (versions 1 and 2): what a layer
 * describes, its file name, and the byte layout shared by layer_writer.c and
 * layer_reader.c. docs/pageserver-layer-format.md is the full specification.
 *
 * A layer is an immutable file holding, for one timeline, the values of the
 * keys in [key_start, key_end) over LSNs in [lsn_start, lsn_end):
 *
 *   delta layer   every value written at an LSN in the range, per key, and
 *                 (version 2) every range drop made in the range
 *   image layer   one image per key at a single LSN (lsn_end = lsn_start + 1);
 *                 a key in the range but absent from the file does not exist
 *                 at that LSN
 *
 * The file is, in order (all integers big-endian):
 *
 *   header      100 bytes: magic, version, kind, ids, ranges, CRC-32C
 *   data        the stored bytes of every value, in (key, lsn) order
 *   index       index blocks: up to 1024 fixed 40-byte entries each, one
 *               per value in (key, lsn) order, zstd-compressed when that
 *               helps; each block's CRC-32C is in the directory
 *   directory   one 62-byte entry per index block: first (key, lsn), where
 *               its values and its index bytes are, its CRC-32C
 *   drops       version 2 only: one 44-byte entry per range drop (start
 *               key, end key, LSN) in LSN order; CRC-32C in the footer
 *   footer      at the end (48 bytes in version 1, 56 in version 2): where
 *               the index and directory are, counts, the directory's and
 *               the drops' CRC-32C, magic, version, CRC-32C
 *
 * Writers write version 2; readers read both. A version-1 file is a
 * version-2 file without drops, in the older footer layout.
 *
 * A reader keeps the directory in memory (62 bytes per index block, under
 * half a byte per value), and the drops (they are few), and reads one index
 * block and one value per lookup.
 */
#ifndef PS_LAYER_FILE_H
#define PS_LAYER_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/id.h"
#include "common/lsn.h"
#include "pageserver/key.h"
#include "pageserver/memlayer.h" /* struct ps_drop */
#include "pageserver/value.h"

enum ps_layer_kind {
    PS_LAYER_DELTA = 1, /* values at LSNs in [lsn_start, lsn_end) */
    PS_LAYER_IMAGE = 2  /* one image per key at lsn_start; lsn_end = lsn_start + 1 */
};

/* What a layer covers. The ranges are half-open: [start, end). */
struct ps_layer_desc {
    enum ps_layer_kind kind;
    struct kc_id tenant;     /* tenant the layer belongs to */
    struct kc_id timeline;   /* timeline the layer belongs to */
    struct ps_key key_start; /* first key covered */
    struct ps_key key_end;   /* first key after the range; > key_start */
    kc_lsn lsn_start;        /* first LSN covered; the image LSN of an image layer */
    kc_lsn lsn_end;          /* first LSN after the range; image layers: lsn_start + 1 */
};

/* Fill d as an image layer at lsn (lsn_end = lsn + 1). */
void ps_layer_desc_image(struct ps_layer_desc *d, const struct kc_id *tenant,
                         const struct kc_id *timeline, const struct ps_key *key_start,
                         const struct ps_key *key_end, kc_lsn lsn);
/* Fill d as a delta layer over [lsn_start, lsn_end). */
void ps_layer_desc_delta(struct ps_layer_desc *d, const struct kc_id *tenant,
                         const struct kc_id *timeline, const struct ps_key *key_start,
                         const struct ps_key *key_end, kc_lsn lsn_start, kc_lsn lsn_end);

/*
 * ps_layer_desc_check -- 0 when d is a valid description: a known kind,
 * key_start < key_end, lsn_start < lsn_end, and lsn_end == lsn_start + 1 for
 * an image layer. KC_EINVAL with err naming the problem otherwise.
 */
int ps_layer_desc_check(const struct ps_layer_desc *d, struct kc_error *err) KC_MUSTCHECK;

/* True when (key, lsn) lies inside d's ranges. */
bool ps_layer_desc_contains(const struct ps_layer_desc *d, const struct ps_key *key, kc_lsn lsn);

/*
 * File names. A layer's name encodes its kind and ranges:
 *
 *   delta   <key_start>-<key_end>__<lsn_start>-<lsn_end>     (108 characters)
 *   image   <key_start>-<key_end>__<lsn>                     (91 characters)
 *
 * keys as 36 lower-case hex digits (ps_key_format), LSNs as 16 upper-case
 * hex digits. Only this canonical form parses, so a layer has one name.
 * The writer's temporary file is "<name>.<8 lower-case hex>.tmp".
 */
#define PS_LAYER_NAME_IMAGE_LEN 91
#define PS_LAYER_NAME_DELTA_LEN 108
#define PS_LAYER_NAME_MAX       (PS_LAYER_NAME_DELTA_LEN + 1) /* buffer size, with the NUL */
#define PS_LAYER_TEMP_SUFFIX    ".tmp"

/* Write d's file name into buf and return buf. d must pass ps_layer_desc_check. */
char *ps_layer_name_format(const struct ps_layer_desc *d, char buf[PS_LAYER_NAME_MAX]);

/*
 * ps_layer_name_parse -- parse a file name (no directory part) into out's
 * kind and ranges; tenant and timeline are set to zero (they are not in the
 * name). Accepts only the canonical form above with valid ranges. Returns 0,
 * or KC_EINVAL with err naming the name and what is wrong; *out is left
 * alone on failure.
 */
int ps_layer_name_parse(const char *name, struct ps_layer_desc *out,
                        struct kc_error *err) KC_MUSTCHECK;

/* True when name (no directory part) is a layer writer's temporary file. */
bool ps_layer_name_is_temp(const char *name);

/*
 * ps_layer_remove_temp_files -- delete every layer writer's temporary file in
 * dir (left behind by a crash; see ps_layer_name_is_temp). Call at startup,
 * before any writer runs in dir. Sets *removed (may be NULL) to how many were
 * deleted. Returns 0, or KC_EIO with err filled.
 */
int ps_layer_remove_temp_files(const char *dir, unsigned *removed,
                               struct kc_error *err) KC_MUSTCHECK;

/* ---- Format internals, for layer_writer.c, layer_reader.c and tests. ---- */

#define PS_LAYER_MAGIC        0x4B4C5952u /* "KLYR", header bytes 0-3 */
#define PS_LAYER_FOOTER_MAGIC 0x4B4C5946u /* "KLYF", footer bytes 40-43 */
#define PS_LAYER_VERSION      2           /* what writers write */
#define PS_LAYER_VERSION_MIN  1           /* the oldest version readers read */
#define PS_LAYER_HEADER_SIZE  100         /* versions 1 and 2 */
#define PS_LAYER_HEADER_MAX   4096        /* longest header_len any version may use */
#define PS_LAYER_FOOTER_SIZE  56          /* version 2 (PS_LAYER_VERSION) */
#define PS_LAYER_FOOTER_V1    48          /* version 1 */
#define PS_LAYER_FOOTER_MAX   56          /* the longest footer of any version read */
#define PS_LAYER_DIRENT_SIZE  62          /* one directory entry */
#define PS_LAYER_ENTRY_SIZE   40          /* one index entry */
#define PS_LAYER_DROP_SIZE    44          /* one drop entry (version 2) */

#define PS_LAYER_BLOCK_ENTRIES_DEFAULT 128     /* index entries per block the writer uses */
#define PS_LAYER_BLOCK_MAX_ENTRIES     1024    /* most index entries in a block */
#define PS_LAYER_MAX_BLOCKS            1048576 /* most index blocks in a layer */
#define PS_LAYER_MAX_DROPS             1048576 /* most drops in a layer (version 2) */

/* Flags of an index entry. */
#define PS_LAYER_ENTRY_WILL_INIT 0x01u /* the value needs nothing older */
#define PS_LAYER_ENTRY_ZSTD      0x02u /* the stored bytes are one zstd frame */
/* Flags of a directory entry. */
#define PS_LAYER_BLOCK_ZSTD 0x01u /* the index block is one zstd frame */

/* Everything after the data, as the footer describes it. */
struct ps_layer_footer {
    uint64_t index_off;     /* first byte of the index = end of the data */
    uint64_t dir_off;       /* first byte of the directory = end of the index */
    uint64_t nvalues;       /* index entries in all blocks */
    uint32_t nblocks;       /* index blocks = directory entries */
    uint32_t max_value_len; /* largest value len in the layer */
    uint32_t dir_crc;       /* CRC-32C of the directory */
    uint32_t ndrops;        /* drop entries after the directory (0 in version 1) */
    uint32_t drops_crc;     /* CRC-32C of the drop entries (0 when there are none) */
    uint16_t version;       /* the format version, which fixes the footer's layout */
};

/* One directory entry: an index block and the values it indexes. */
struct ps_layer_block {
    struct ps_key first_key; /* (key, lsn) of the block's first entry */
    kc_lsn first_lsn;
    uint64_t data_off;  /* the block's values are the bytes [data_off, data_off + data_len) */
    uint64_t data_len;  /* sum of its entries' stored_len */
    uint64_t index_off; /* the block itself: [index_off, index_off + index_len) */
    uint32_t index_len; /* bytes stored (compressed or not) */
    uint16_t nentries;  /* 1 .. PS_LAYER_BLOCK_MAX_ENTRIES */
    uint8_t flags;      /* PS_LAYER_BLOCK_* */
    uint32_t crc;       /* CRC-32C of the index_len stored bytes */
};

/* One value as the index describes it (decoded and validated by the reader). */
struct ps_layer_entry {
    struct ps_key key;
    kc_lsn lsn;
    enum ps_value_kind kind;
    bool will_init;      /* the value needs nothing older (always true for images) */
    bool compressed;     /* stored as one zstd frame */
    uint32_t len;        /* bytes of the value */
    uint32_t stored_len; /* bytes in the file: len, or less when compressed */
    uint32_t crc;        /* CRC-32C of the stored bytes */
    uint64_t offset;     /* file offset of the stored bytes (not in the entry: the
                            entries' stored_len add up from the block's data_off) */
};

/*
 * ps_layer_corrupt -- fill err with KC_ECORRUPT: 'corrupt layer file "path"
 * at offset off' with the formatted detail (a sentence) and a hint. Returns
 * KC_ECORRUPT.
 */
int ps_layer_corrupt(struct kc_error *err, const char *path, uint64_t off, const char *fmt, ...)
    KC_PRINTF(4, 5);

/* Encode d as a header of version (1 or 2; checksum included). d must be valid. */
void ps_layer_header_encode(const struct ps_layer_desc *d, unsigned version,
                            uint8_t out[PS_LAYER_HEADER_SIZE]);

/*
 * ps_layer_header_decode -- decode the header at the start of data[0..len)
 * (the first min(file size, PS_LAYER_HEADER_MAX) bytes of the file at path,
 * named in errors). Checks, in order: magic, header length, checksum, then
 * the version (KC_EVERSION: the checksum passed, so it is not a bit flip),
 * then every field. Sets *out, *header_len and *version (PS_LAYER_VERSION_MIN
 * to PS_LAYER_VERSION). Returns 0, KC_ECORRUPT or KC_EVERSION with err filled.
 */
int ps_layer_header_decode(const uint8_t *data, size_t len, const char *path,
                           struct ps_layer_desc *out, uint32_t *header_len, unsigned *version,
                           struct kc_error *err) KC_MUSTCHECK;

/* Bytes of the footer of a version (PS_LAYER_FOOTER_V1 or PS_LAYER_FOOTER_SIZE); 0 if unknown. */
size_t ps_layer_footer_size(unsigned version);

/*
 * ps_layer_footer_encode -- encode f in the layout of f->version (1 or 2),
 * checksum included, into out (ps_layer_footer_size(f->version) bytes). A
 * version-1 footer has no drop fields: f->ndrops and f->drops_crc must be 0.
 */
void ps_layer_footer_encode(const struct ps_layer_footer *f, uint8_t *out);

/*
 * ps_layer_footer_decode -- decode the ps_layer_footer_size(version) bytes at
 * data, read from offset off of the file at path, whose header says version.
 * Checks magic, checksum and that the footer repeats the version; the
 * caller checks the offsets against the file. Returns 0 or KC_ECORRUPT with
 * err filled.
 */
int ps_layer_footer_decode(const uint8_t *data, unsigned version, const char *path, uint64_t off,
                           struct ps_layer_footer *out, struct kc_error *err) KC_MUSTCHECK;

/* Encode / decode one drop entry (start key, end key, LSN; no validation). */
void ps_layer_drop_encode(const struct ps_drop *d, uint8_t out[PS_LAYER_DROP_SIZE]);
void ps_layer_drop_decode(const uint8_t in[PS_LAYER_DROP_SIZE], struct ps_drop *d);

/*
 * ps_layer_drop_check -- 0 when drop may be stored in the layer d: d is a
 * delta layer, drop->start < drop->end, the key range lies inside d's, and
 * drop->lsn inside d's LSN range. KC_EINVAL with err naming the problem
 * otherwise. (Order between drops is the caller's check.)
 */
int ps_layer_drop_check(const struct ps_layer_desc *d, const struct ps_drop *drop,
                        struct kc_error *err) KC_MUSTCHECK;

/* Encode / decode one directory entry (no validation beyond the layout). */
void ps_layer_dirent_encode(const struct ps_layer_block *b, uint8_t out[PS_LAYER_DIRENT_SIZE]);
void ps_layer_dirent_decode(const uint8_t in[PS_LAYER_DIRENT_SIZE], struct ps_layer_block *b);

/* Encode one index entry from its fields (offset is not stored). */
void ps_layer_entry_encode(const struct ps_layer_entry *e, uint8_t out[PS_LAYER_ENTRY_SIZE]);

/*
 * ps_layer_entry_decode -- decode one index entry from b (fills all fields
 * but offset). Rejects an unknown kind or unknown flag bits, and stored
 * lengths that do not fit the compression flag; the caller checks order and
 * ranges. Returns 0, or KC_ECORRUPT naming path and off.
 */
int ps_layer_entry_decode(struct kc_buf *b, const char *path, uint64_t off,
                          struct ps_layer_entry *e, struct kc_error *err) KC_MUSTCHECK;

/* Compare (key a, lsn a) with (key b, lsn b): negative, zero or positive. */
int ps_layer_keylsn_cmp(const struct ps_key *ka, kc_lsn la, const struct ps_key *kb, kc_lsn lb);

#endif
