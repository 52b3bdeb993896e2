#!/bin/sh
# First start of the compose energy DB (postgres image, /docker-entrypoint-initdb.d): aggregat's
# tables, owned by the admin, and its two least-privilege users (`aggregat env check --access`):
#   aggregat_sync     reads the measured load, writes nothing        ([energy] sync_db)
#   aggregat_publish  SELECT, INSERT, DELETE on the forecast table   (energy_db)
# The tables are aggregat's default schema (aggregat/energy/schema.py); a production energy DB
# has its own load table: map it in [energy] and grant the same rights on it.
set -eu
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" \
     -v sync_pw="$AGGREGAT_PROD_SYNC_DB_PASSWORD" \
     -v publish_pw="$AGGREGAT_PROD_ENERGY_DB_PASSWORD" <<'SQL'
CREATE TABLE IF NOT EXISTS load_measurements (
    target_id varchar(128) NOT NULL,
    time_utc timestamptz NOT NULL,
    value_mw double precision,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (target_id, time_utc)
);
CREATE INDEX IF NOT EXISTS ix_load_measurements_updated_at ON load_measurements (updated_at);
CREATE TABLE IF NOT EXISTS load_forecasts (
    target_id varchar(128) NOT NULL,
    issue_time timestamptz NOT NULL,
    valid_time timestamptz NOT NULL,
    p10_mw double precision,
    p50_mw double precision,
    p90_mw double precision,
    model_version varchar(128) NOT NULL,
    published_at timestamptz NOT NULL,
    PRIMARY KEY (target_id, issue_time, valid_time)
);
CREATE ROLE aggregat_sync LOGIN PASSWORD :'sync_pw';
CREATE ROLE aggregat_publish LOGIN PASSWORD :'publish_pw';
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO aggregat_sync, aggregat_publish;
GRANT SELECT ON load_measurements TO aggregat_sync;
GRANT SELECT, INSERT, DELETE ON load_forecasts TO aggregat_publish;
SQL
