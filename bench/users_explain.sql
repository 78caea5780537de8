-- bench/users_explain.sql: EXPLAIN (ANALYZE, BUFFERS) of the statements
-- Warden sends for one `users(first: 50, filter: {search})` (see
-- src/services/admin/users.rs `probe`), for W14. bench/run passes:
--   pat        the LIKE pattern: the lowercase prefix, LIKE-escaped, then '%'
--   narrow     NARROW of users.rs (5000)
--   email_out, username_out   the plans of the two counts (JSON)
--   ids_email_out, ids_username_out   the plans of the two id lists (JSON;
--              empty when the search walks)
--   page_out   the plan of the page: the walk by id, or the read by ids
-- Warden runs a search in one transaction with plan_cache_mode =
-- force_custom_plan, so every statement is planned for its values, as the
-- literal statements here are; the counts and the id lists run with
-- sequential and bitmap scans off, as there. The text is Warden's own but
-- for the values, bound there as $1.. (the page's ids too).
\set ON_ERROR_STOP on
SELECT :narrow + 1 AS probe_limit \gset
BEGIN;
SET LOCAL plan_cache_mode = force_custom_plan;
SET LOCAL enable_seqscan = off;
SET LOCAL enable_bitmapscan = off;
\o :email_out
EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
  SELECT COUNT(*) AS "n" FROM (SELECT 1 FROM "users" WHERE "users"."email" LIKE :'pat' ESCAPE E'\\'
  LIMIT :probe_limit) AS "m";
\o :username_out
EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
  SELECT COUNT(*) AS "n" FROM (SELECT 1 FROM "users" WHERE LOWER("users"."username") LIKE :'pat' ESCAPE E'\\'
  LIMIT :probe_limit) AS "m";
\o
-- Which way Warden goes: either prefix with more than NARROW matches walks
-- the primary key; else each index gives the ids of all its matches
-- (unordered), and the first 51 of both (sorted here, once each) are read
-- by id.
SELECT (SELECT count(*) FROM (SELECT 1 FROM users WHERE email LIKE :'pat' ESCAPE E'\\' LIMIT :probe_limit) e) > :narrow
    OR (SELECT count(*) FROM (SELECT 1 FROM users WHERE lower(username) LIKE :'pat' ESCAPE E'\\' LIMIT :probe_limit) u) > :narrow
    AS walks \gset
\if :walks
SET LOCAL enable_seqscan = on;
SET LOCAL enable_bitmapscan = on;
\o :page_out
EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
  SELECT "users"."id", "users"."email", "users"."username", "users"."password_hash", "users"."role",
         "users"."created_at", "users"."last_login_at", "users"."email_verified_at",
         "users"."mfa_enabled_at", "users"."disabled_at", "users"."disabled_reason"
  FROM "users"
  WHERE "users"."email" LIKE :'pat' ESCAPE E'\\' OR LOWER("users"."username") LIKE :'pat' ESCAPE E'\\'
  ORDER BY "users"."id" ASC LIMIT 51;
\else
\o :ids_email_out
EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
  SELECT "users"."id" FROM "users" WHERE "users"."email" LIKE :'pat' ESCAPE E'\\' LIMIT :probe_limit;
\o :ids_username_out
EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
  SELECT "users"."id" FROM "users" WHERE LOWER("users"."username") LIKE :'pat' ESCAPE E'\\' LIMIT :probe_limit;
\o
SELECT coalesce(string_agg(quote_literal(id::text), ', ' ORDER BY id), 'NULL') AS ids FROM (
  SELECT id FROM (
    (SELECT id FROM users WHERE email LIKE :'pat' ESCAPE E'\\' ORDER BY id LIMIT 51)
    UNION
    (SELECT id FROM users WHERE lower(username) LIKE :'pat' ESCAPE E'\\' ORDER BY id LIMIT 51)
  ) both_ ORDER BY id LIMIT 51
) t \gset
SET LOCAL enable_seqscan = on;
SET LOCAL enable_bitmapscan = on;
\o :page_out
EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
  SELECT "users"."id", "users"."email", "users"."username", "users"."password_hash", "users"."role",
         "users"."created_at", "users"."last_login_at", "users"."email_verified_at",
         "users"."mfa_enabled_at", "users"."disabled_at", "users"."disabled_reason"
  FROM "users" WHERE "users"."id" IN (:ids) ORDER BY "users"."id" ASC;
\endif
\o
ROLLBACK;
