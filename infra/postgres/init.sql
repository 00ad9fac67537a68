-- Local stack provisioning for airflow-mbt (applied by scripts/stack.sh on every `up`, as the
-- superuser, connected to database "postgres"). Idempotent: safe to run any number of times.
-- Databases: warehouse (features, labels, predictions), mlflow_db (MLflow backend store),
-- airflow_db (Airflow metadata). Each is owned by its own login role (local-only passwords).

SET client_min_messages = warning;

DO $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM (VALUES ('mbt_user', 'mbt_password'),
                                 ('mlflow_user', 'mlflow_password'),
                                 ('airflow_user', 'airflow_password')) AS t(name, pw)
  LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r.name) THEN
      EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L', r.name, r.pw);
    ELSE
      EXECUTE format('ALTER ROLE %I LOGIN PASSWORD %L', r.name, r.pw);
    END IF;
  END LOOP;
END
$$;

SELECT format('CREATE DATABASE %I OWNER %I', d.name, d.owner)
FROM (VALUES ('warehouse', 'mbt_user'), ('mlflow_db', 'mlflow_user'), ('airflow_db', 'airflow_user'))
     AS d(name, owner)
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = d.name)
\gexec

\connect warehouse
SET client_min_messages = warning;
-- Tables belong to mbt_user so the connector (and tests) can manage them without superuser.
SET ROLE mbt_user;

-- Feature + label table (CONTRACTS section 6; seeded with 5,000 rows by infra/postgres/seed.py)
CREATE TABLE IF NOT EXISTS customers (
    customer_id     varchar(20) PRIMARY KEY,
    tenure          integer,
    monthly_charges double precision,
    total_charges   double precision,          -- about 2% missing
    contract_type   varchar(20),               -- month-to-month | one_year | two_year
    churned         integer                    -- 0 or 1
);

-- Scoring table: new customers without labels (seeded with 1,000 rows)
CREATE TABLE IF NOT EXISTS customers_to_score (
    customer_id     varchar(20) PRIMARY KEY,
    tenure          integer,
    monthly_charges double precision,
    total_charges   double precision,
    contract_type   varchar(20)
);

-- Prediction output of the serving pipelines: one partition per (pipeline_name, execution_date =
-- the run's logical date), replaced as a whole by publish (DELETE partition + COPY, one transaction)
CREATE TABLE IF NOT EXISTS churn_predictions (
    customer_id            varchar(20),
    prediction             integer,
    prediction_probability double precision,
    execution_date         timestamp,
    model_run_id           varchar(100),
    serving_run_id         varchar(100),
    pipeline_name          text
);
ALTER TABLE churn_predictions ADD COLUMN IF NOT EXISTS pipeline_name text;
CREATE INDEX IF NOT EXISTS churn_predictions_serving_run_id_idx ON churn_predictions (serving_run_id);
CREATE INDEX IF NOT EXISTS churn_predictions_partition_idx ON churn_predictions (pipeline_name, execution_date);

RESET ROLE;
