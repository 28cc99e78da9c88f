/*-------------------------------------------------------------------------
 *
 * walredo.h
 *	  The WAL-redo helper mode of the kelp extension (see walredo.c and
 *	  docs/walredo.md).
 *
 * SPDX-License-Identifier: Apache-2.0
 *
 *-------------------------------------------------------------------------
 */
#ifndef KELP_WALREDO_H
#define KELP_WALREDO_H

/* Environment variable that turns a single-user postgres into a helper. */
#define KELP_WALREDO_ENV "KELP_WALREDO"

extern void kelp_walredo_init(void);

#endif							/* KELP_WALREDO_H */
