/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pg_compat_pg.c -- the few backend symbols that PostgreSQL source files we
 * compile in frontend mode reference (see PGSRC_FILES in the Makefile).
 *
 * xactdesc.c's describe functions format timestamps with
 * timestamptz_to_str(); we compile it for ParseCommitRecord() and
 * ParseAbortRecord() and never describe records, but the linker needs the
 * symbol. This one prints the timestamp as microseconds since 2000-01-01.
 */
#include "postgres_fe.h"

#include "datatype/timestamp.h"

const char *timestamptz_to_str(TimestampTz t);

const char *timestamptz_to_str(TimestampTz t)
{
    static char buf[64];

    snprintf(buf, sizeof(buf), "%lld us after 2000-01-01", (long long)t);
    return buf;
}
