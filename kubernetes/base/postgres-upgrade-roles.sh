#!/bin/sh
# One-time upgrade of a tenant whose PostgreSQL was initialised before postgres-init.sh, when
# POSTGRES_USER=finance made the app's role the bootstrap superuser that owns everything. Not
# mounted anywhere: run it in the postgres container once the tenant's Secret has its
# POSTGRES_SUPERUSER_PASSWORD and BACKUP_PASSWORD and the current manifests are applied:
#
#   kubectl -n finance-acme exec -i postgres-0 -c postgres -- sh -s < kubernetes/base/postgres-upgrade-roles.sh
#
# PostgreSQL 16 and later never take SUPERUSER away from the bootstrap role, and REASSIGN OWNED
# cannot move that role's objects. So the bootstrap role is renamed to the superuser's name
# (postgres) and given the superuser's password; postgres-init.sh creates the app's role anew
# (finance, the app's password, owner of its database) and the backup role; every object of
# schema public is handed to the new app role one by one; and the sessions still open as the old
# role in the app's database are ended, so the app reconnects as the new one. Run again, or on a
# tenant initialised by postgres-init.sh, it renames nothing and the rest changes nothing.
#
# Takes the container's settings: POSTGRES_USER (default postgres), POSTGRES_PASSWORD[_FILE],
# APP_USER, APP_DB, APP_PASSWORD[_FILE] and what postgres-init.sh (INIT_SCRIPT) reads.
set -eu

app_user=${APP_USER:-finance}
app_db=${APP_DB:-finance}
superuser=${POSTGRES_USER:-postgres}
helper=${superuser}_upgrade
init_script=${INIT_SCRIPT:-/docker-entrypoint-initdb.d/postgres-init.sh}

# The value of NAME, or the contents of the file named by NAME_FILE.
read_secret() {
  eval "value=\${$1:-} file=\${$1_FILE:-}"
  if [ -n "$file" ]; then cat "$file"; else printf '%s' "$value"; fi
}
superuser_password=$(read_secret POSTGRES_PASSWORD)
app_password=$(read_secret APP_PASSWORD)
if [ -z "$superuser_password" ] || [ -z "$app_password" ]; then
  echo "upgrade: POSTGRES_PASSWORD[_FILE] and APP_PASSWORD[_FILE] are required" >&2
  exit 2
fi

# psql as USER with PASSWORD (used only where the server asks for one), SQL from stdin; the
# password psql needs in the SQL comes as UPGRADE_PASSWORD, for \getenv.
as() {
  user=$1 password=$2
  shift 2
  PGPASSWORD=$password UPGRADE_PASSWORD=$superuser_password \
    psql --no-psqlrc --quiet --set=ON_ERROR_STOP=1 --set=VERBOSITY=terse --username="$user" "$@"
}

legacy=$(as "$app_user" "$app_password" --dbname=postgres --tuples-only --no-align \
  --command="SELECT rolsuper FROM pg_roles WHERE rolname = current_user" 2>/dev/null || true)
if [ "$legacy" = t ]; then
  # A role cannot rename itself: a helper superuser does it, and is dropped right after.
  as "$app_user" "$app_password" --dbname=postgres --set=helper="$helper" <<'SQL'
SET log_statement = 'none';
SET log_min_error_statement = 'panic';
SET client_min_messages = 'warning';
\getenv password UPGRADE_PASSWORD
DROP ROLE IF EXISTS :"helper";
CREATE ROLE :"helper" WITH LOGIN SUPERUSER PASSWORD :'password';
SQL
  as "$helper" "$superuser_password" --dbname=postgres --set=app_user="$app_user" --set=superuser="$superuser" <<'SQL'
SET log_statement = 'none';
SET log_min_error_statement = 'panic';
\getenv password UPGRADE_PASSWORD
ALTER ROLE :"app_user" RENAME TO :"superuser";
ALTER ROLE :"superuser" WITH PASSWORD :'password';
SQL
  echo "upgrade: the bootstrap superuser $app_user is now $superuser"
fi
as "$superuser" "$superuser_password" --dbname=postgres --set=helper="$helper" <<'SQL'
SET client_min_messages = 'warning';
DROP ROLE IF EXISTS :"helper";
SQL

POSTGRES_USER=$superuser PGPASSWORD=$superuser_password sh "$init_script"
echo "upgrade: $app_user owns the database $app_db; no other role may connect to it but the backup role"

as "$superuser" "$superuser_password" --dbname="$app_db" --set=app_user="$app_user" --set=superuser="$superuser" <<'SQL'
SELECT oid AS app_oid FROM pg_roles WHERE rolname = :'app_user' \gset
-- Tables, views and foreign tables: their indexes, row types and identity sequences come along.
SELECT format('ALTER %s %s OWNER TO %I',
              CASE relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                           WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
              oid::regclass, :'app_user')
  FROM pg_class
 WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p', 'v', 'm', 'f') AND relowner <> :app_oid
\gexec
-- Then what is left: sequences of their own, functions and procedures, types of their own.
SELECT format('ALTER SEQUENCE %s OWNER TO %I', oid::regclass, :'app_user')
  FROM pg_class
 WHERE relnamespace = 'public'::regnamespace AND relkind = 'S' AND relowner <> :app_oid
\gexec
SELECT format('ALTER ROUTINE %s OWNER TO %I', oid::regprocedure, :'app_user')
  FROM pg_proc
 WHERE pronamespace = 'public'::regnamespace AND prokind IN ('f', 'p') AND proowner <> :app_oid
\gexec
SELECT format('ALTER %s %s OWNER TO %I', CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
              t.oid::regtype, :'app_user')
  FROM pg_type t LEFT JOIN pg_class c ON c.oid = t.typrelid
 WHERE t.typnamespace = 'public'::regnamespace AND t.typowner <> :app_oid
   AND (t.typtype IN ('e', 'd', 'r') OR c.relkind = 'c')
\gexec
SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relowner <> :app_oid)
     + (SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND proowner <> :app_oid)
     + (SELECT count(*) FROM pg_type WHERE typnamespace = 'public'::regnamespace AND typowner <> :app_oid)
       > 0 AS left_over \gset
\if :left_over
DO $$ BEGIN RAISE EXCEPTION 'objects of schema public are still owned by another role than the app''s'; END $$;
\endif
-- The app's connections opened as the old role, a superuser still.
SELECT count(pg_terminate_backend(pid)) AS ended
  FROM pg_stat_activity
 WHERE datname = current_database() AND usename = :'superuser' AND pid <> pg_backend_pid() \gset
\echo 'upgrade: every object of schema public belongs to' :app_user '- sessions of' :superuser 'ended:' :ended
SQL
