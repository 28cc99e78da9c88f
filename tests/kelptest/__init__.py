"""Helpers for Kelp's integration tests: paths, the unprivileged OS user,
free ports and throwaway PostgreSQL clusters run as that user."""
