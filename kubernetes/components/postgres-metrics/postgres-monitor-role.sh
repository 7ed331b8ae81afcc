#!/bin/sh
# The postgres_exporter sidecar's role (components/postgres-metrics): LOGIN with pg_monitor's
# read-only statistics (the exporter's README grants exactly that on PostgreSQL 10 and later) and
# no other power, no password and at most 3 connections. Without a password it cannot log in over
# the network (the image's pg_hba.conf asks every remote peer for one); it logs in only through the
# trusted local socket, from inside the PostgreSQL pod. It may connect to the `postgres` database,
# not to the app's (postgres-init.sh takes CONNECT from PUBLIC there), and it reads no table.
#
# The postgres image runs this from /docker-entrypoint-initdb.d on first initialisation, as its
# bootstrap superuser through the local socket, after postgres-init.sh. Running it again creates
# what is missing and resets the role's attributes (kustomization.yaml says when that is needed).
#
#   MONITOR_USER (finance_monitor)   the role's name
set -eu

psql --no-psqlrc --quiet --set=ON_ERROR_STOP=1 --username="${POSTGRES_USER:-postgres}" --dbname=postgres \
  --set=monitor_user="${MONITOR_USER:-finance_monitor}" <<'SQL'
\set VERBOSITY terse
SET client_min_messages = 'warning';

SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'monitor_user') AS create_monitor_user \gset
\if :create_monitor_user
CREATE ROLE :"monitor_user";
\endif
ALTER ROLE :"monitor_user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD NULL CONNECTION LIMIT 3;
GRANT pg_monitor TO :"monitor_user";
SQL
