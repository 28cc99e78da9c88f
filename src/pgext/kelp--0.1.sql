/* kelp--0.1.sql -- SQL objects of the kelp extension, version 0.1. */
\echo Use "CREATE EXTENSION kelp" to load this file. \quit

CREATE FUNCTION kelp_version() RETURNS text
AS 'MODULE_PATHNAME', 'kelp_version'
LANGUAGE C STRICT PARALLEL SAFE;

COMMENT ON FUNCTION kelp_version() IS
  'version of the loaded kelp library and the PostgreSQL it was built for';
