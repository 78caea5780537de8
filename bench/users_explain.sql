-- bench/users_explain.sql: EXPLAIN (ANALYZE, BUFFERS) of the statements
-- Warden sends for one `users(first: 50, filter: {search})` (see
-- src/services/admin/users.rs), for W14. bench/run passes:
--   pat        the LIKE pattern: the lowercase prefix, LIKE-escaped, then '%'
--   narrow     NARROW of users.rs (5000)
--   probe_out, page_out   where the plans of the two statements go (JSON)
--   custom_out, generic_out   the probe's custom and generic plans (JSON)
-- The text is Warden's own (as Postgres logs it with
-- log_min_duration_statement = 0), but for the page read by id, whose ids
-- Warden binds as $1..$51 and which is given here as literals. The
-- statements are prepared as sqlx prepares them (once per connection,
-- then reused) and executed six times before the EXPLAIN, so the plan shown
-- is the one a warm connection runs: Postgres may switch a prepared
-- statement to a generic plan after its fifth execution, and a generic
-- plan cannot turn `LIKE $1` into an index range.
\set ON_ERROR_STOP on
PREPARE probe(text, text, int8) AS
  SELECT "users"."id" FROM "users"
  WHERE "email" LIKE $1 ESCAPE E'\\' OR LOWER("username") LIKE $2 ESCAPE E'\\'
  LIMIT $3;
PREPARE walk(text, text, int8) AS
  SELECT "users"."id", "users"."email", "users"."username", "users"."password_hash", "users"."role",
         "users"."created_at", "users"."last_login_at", "users"."email_verified_at",
         "users"."mfa_enabled_at", "users"."disabled_at", "users"."disabled_reason"
  FROM "users"
  WHERE "email" LIKE $1 ESCAPE E'\\' OR LOWER("username") LIKE $2 ESCAPE E'\\'
  ORDER BY "users"."id" ASC LIMIT $3;
SELECT :narrow + 1 AS probe_limit \gset
\o /dev/null
EXECUTE probe(:'pat', :'pat', :probe_limit);
EXECUTE probe(:'pat', :'pat', :probe_limit);
EXECUTE probe(:'pat', :'pat', :probe_limit);
EXECUTE probe(:'pat', :'pat', :probe_limit);
EXECUTE probe(:'pat', :'pat', :probe_limit);
EXECUTE probe(:'pat', :'pat', :probe_limit);
\o :probe_out
EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE probe(:'pat', :'pat', :probe_limit);
-- Both plans of the probe, whichever the warm connection chose: a pool
-- connection that ran other searches before may hold the other one.
SET plan_cache_mode = force_custom_plan;
\o :custom_out
EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE probe(:'pat', :'pat', :probe_limit);
SET plan_cache_mode = force_generic_plan;
\o :generic_out
EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE probe(:'pat', :'pat', :probe_limit);
RESET plan_cache_mode;
\o
-- Which way Warden goes: more than NARROW matches walk the primary key;
-- else the first 51 ids, sorted, are read by id.
SELECT count(*) > :narrow AS walks,
       coalesce(string_agg(quote_literal(id::text), ', ' ORDER BY id) FILTER (WHERE n <= 51), 'NULL') AS ids
FROM (
  SELECT id, row_number() OVER (ORDER BY id) AS n
  FROM (SELECT "users"."id" FROM "users"
        WHERE "users"."email" LIKE :'pat' ESCAPE '\' OR LOWER("users"."username") LIKE :'pat' ESCAPE '\'
        LIMIT :probe_limit) m
) t \gset
\if :walks
\o /dev/null
EXECUTE walk(:'pat', :'pat', 51);
EXECUTE walk(:'pat', :'pat', 51);
EXECUTE walk(:'pat', :'pat', 51);
EXECUTE walk(:'pat', :'pat', 51);
EXECUTE walk(:'pat', :'pat', 51);
EXECUTE walk(:'pat', :'pat', 51);
\o :page_out
EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE walk(:'pat', :'pat', 51);
\else
\o :page_out
EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
  SELECT "users"."id", "users"."email", "users"."username", "users"."password_hash", "users"."role",
         "users"."created_at", "users"."last_login_at", "users"."email_verified_at",
         "users"."mfa_enabled_at", "users"."disabled_at", "users"."disabled_reason"
  FROM "users" WHERE "users"."id" IN (:ids) ORDER BY "users"."id" ASC;
\endif
\o
