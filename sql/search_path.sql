--
-- search_path: every statement kafka_fdw runs for someone (its event
-- trigger, IMPORT FOREIGN SCHEMA, SPI in cdc_create, cdc_drop and
-- cdc_status, the CDC workers) names its operators, functions and types by
-- schema, so that objects a role creates in public cannot stand in for the
-- built-in ones and run with the caller's rights.
--
-- A role with CREATE on public fills it with look-alikes that log every
-- call; a superuser then uses every feature with search_path = public,
-- pg_catalog (also the database's default, which background workers
-- start with).  Nothing may have been called.
--
\getenv brokers KAFKA_BROKERS
\set VERBOSITY default
\set safe 'SET search_path = pg_catalog'
\set hostile 'SET search_path = public, pg_catalog'

-- the test's own statements run with a safe search_path, or spell out
-- pg_catalog where they run with the hostile one
:safe;

CREATE ROLE regress_sp_attacker;
GRANT CREATE ON SCHEMA public TO regress_sp_attacker;
CREATE TABLE public.sp_calls (what text, by_role name);
GRANT INSERT ON public.sp_calls TO PUBLIC;

--
-- The attacker's objects: each logs its call, then does what the built-in
-- one would.  Exact argument types beat the built-in operator even when
-- pg_catalog comes first: = (oid, regclass) is found before oideq.
--
SET ROLE regress_sp_attacker;
CREATE FUNCTION public.sp_called(what text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
  INSERT INTO public.sp_calls VALUES (what, current_user);
  RETURN true;
END
$$;

DO $$
DECLARE
  op record;
  n int := 0;
BEGIN
  FOR op IN SELECT * FROM (VALUES
      ('=', 'oid', 'regclass', 'bool'), ('=', 'oid', 'oid', 'bool'),
      ('=', 'text', 'text', 'bool'), ('=', 'name', 'name', 'bool'),
      ('=', 'name', 'text', 'bool'), ('=', 'regrole', 'regrole', 'bool'),
      ('<>', 'name', 'name', 'bool'), ('<>', 'text', 'text', 'bool'),
      ('<', 'oid', 'oid', 'bool'), ('<', 'text', 'text', 'bool'),
      ('>', 'text', 'text', 'bool'), ('||', 'text', 'text', 'text'),
      ('->>', 'jsonb', 'text', 'text'), ('->', 'jsonb', 'text', 'jsonb'))
      AS v(name, l, r, res)
  LOOP
    n := n + 1;
    EXECUTE format('CREATE FUNCTION public.sp_op%s(pg_catalog.%I, pg_catalog.%I) '
                   'RETURNS pg_catalog.%I LANGUAGE plpgsql '
                   'SET search_path = pg_catalog AS %L',
                   n, op.l, op.r, op.res,
                   format('BEGIN PERFORM public.sp_called(%L); '
                          'RETURN $1 OPERATOR(pg_catalog.%s) $2; END',
                          format('%s(%s,%s)', op.name, op.l, op.r), op.name));
    EXECUTE format('CREATE OPERATOR public.%s (LEFTARG = pg_catalog.%I, '
                   'RIGHTARG = pg_catalog.%I, FUNCTION = public.sp_op%s)',
                   op.name, op.l, op.r, n);
  END LOOP;
END
$$;

-- functions that built-in ones are often called by
CREATE FUNCTION public.format(f text, a name, b name) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$BEGIN PERFORM public.sp_called('format(text,name,name)'); RETURN format(f, a, b); END$$;
CREATE FUNCTION public.format(f text, a text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$BEGIN PERFORM public.sp_called('format(text,text)'); RETURN format(f, a); END$$;
CREATE FUNCTION public.lower(a text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$BEGIN PERFORM public.sp_called('lower(text)'); RETURN lower(a); END$$;
CREATE FUNCTION public.to_regclass(a text) RETURNS regclass
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$BEGIN PERFORM public.sp_called('to_regclass(text)'); RETURN to_regclass(a); END$$;
CREATE FUNCTION public.now() RETURNS timestamptz
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$BEGIN PERFORM public.sp_called('now()'); RETURN now(); END$$;
CREATE FUNCTION public.jsonb_build_object(VARIADIC a text[]) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$BEGIN PERFORM public.sp_called('jsonb_build_object(text[])'); RETURN jsonb_build_object(VARIADIC a); END$$;
CREATE FUNCTION public.quote_ident(a text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$BEGIN PERFORM public.sp_called('quote_ident(text)'); RETURN quote_ident(a); END$$;
CREATE FUNCTION public.set_config(a text, b text, c boolean) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$BEGIN PERFORM public.sp_called('set_config(text,text,boolean)'); RETURN set_config(a, b, c); END$$;

-- types: a cast to "text" or "oid", or a column of that type, finds these
-- domains first, and their CHECK runs on every value
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['text', 'oid', 'jsonb', 'json', 'bytea',
                           'timestamptz', 'regclass', 'regrole', 'name']
  LOOP
    EXECUTE format('CREATE DOMAIN public.%I AS pg_catalog.%I CHECK (public.sp_called(%L))',
                   t, t, 'domain ' || t);
  END LOOP;
END
$$;
RESET ROLE;

-- the look-alikes work: a careless statement calls them
:hostile;
SELECT 1 FROM pg_class WHERE oid = 'pg_class'::regclass;
SELECT 'x'::text;
:safe;
SELECT what, by_role FROM public.sp_calls GROUP BY 1, 2 ORDER BY 1, 2;
TRUNCATE public.sp_calls;

-- background workers start with the database's search_path
SELECT format('ALTER DATABASE %I SET search_path = public, pg_catalog',
              current_database()) \gexec

--
-- A superuser at work, with the attacker's objects first in search_path
--
:hostile;

-- the event trigger fires for every ALTER TABLE, not only kafka_fdw's
CREATE TABLE sp_plain (a int);
ALTER TABLE sp_plain ADD COLUMN b int;

CREATE SERVER sp_srv FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER sp_srv;

CREATE FOREIGN TABLE sp_msgs (
  p int OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'),
  k pg_catalog.text OPTIONS (key 'true'),
  ts pg_catalog.timestamptz OPTIONS (timestamp 'true'),
  v pg_catalog.text
) SERVER sp_srv OPTIONS (topic 'sp_msgs', format 'raw');
ALTER FOREIGN TABLE sp_msgs OPTIONS (ADD batch_size '10');

-- INSERT, SELECT with pushdown, watermarks
INSERT INTO sp_msgs (p, k, v) VALUES (0, 'k1', 'one'), (1, 'k2', 'two'), (1, 'k3', 'three');
EXPLAIN (COSTS OFF)
  SELECT p, o, k, v FROM sp_msgs WHERE p = 1 AND o >= 1 AND ts >= '2000-01-01';
SELECT p, o, k, v FROM sp_msgs WHERE p = 1 AND o >= 1 AND ts >= '2000-01-01' ORDER BY o;
SELECT p, o, v FROM sp_msgs WHERE k OPERATOR(pg_catalog.=) 'k2';
SELECT * FROM kafka_fdw.watermarks('sp_msgs') ORDER BY 1;

-- IMPORT FOREIGN SCHEMA: the tables it makes have the built-in types
CREATE SCHEMA sp_imported;
IMPORT FOREIGN SCHEMA anything LIMIT TO (sp_msgs)
  FROM SERVER sp_srv INTO sp_imported;
SELECT "partition", "offset", key, headers, value FROM sp_imported.sp_msgs
  WHERE "partition" = 0;
:safe;
SELECT c.relnamespace::regnamespace AS schema, a.attname, a.atttypid::regtype AS type
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE c.relname = 'sp_msgs' AND c.relnamespace IN ('sp_imported'::regnamespace)
   AND a.attnum > 0
 ORDER BY 1, a.attnum;
:hostile;

--
-- Change data capture, by a role with REPLICATION that owns the table
--
CREATE ROLE regress_sp_owner REPLICATION;
GRANT USAGE ON FOREIGN SERVER sp_srv TO regress_sp_owner;
CREATE TABLE sp_items (id int PRIMARY KEY, note pg_catalog.text);
ALTER TABLE sp_items OWNER TO regress_sp_owner;
INSERT INTO sp_items VALUES (1, 'before'), (-1, 'filtered');
CREATE PUBLICATION sp_pub FOR TABLE sp_items WHERE (id OPERATOR(pg_catalog.>) 0);

SET ROLE regress_sp_owner;
SELECT kafka_fdw.cdc_create('sp', 'sp_srv', 'sp_pub', topic_prefix => 'sp');
RESET ROLE;

-- what the stream sent, read back
CREATE FOREIGN TABLE sp_cdc (
  o bigint OPTIONS (offset 'true'),
  v pg_catalog.jsonb
) SERVER sp_srv OPTIONS (topic 'sp.public.sp_items', format 'raw');

-- wait until the stream has sent n messages (and its snapshot is done)
:safe;
CREATE FUNCTION public.sp_wait(n int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  deadline timestamptz := clock_timestamp() + interval '120 s';
BEGIN
  WHILE coalesce((SELECT messages_sent FROM kafka_fdw.cdc_status
                   WHERE name = 'sp' AND snapshot_done), 0) < n
        OR (SELECT count(*) FROM public.sp_cdc) < n
  LOOP
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION 'stream sp has not sent % messages: %', n,
        (SELECT row_to_json(s) FROM kafka_fdw.cdc_status s WHERE name = 'sp');
    END IF;
    PERFORM pg_sleep(0.1);
  END LOOP;
END
$$ SET search_path = pg_catalog;
SELECT public.sp_wait(1);
:hostile;
INSERT INTO sp_items VALUES (2, 'after'), (-2, 'filtered');
UPDATE sp_items SET note = 'changed' WHERE id OPERATOR(pg_catalog.=) 1;
:safe;
SELECT public.sp_wait(3);
SELECT o, v->'schema'->>'name' AS schema, v->'payload'->>'op' AS op,
       v->'payload'->'after' AS after
  FROM public.sp_cdc ORDER BY o;
:hostile;

SELECT name, state, messages_sent, last_error FROM kafka_fdw.cdc_status;
SELECT name, state, messages_sent FROM kafka_fdw.cdc_worker_status();
SET ROLE regress_sp_owner;
SELECT name, state, last_error FROM kafka_fdw.cdc_status;
RESET ROLE;
SELECT kafka_fdw.cdc_drop('sp');

:safe;
SELECT count(*) AS kafka_fdw_slots FROM pg_replication_slots
 WHERE slot_name LIKE 'kafka_fdw%';

--
-- Nothing of the attacker's ran
--
SELECT what, by_role, count(*) AS calls FROM public.sp_calls GROUP BY 1, 2 ORDER BY 1, 2;

-- clean up, so that later tests see the usual search_path
SELECT format('ALTER DATABASE %I RESET search_path', current_database()) \gexec
SET client_min_messages = warning;
DROP SCHEMA sp_imported CASCADE;
DROP SERVER sp_srv CASCADE;
DROP PUBLICATION sp_pub;
DROP TABLE public.sp_items, public.sp_plain, public.sp_calls;
DROP FUNCTION public.sp_wait(int);
DROP OWNED BY regress_sp_attacker;
DROP ROLE regress_sp_attacker, regress_sp_owner;
RESET client_min_messages;
RESET search_path;
