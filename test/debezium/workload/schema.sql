-- test/debezium/workload/schema.sql: the tables and rows both sides
-- snapshot (test/t/409_debezium_compare.pl runs it in a fresh database,
-- then creates the publication "dbz_pub" FOR ALL TABLES and starts Debezium
-- and a kafka_fdw stream).  changes.sql runs once both have snapshotted.
--
-- Tables:
--   types      every built-in type the issue lists (one column each)
--   defs       literal DEFAULTs (int, text, numeric, boolean) and now()
--   toasty     a TOASTed column (STORAGE EXTERNAL), default identity
--   comp       a composite primary key
--   full_ri    REPLICA IDENTITY FULL with a TOASTed column
--   idx_ri     a primary key and REPLICA IDENTITY USING INDEX on another
--   uniq_ri    no primary key, REPLICA IDENTITY USING INDEX
--   uniq_only  no primary key, a unique index, default identity (no
--              identity: only INSERT and TRUNCATE work on it)
--   nokey      no key at all, default identity (INSERT and TRUNCATE only)
--   nokey_full no key, REPLICA IDENTITY FULL
--   zz_end     the end marker: changes.sql's last statement inserts into it

CREATE EXTENSION hstore;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);

CREATE TABLE types (
  id serial PRIMARY KEY,
  i2 smallint, i4 integer, i8 bigint,
  n numeric, n52 numeric(5,2), n100 numeric(10,0), n380 numeric(38,10),
  r real, d double precision, m money,
  t text, vc varchar(20), vcn varchar, c char(5), nm name, ch "char",
  b bytea, u uuid, bo boolean,
  dt date,
  tm time, tm0 time(0), tm3 time(3), tm6 time(6), ttz timetz, ttz3 timetz(3),
  ts timestamp, ts0 timestamp(0), ts1 timestamp(1), ts3 timestamp(3),
  ts4 timestamp(4), ts6 timestamp(6),
  tstz timestamptz, tstz0 timestamptz(0), tstz3 timestamptz(3),
  tstz6 timestamptz(6),
  iv interval, iv0 interval second(0),
  j json, jb jsonb, x xml,
  ip inet, ip6 inet, cid cidr, mac macaddr, mac8 macaddr8,
  bt1 bit(1), bt8 bit(8), bt12 bit(12), vb varbit, vb5 varbit(5),
  ai int[], ai8 bigint[], at text[], an numeric[], au uuid[], adt date[],
  ats timestamptz[], ab bool[], avc varchar[],
  e mood, dom posint, hs hstore, pt point,
  rng int4range, rng8 int8range, num_r numrange, tsr tsrange,
  tstzr tstzrange, dr daterange,
  oi oid
);

CREATE TABLE defs (
  id int PRIMARY KEY,
  di int DEFAULT 42,
  dt text DEFAULT 'hello',
  dn numeric(6,2) DEFAULT 3.14,
  db boolean DEFAULT true,
  dts timestamptz DEFAULT now(),
  v text
);

CREATE TABLE toasty (id int PRIMARY KEY, big text, small int);
ALTER TABLE toasty ALTER big SET STORAGE EXTERNAL;

CREATE TABLE comp (a int, b text, v int, PRIMARY KEY (a, b));

CREATE TABLE full_ri (id int PRIMARY KEY, v text, big text);
ALTER TABLE full_ri REPLICA IDENTITY FULL;
ALTER TABLE full_ri ALTER big SET STORAGE EXTERNAL;

CREATE TABLE idx_ri (id int PRIMARY KEY, code text NOT NULL, v int);
CREATE UNIQUE INDEX idx_ri_code ON idx_ri (code);
ALTER TABLE idx_ri REPLICA IDENTITY USING INDEX idx_ri_code;

CREATE TABLE uniq_ri (code text NOT NULL, sub int NOT NULL, v int);
CREATE UNIQUE INDEX uniq_ri_code ON uniq_ri (code, sub);
ALTER TABLE uniq_ri REPLICA IDENTITY USING INDEX uniq_ri_code;

CREATE TABLE uniq_only (code text NOT NULL, v int);
CREATE UNIQUE INDEX uniq_only_code ON uniq_only (code);

CREATE TABLE nokey (v int, w text);

CREATE TABLE nokey_full (v int, w text);
ALTER TABLE nokey_full REPLICA IDENTITY FULL;

CREATE TABLE zz_end (id int PRIMARY KEY, note text);

-- the snapshot's rows
INSERT INTO types (i2, i4, i8, n, n52, n100, n380, r, d, m, t, vc, vcn, c, nm, ch,
  b, u, bo, dt, tm, tm0, tm3, tm6, ttz, ttz3, ts, ts0, ts1, ts3, ts4, ts6,
  tstz, tstz0, tstz3, tstz6, iv, iv0, j, jb, x, ip, ip6, cid, mac, mac8,
  bt1, bt8, bt12, vb, vb5, ai, ai8, at, an, au, adt, ats, ab, avc,
  e, dom, hs, pt, rng, rng8, num_r, tsr, tstzr, dr, oi)
VALUES (1, 2, 3, 12.345, 1.5, 42, 1234567890.0123456789, 1.5, 2.25, 12.34,
  'snap', 'v', 'free', 'c', 'nm', 'q',
  '\x0102', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true, '2020-02-29',
  '13:14:15.123456', '13:14:15', '13:14:15.123', '13:14:15.654321',
  '13:14:15.5+02', '01:02:03.456-05:30',
  '2020-02-29 13:14:15.123456', '2020-02-29 13:14:15', '2020-02-29 13:14:15.1',
  '2020-02-29 13:14:15.123', '2020-02-29 13:14:15.1234', '2020-02-29 13:14:15.123456',
  '2020-02-29 13:14:15.123456+01', '2020-02-29 13:14:15+01',
  '2020-02-29 13:14:15.1+01', '2020-02-29 13:14:15.000001+00',
  '1 year 2 mons 3 days 04:05:06.789', '10 seconds',
  '{"a": 1}', '{"b": [1, 2]}', '<a>x</a>',
  '192.168.1.1/24', '2001:db8::1', '10.0.0.0/8', '08:00:2b:01:02:03',
  '08:00:2b:01:02:03:04:05',
  B'1', B'10100101', B'101000001111', B'101', B'11',
  '{1,2,NULL}', '{9223372036854775807}', '{"a","b c"}', '{1.5,2}',
  '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', '{2020-01-01}',
  '{"2020-01-01 00:00:00+00"}', '{t,f}', '{x,y}',
  'ok', 5, 'k=>v, "x y"=>NULL', '(1.5,2)', '[1,5)', '[10,20]', '(1.5,2.5]',
  '[2020-01-01 00:00,2020-01-02 00:00)', '[2020-01-01 00:00+00,)', '[2020-01-01,2020-02-01)',
  42);
INSERT INTO types (i2, n, n52, r, d, dt, ts, tstz, tm, iv, j, jb, bt8, m, t)
VALUES (-1, 'NaN', -1.25, 'NaN', 'Infinity', 'infinity', 'infinity',
  '-infinity', '00:00:00', '-1 mons -2 days', 'null', '[]', B'00000001',
  -0.01, E'quote " backslash \\ tab \t newline \n unicode é €');
INSERT INTO types (r, d, n, n52, dt, ts, tstz, n100, i8, i4, i2)
VALUES ('-Infinity', '-Infinity', '123456789012345678901234567890.123456789',
  'NaN', '-infinity', '-infinity', 'infinity', 9999999999,
  9223372036854775807, -2147483648, 32767);

INSERT INTO defs (id, v) VALUES (1, 'snap');
INSERT INTO defs VALUES (2, NULL, NULL, NULL, NULL, NULL, 'nulls');
INSERT INTO toasty VALUES (1, repeat('x', 10000), 1), (10, 'short', 10);
INSERT INTO comp VALUES (1, 'a', 1), (2, 'b', 2);
INSERT INTO full_ri VALUES (1, 'a', repeat('y', 10000));
INSERT INTO idx_ri VALUES (1, 'k1', 1);
INSERT INTO uniq_ri VALUES ('u1', 1, 1);
INSERT INTO uniq_only VALUES ('u1', 1);
INSERT INTO nokey VALUES (1, 'a');
INSERT INTO nokey_full VALUES (1, 'a');
