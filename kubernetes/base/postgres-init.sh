#!/bin/sh
# The tenant's roles and database, created on a new PostgreSQL cluster: the postgres image runs
# this from /docker-entrypoint-initdb.d on first initialisation, as its bootstrap superuser
# (POSTGRES_USER, default postgres) through the local socket. Running it again creates what is
# missing and resets the attributes and passwords of what exists.
#
#   APP_USER (finance)             the app's role: LOGIN and nothing else (no superuser, no
#   APP_PASSWORD or _FILE          CREATEDB, CREATEROLE, REPLICATION nor BYPASSRLS). It owns
#   APP_DB (finance)               APP_DB and its schema public, so it runs the migrations.
#   BACKUP_USER (finance_backup)   the backup job's role: LOGIN, CONNECT on APP_DB and membership
#   BACKUP_PASSWORD or _FILE       of pg_read_all_data, nothing else. Not created without a password.
#
# No other role may connect to APP_DB. The passwords reach psql through its environment and the
# SQL as psql variables (:'name', quoted by psql); they are never printed, never on a command
# line, and kept out of the server log.
set -eu

# Export NAME with its value, or with the contents of the file named by NAME_FILE.
load_secret() {
  eval "value=\${$1:-} file=\${$1_FILE:-}"
  if [ -n "$file" ]; then
    if [ -n "$value" ]; then
      echo "postgres-init.sh: both $1 and $1_FILE are set" >&2
      exit 2
    fi
    value=$(cat "$file")
  fi
  export "$1=$value"
}

load_secret APP_PASSWORD
load_secret BACKUP_PASSWORD
if [ -z "$APP_PASSWORD" ]; then
  echo "postgres-init.sh: APP_PASSWORD or APP_PASSWORD_FILE is required" >&2
  exit 2
fi
with_backup=off
if [ -n "$BACKUP_PASSWORD" ]; then with_backup=on; fi

psql --no-psqlrc --quiet --set=ON_ERROR_STOP=1 --username="${POSTGRES_USER:-postgres}" --dbname=postgres \
  --set=app_user="${APP_USER:-finance}" --set=app_db="${APP_DB:-finance}" \
  --set=backup_user="${BACKUP_USER:-finance_backup}" --set=with_backup="$with_backup" <<'SQL'
\set VERBOSITY terse
-- Statements carry passwords: never into the server log, even on an error.
SET log_statement = 'none';
SET log_min_error_statement = 'panic';
SET client_min_messages = 'warning';
\getenv app_password APP_PASSWORD
\getenv backup_password BACKUP_PASSWORD

-- What both roles are: able to log in, and nothing else.
\set no_powers 'LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS'

SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user') AS create_app_user \gset
\if :create_app_user
CREATE ROLE :"app_user";
\endif
ALTER ROLE :"app_user" WITH :no_powers PASSWORD :'app_password';

SELECT NOT EXISTS (SELECT FROM pg_database WHERE datname = :'app_db') AS create_db \gset
\if :create_db
CREATE DATABASE :"app_db" OWNER :"app_user";
\else
ALTER DATABASE :"app_db" OWNER TO :"app_user";
\endif
REVOKE ALL ON DATABASE :"app_db" FROM PUBLIC;

\if :with_backup
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'backup_user') AS create_backup_user \gset
\if :create_backup_user
CREATE ROLE :"backup_user";
\endif
ALTER ROLE :"backup_user" WITH :no_powers PASSWORD :'backup_password';
GRANT pg_read_all_data TO :"backup_user";
GRANT CONNECT ON DATABASE :"app_db" TO :"backup_user";
\endif

\connect :"app_db"
-- The migrations create their tables here. (PostgreSQL 15 and later no longer let PUBLIC create
-- in schema public; the REVOKE says so for older servers too.)
ALTER SCHEMA public OWNER TO :"app_user";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
