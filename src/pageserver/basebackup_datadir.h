/* SPDX-License-Identifier: Apache-2.0 */
/*
 * basebackup_datadir.h -- a basebackup state reader over a stopped vanilla
 * PostgreSQL 15 data directory.
 *
 * It presents the directory as the pageserver's keys at the LSN of its
 * shutdown checkpoint: the control file image, the checkpoint (redo = the
 * end of the shutdown checkpoint record, as ingest stores it), the database
 * directory, relmapper files, relation sizes and blocks, SLRU segments and
 * pages, and twophase state files (without their CRC, as a PREPARE record
 * carries them). With it, `kelp debug-basebackup` and the tests exercise
 * the basebackup without the rest of the pageserver.
 *
 * The directory is scanned once, at open; files are read on demand. It must
 * not change while the reader is open (the server must be stopped). Not
 * thread-safe.
 */
#ifndef PS_BASEBACKUP_DATADIR_H
#define PS_BASEBACKUP_DATADIR_H

#include <stdbool.h>

#include "common/error.h"
#include "common/lsn.h"
#include "pageserver/basebackup.h"

struct ps_bb_datadir;

/* What the scan found. */
struct ps_bb_datadir_info {
    bool has_control;      /* global/pg_control exists and is valid */
    kc_lsn checkpoint_lsn; /* where the shutdown checkpoint record starts */
    kc_lsn end_lsn;        /* where it ends: the end of WAL of a stopped cluster */
    uint32_t seg_size;     /* WAL segment size */
    uint64_t system_id;    /* the cluster's system identifier */
    uint32_t databases;    /* directories under base/ */
    uint32_t rel_forks;    /* relation forks found (shared catalogs included) */
};

/*
 * ps_bb_datadir_open -- scan the data directory at dir. Fails when a
 * postmaster.pid shows a server may be running, or when pg_control is valid
 * but does not say "shut down" (a crashed or running cluster). A missing or
 * corrupt pg_control is not an error here: the reader then has no control
 * file (or returns the corrupt image) and the basebackup reports it. The
 * caller frees the reader with ps_bb_datadir_close().
 */
int ps_bb_datadir_open(const char *dir, struct ps_bb_datadir **out,
                       struct kc_error *err) KC_MUSTCHECK;
void ps_bb_datadir_close(struct ps_bb_datadir *d);

void ps_bb_datadir_info(const struct ps_bb_datadir *d, struct ps_bb_datadir_info *out);

/* The state reader over d (valid while d is open), with the page callback. */
void ps_bb_datadir_reader(struct ps_bb_datadir *d, struct ps_bb_reader *out);

#endif
