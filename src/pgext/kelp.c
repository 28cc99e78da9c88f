/*-------------------------------------------------------------------------
 *
 * kelp.c
 *	  Entry point of the kelp extension: the compute side of Kelp.
 *
 * The library must be loaded with shared_preload_libraries = 'kelp': the
 * storage manager, caches and shared memory it will own can only be set up
 * while the postmaster starts. Loading it any other way is refused with a
 * clear error. For now it registers its GUC namespace and exposes
 * kelp.kelp_version(); see src/pgext/README.md for what comes next.
 *
 * SPDX-License-Identifier: Apache-2.0
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "walredo.h"

PG_MODULE_MAGIC;

#define KELP_EXTENSION_VERSION "0.1"

void		_PG_init(void);

PG_FUNCTION_INFO_V1(kelp_version);

/*
 * _PG_init -- called once when the library is loaded.
 *
 * Refuses to be loaded outside shared_preload_libraries, because later
 * versions install a storage manager and shared memory that only exist when
 * set up in the postmaster.
 */
void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("kelp must be loaded via shared_preload_libraries"),
				 errhint("Add 'kelp' to shared_preload_libraries in postgresql.conf and restart the server.")));

	MarkGUCPrefixReserved("kelp");

	kelp_walredo_init();

	ereport(LOG,
			(errmsg("kelp extension %s loaded", KELP_EXTENSION_VERSION)));
}

/*
 * kelp_version() -- the version of this library and of the server it was
 * compiled against, e.g. "kelp 0.1 (PostgreSQL 15.18)".
 */
Datum
kelp_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text("kelp " KELP_EXTENSION_VERSION
									 " (PostgreSQL " PG_VERSION ")"));
}
