-- test/debezium/workload/changes.sql: the changes both sides stream, run
-- after both have snapshotted schema.sql's rows.  Its last statement
-- inserts the end marker (zz_end id 1): once both sides have sent it, they
-- have sent everything.

-- inserts with the edge values
INSERT INTO types (i2, n, n52, r, d, dt, ts, tstz, tm, iv, j, jb, bt8, m)
VALUES (-1, 'NaN', -1.25, 'NaN', 'Infinity', 'infinity', 'infinity',
  '-infinity', '00:00:00', '-1 mons -2 days', 'null', '[]', B'00000001', -0.01);
INSERT INTO types (r, d, n, dt, ts, tstz, n100, i8, n52)
VALUES ('-Infinity', '-Infinity', '123456789012345678901234567890.123456789',
  '-infinity', '-infinity', 'infinity', 9999999999, 9223372036854775807, 'NaN');
INSERT INTO types (dt, ts, ts0, ts3, tstz, tstz3, tm, tm3, ttz, iv, iv0, m)
VALUES ('1969-12-31', '1900-01-01 00:00:00.000001', '1970-01-01 00:00:00',
  '1969-12-31 23:59:59.999', '1900-01-01 00:00:00+00',
  '1969-12-31 23:59:59.999-03', '23:59:59.999999', '00:00:00.001',
  '00:00:00+14', '-178000000 years', '-1 second', -92233720368547758.08);
INSERT INTO types (t, vc, c, nm, ch, b, j, jb, x, hs, at, pt, e, dom, ai, an, rng, num_r)
VALUES (E'multi\nline \\ "q" \u263a', '', 'ab', 'streamed_name', '\001',
  '\x00ff7f80', '{"z": 1, "a": [true, null, 1.50]}',
  '{"z": 1, "a": [true, null, 1.50]}', '<?xml version="1.0"?><r a="1">t</r>',
  'a=>1, b=>2, c=>3, "d e"=>"f g", h=>NULL', '{"",NULL,"x,y"}',
  '(-0.5,1e10)', 'happy', 2147483647, '{}', '{NaN,1.10,-0}', 'empty', '[1.5,)');
-- update without and with a key change, delete
UPDATE types SET t = 'upd', nm = 'upd_name', hs = 'p=>q' WHERE id = 1;
UPDATE types SET id = 100 WHERE id = 2;
DELETE FROM types WHERE id = 3;

-- defaults: literal ones and now()
INSERT INTO defs (id, v) VALUES (3, 'streamed');
INSERT INTO defs (id) VALUES (4);
UPDATE defs SET di = 7, dt = 'seven', dn = 7.77, db = false WHERE id = 1;
DELETE FROM defs WHERE id = 2;

-- unchanged TOAST: an update of another column, then a key change
UPDATE toasty SET small = 2 WHERE id = 1;
UPDATE toasty SET id = 2 WHERE id = 1;
UPDATE toasty SET big = repeat('z', 9000) WHERE id = 2;
UPDATE toasty SET id = 3, small = 3 WHERE id = 2;
DELETE FROM toasty WHERE id = 3;
INSERT INTO toasty VALUES (4, repeat('w', 12000), 4);
UPDATE toasty SET small = 11 WHERE id = 10;

-- composite key: update, key change, delete
UPDATE comp SET v = 20 WHERE a = 2;
UPDATE comp SET b = 'c' WHERE a = 2;
DELETE FROM comp WHERE a = 2;

-- REPLICA IDENTITY FULL with TOAST: unchanged TOAST, key change, delete
UPDATE full_ri SET v = 'b' WHERE id = 1;
UPDATE full_ri SET id = 2 WHERE id = 1;
DELETE FROM full_ri;
INSERT INTO full_ri VALUES (5, 'x', repeat('v', 10000));

-- USING INDEX on a table with a primary key, and without one
UPDATE idx_ri SET v = 2;
UPDATE idx_ri SET code = 'k2';
UPDATE idx_ri SET id = 2;
DELETE FROM idx_ri;
INSERT INTO uniq_ri VALUES ('u2', 1, 2);
UPDATE uniq_ri SET v = 3 WHERE code = 'u1';
UPDATE uniq_ri SET sub = 2 WHERE code = 'u1';
DELETE FROM uniq_ri WHERE code = 'u2';

-- no usable identity: inserts only
INSERT INTO uniq_only VALUES ('u2', 2);
INSERT INTO nokey VALUES (2, 'b'), (3, 'c');
-- no key, REPLICA IDENTITY FULL
INSERT INTO nokey_full VALUES (2, 'b');
UPDATE nokey_full SET w = 'c' WHERE v = 2;
DELETE FROM nokey_full WHERE v = 1;

-- truncates: one table, then two in one statement
TRUNCATE nokey;
TRUNCATE uniq_only, nokey_full;
INSERT INTO nokey VALUES (4, 'after truncate');

-- a schema change mid-stream
ALTER TABLE comp ADD COLUMN extra text DEFAULT 'd';
INSERT INTO comp VALUES (3, 'x', 3);
UPDATE comp SET extra = 'e' WHERE a = 1;

-- a large transaction: several thousand rows, updates and deletes among
-- them, a logical message in the middle
BEGIN;
INSERT INTO comp (a, b, v) SELECT g, 'bulk', g FROM generate_series(1000, 5999) g;
SELECT pg_logical_emit_message(true, 'outbox', '{"in": "the large transaction"}');
UPDATE comp SET v = -v WHERE b = 'bulk' AND a % 100 = 0;
DELETE FROM comp WHERE b = 'bulk' AND a % 250 = 0;
INSERT INTO nokey VALUES (5, 'in the large transaction');
COMMIT;

-- logical messages: transactional, prefix 'outbox' and another prefix,
-- text and binary content
SELECT pg_logical_emit_message(true, 'outbox', '{"order": 1}');
SELECT pg_logical_emit_message(true, 'other', '\x00ff'::bytea);
BEGIN;
INSERT INTO zz_end VALUES (0, 'beside a message');
SELECT pg_logical_emit_message(true, 'outbox', 'in a transaction with a row');
COMMIT;

-- the end marker
INSERT INTO zz_end VALUES (1, 'end');
