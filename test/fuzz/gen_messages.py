#!/usr/bin/python3
#
# test/fuzz/gen_messages.py: produce seeded, repeatable junk and good
# messages into Kafka for the scan fuzz test (test/t/104_scan_fuzz.pl)
#
# Usage: gen_messages.py BOOTSTRAP FORMAT TOPIC PARTITIONS COUNT SEED CLEAN
#
# FORMAT is json, csv or raw.  COUNT messages go round-robin to the
# PARTITIONS partitions of TOPIC, each with a fixed timestamp, a key and
# headers; the same SEED gives the same messages in the same order, so the
# first N messages of a run with COUNT M > N are those of a run with COUNT
# N.  About a third of the messages are clean (every value valid for the
# column it names, no mutation); the others carry invalid values, wrong
# JSON types, huge numbers, deep nesting, invalid UTF-8, and byte-level
# mutations (truncation, bit flips, inserted bytes).  CLEAN is a file that
# gets, for each clean message, a line "partition<TAB>offset<TAB>c_int4"
# (c_int4 empty when NULL), read by COPY.  Prints the number of messages
# delivered.
#
# The columns are those of test/t/104_scan_fuzz.pl, in its order.

import base64
import random
import sys

from confluent_kafka import Producer

COLUMNS = ['c_int2', 'c_int4', 'c_int8', 'c_numeric', 'c_float4',
           'c_float8', 'c_bool', 'c_text', 'c_varchar', 'c_char', 'c_bytea',
           'c_date', 'c_time', 'c_timetz', 'c_timestamp', 'c_timestamptz',
           'c_interval', 'c_uuid', 'c_json', 'c_jsonb', 'c_int4s',
           'c_texts', 'c_pair', 'c_pairs', 'c_pos', 'c_color', 'c_inet',
           'c_range']

# the messages' timestamps: fixed, so that rows are the same on every run
BASE_TS_MS = 1700000000000


def huge_number(r):
    return r.choice([
        '1' + '0' * r.randint(20, 400),
        '-' + '9' * r.randint(20, 400) + '.' + '9' * r.randint(1, 50),
        '1e' + str(r.randint(300, 400)),
        '-1e' + str(r.randint(300, 999999)),
        '1e-' + str(r.randint(300, 999999)),
        '0.' + '0' * r.randint(100, 1000) + '1',
        '123456789012345678901234567890',
    ])


def rand_text(r, n=None):
    if n is None:
        n = r.randint(0, 12)
    alphabet = 'abcXYZ 019,;"\\\'{}[]()\t\n\u00e9\u4e2d\U0001f600'
    return ''.join(r.choice(alphabet) for _ in range(n))


def json_str(s):
    """A JSON string literal of s (escaping done here, not by json)."""
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == '\\':
            out.append('\\\\')
        elif ch == '\n':
            out.append('\\n')
        elif ch == '\t':
            out.append('\\t')
        elif ord(ch) < 0x20:
            out.append('\\u%04x' % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return ''.join(out)


def nested(r, depth):
    if r.random() < 0.5:
        return '[' * depth + '1' + ']' * depth
    return '{"a": ' * depth + '1' + '}' * depth


def deep_depth(r):
    # mostly around the limit of 1,000 levels; rarely far beyond it
    x = r.random()
    if x < 0.004:
        return r.choice([12000, 25000, 100000])
    return r.choice([2, 10, 500, 998, 999, 1000, 1001, 1002, 5000])


def rand_json(r, depth=0):
    """Random JSON text, nested a little."""
    x = r.random()
    if depth > 3 or x < 0.4:
        return r.choice([
            'null', 'true', 'false', str(r.randint(-10 ** 6, 10 ** 6)),
            repr(r.uniform(-1e6, 1e6)), json_str(rand_text(r)),
            huge_number(r), '"\\u0000"', '"\\ud800"', '"\\uDFFF\\uD800"',
            '"\\u00e9"', '"\\x"'])
    if x < 0.7:
        return '[' + ', '.join(rand_json(r, depth + 1)
                               for _ in range(r.randint(0, 4))) + ']'
    return '{' + ', '.join('%s: %s' % (json_str(rand_text(r, 2)),
                                       rand_json(r, depth + 1))
                           for _ in range(r.randint(0, 4))) + '}'


# valid values: (JSON text, CSV text) of a value the column's type takes
def valid_value(r, col):
    def s(v):
        return (json_str(v), v)

    if col == 'c_int2':
        v = str(r.randint(-32768, 32767))
        return (v, v)
    if col in ('c_int4', 'c_pos'):
        lo = 1 if col == 'c_pos' else -2 ** 31
        v = str(r.randint(lo, 2 ** 31 - 1))
        return (v, v)
    if col == 'c_int8':
        v = str(r.randint(-2 ** 63, 2 ** 63 - 1))
        return (v, v)
    if col == 'c_numeric':
        v = '%d.%d' % (r.randint(-10 ** 12, 10 ** 12), r.randint(0, 10 ** 6))
        return (v, v)
    if col in ('c_float4', 'c_float8'):
        v = '%.6g' % r.uniform(-1e30, 1e30)
        return (v, v)
    if col == 'c_bool':
        v = r.choice(['true', 'false'])
        return (v, v)
    if col == 'c_text':
        return s(rand_text(r).replace('\x00', ''))
    if col == 'c_varchar':
        return s(rand_text(r, r.randint(0, 8)))
    if col == 'c_char':
        return s(rand_text(r, r.randint(0, 4)))
    if col == 'c_bytea':
        raw = bytes(r.randint(0, 255) for _ in range(r.randint(0, 10)))
        return (json_str(base64.b64encode(raw).decode()),
                '\\x' + raw.hex())
    if col == 'c_date':
        return s('%04d-%02d-%02d' % (r.randint(1, 9999), r.randint(1, 12),
                                     r.randint(1, 28)))
    if col == 'c_time':
        return s('%02d:%02d:%02d.%d' % (r.randint(0, 23), r.randint(0, 59),
                                        r.randint(0, 59), r.randint(0, 999)))
    if col == 'c_timetz':
        return s('%02d:%02d:%02d%+03d' % (r.randint(0, 23), r.randint(0, 59),
                                          r.randint(0, 59),
                                          r.randint(-12, 12)))
    if col == 'c_timestamp':
        return s('%04d-%02d-%02d %02d:%02d:%02d' % (
            r.randint(1, 9999), r.randint(1, 12), r.randint(1, 28),
            r.randint(0, 23), r.randint(0, 59), r.randint(0, 59)))
    if col == 'c_timestamptz':
        return s('%04d-%02d-%02dT%02d:%02d:%02d%+03d:00' % (
            r.randint(1, 9999), r.randint(1, 12), r.randint(1, 28),
            r.randint(0, 23), r.randint(0, 59), r.randint(0, 59),
            r.randint(-12, 12)))
    if col == 'c_interval':
        return s('%d days %d hours %d minutes' % (
            r.randint(-10000, 10000), r.randint(-100, 100),
            r.randint(0, 59)))
    if col == 'c_uuid':
        return s('%032x' % r.getrandbits(128))
    if col in ('c_json', 'c_jsonb'):
        v = clean_json(r)
        return (v, v)
    if col == 'c_int4s':
        elems = [str(r.randint(-1000, 1000)) if r.random() < 0.9 else 'null'
                 for _ in range(r.randint(0, 5))]
        if r.random() < 0.2:
            return ('[[1, 2], [3, 4]]', '{{1,2},{3,4}}')
        return ('[' + ', '.join(elems) + ']',
                '{' + ','.join('NULL' if e == 'null' else e
                               for e in elems) + '}')
    if col == 'c_texts':
        elems = ['abc', 'x y', 'q"uote', 'back\\slash', '', 'NULL', '\u00e9']
        pick = [r.choice(elems) for _ in range(r.randint(0, 4))]
        return ('[' + ', '.join(json_str(e) for e in pick) + ']',
                '{' + ','.join('"' + e.replace('\\', '\\\\')
                               .replace('"', '\\"') + '"'
                               for e in pick) + '}')
    if col == 'c_pair':
        a = r.randint(-1000, 1000)
        return ('{"a": %d, "b": %s}' % (a, json_str('b%d' % a)),
                '(%d,b%d)' % (a, a))
    if col == 'c_pairs':
        a = r.randint(-1000, 1000)
        return ('[{"a": %d}, {"b": "z"}]' % a, '{"(%d,)","(,z)"}' % a)
    if col == 'c_color':
        return s(r.choice(['red', 'green', 'blue']))
    if col == 'c_inet':
        return s('%d.%d.%d.%d/%d' % (r.randint(0, 255), r.randint(0, 255),
                                     r.randint(0, 255), r.randint(0, 255),
                                     r.randint(0, 32)))
    if col == 'c_range':
        lo = r.randint(-1000, 1000)
        return s('[%d,%d)' % (lo, lo + r.randint(0, 1000)))
    raise ValueError(col)


# invalid values for the column, or values of the wrong JSON type
def invalid_value(r, col):
    pool = [
        '"not valid"', '""', '" "', '"12abc"', '"-"', '"NaN"', '"Infinity"',
        '"-infinity"', '1.5', '-0', '99999999999999999999', huge_number(r),
        '"' + huge_number(r) + '"', 'true', '[1, "a"]', '[[1], [2, 3]]',
        '{"a": "x"}', '{"a": 1, "b": [1]}', '[]', '{}', '"2024-02-30"',
        '"24:00:01"', '"294277-01-01"', '"-4714-11-23 BC"', '"infinity"',
        '"epoch"', '"1 fortnight"', '"999.1.1.1"', '"[5,1)"', '"purple"',
        '"(1,2,3)"', '"{1,2"', '"0"', '-1', '"\\u0000"', '"\\ud800"',
        '"***"', '"AAAA"', '"%%%%"', '"12345678901234567890123"',
        json_str(rand_text(r, r.randint(9, 40))), rand_json(r),
        nested(r, 2),
    ]
    v = r.choice(pool)
    return (v, v.strip('"'))


POOL_SIZE = 400
pools = {}


def pooled(r, kind, col):
    """A value from a pool made once per column and kind: random draws
    from the pools keep the generator fast; invalid values with deep
    nesting are made anew each time, so that depths vary."""
    key = (kind, col)
    if key not in pools:
        make = valid_value if kind == 'valid' else invalid_value
        pools[key] = [make(r, col) for _ in range(POOL_SIZE)]
    return r.choice(pools[key])


def json_message(r, clean):
    """(message bytes, c_int4 text or None)."""
    parts = []
    c_int4 = None
    for col in COLUMNS:
        if r.random() < 0.2:
            continue            # absent: NULL
        if clean or r.random() < 0.7:
            if not clean and r.random() < 0.05:
                v = 'null'
            else:
                v = pooled(r, 'valid', col)[0]
        elif r.random() < 0.003:
            v = nested(r, deep_depth(r))
        else:
            v = pooled(r, 'invalid', col)[0]
        if col == 'c_int4' and v != 'null':
            c_int4 = v
        parts.append('%s: %s' % (json_str(col), v))
    if not clean:
        if r.random() < 0.1:
            parts.append('"extra": %s' % rand_json(r))
        if r.random() < 0.05:
            parts.append('"c_int4": %s' % invalid_value(r, 'c_int4')[0])
    if not clean:
        r.shuffle(parts)
    text = '{' + ', '.join(parts) + '}'
    if not clean:
        x = r.random()
        if x < 0.01:
            text = nested(r, deep_depth(r))
        elif x < 0.02:
            text = '{"c_json": %s, "c_int4": 1}' % nested(r, deep_depth(r))
        elif x < 0.04:
            text = rand_json(r)
    return text.encode('utf-8'), c_int4


def csv_field(v):
    if v is None:
        return ''
    if any(c in v for c in ',"\n\r') or v == '' or v.strip() != v:
        return '"' + v.replace('"', '""') + '"'
    return v


def csv_message(r, clean):
    fields = []
    c_int4 = None
    n = len(COLUMNS)
    if not clean:
        n = r.choice([n, n, n, r.randint(0, n + 3)])
    for i in range(n):
        col = COLUMNS[i] if i < len(COLUMNS) else 'c_text'
        if r.random() < 0.15:
            fields.append('')   # NULL
            continue
        if clean or r.random() < 0.7:
            v = pooled(r, 'valid', col)[1]
        else:
            v = pooled(r, 'invalid', col)[1]
        if col == 'c_int4' and i < len(COLUMNS):
            c_int4 = v
        fields.append(csv_field(v))
    text = ','.join(fields)
    if not clean:
        x = r.random()
        if x < 0.03:
            text += ',"unterminated'
        elif x < 0.05:
            text = '"' + text
    if r.random() < 0.3:
        text += '\n'
    return text.encode('utf-8'), c_int4


def raw_message(r, clean):
    x = r.random()
    if clean:
        return clean_json(r).encode('utf-8'), None
    if x < 0.3:
        return rand_json(r).encode('utf-8'), None
    if x < 0.33:
        return nested(r, deep_depth(r)).encode('utf-8'), None
    if x < 0.7:
        return rand_text(r, r.randint(0, 60)).encode('utf-8'), None
    return bytes(r.randint(0, 255) for _ in range(r.randint(0, 60))), None


INVALID_UTF8 = [b'\xff', b'\xc3\x28', b'\xed\xa0\x80', b'\xf4\x90\x80\x80',
                b'\xc0\xaf', b'\x00', b'\xe2\x82', b'\x80']


def mutate(r, data):
    data = bytearray(data)
    for _ in range(r.randint(1, 3)):
        x = r.random()
        if x < 0.3 and data:
            del data[r.randint(0, len(data) - 1):]     # truncation
        elif x < 0.6 and data:
            i = r.randint(0, len(data) - 1)            # bit flip
            data[i] ^= 1 << r.randint(0, 7)
        elif x < 0.85:
            i = r.randint(0, len(data))                # invalid UTF-8
            data[i:i] = r.choice(INVALID_UTF8)
        else:
            i = r.randint(0, len(data))                # random bytes
            data[i:i] = bytes(r.randint(0, 255)
                              for _ in range(r.randint(1, 8)))
    return bytes(data)


def clean_json(r):
    """Random JSON that json and jsonb both take."""
    v = rand_json(r)
    while '\\u0000' in v or '\\ud800' in v.lower() or '\\x' in v or \
            '\\udfff' in v.lower() or '1e' in v:
        v = rand_json(r)
    return v


def rand_key(r, clean):
    x = r.random()
    if x < 0.1:
        return None
    if clean:
        return clean_json(r).encode('utf-8')
    if x < 0.4:
        return rand_json(r).encode('utf-8')
    if x < 0.45:
        return nested(r, r.choice([10, 1000, 1001, 5000])).encode('utf-8')
    if x < 0.8:
        return rand_text(r).encode('utf-8')
    return mutate(r, rand_text(r).encode('utf-8'))


def rand_headers(r, clean):
    if r.random() < 0.5:
        return None
    if clean:
        return [('h', rand_text(r).encode('utf-8'))]
    headers = []
    for _ in range(r.randint(0, 4)):
        name = r.choice(['h', 'h', 'trace', 'x-\u00e9', '', 'n"q'])
        y = r.random()
        if y < 0.15:
            value = None
        elif y < 0.3:
            value = mutate(r, b'value')
        else:
            value = rand_text(r).encode('utf-8')
        headers.append((name, value))
    return headers


def main():
    bootstrap, fmt, topic = sys.argv[1], sys.argv[2], sys.argv[3]
    partitions, count, seed = (int(sys.argv[4]), int(sys.argv[5]),
                               int(sys.argv[6]))
    clean_file = sys.argv[7]
    r = random.Random('%s:%d' % (fmt, seed))
    make = {'json': json_message, 'csv': csv_message,
            'raw': raw_message}[fmt]

    failed = []
    clean_rows = []

    def report(err, msg, c_int4):
        if err is not None:
            failed.append(str(err))
        elif c_int4 is not False:
            clean_rows.append((msg.partition(), msg.offset(), c_int4))

    p = Producer({'bootstrap.servers': bootstrap,
                  'enable.idempotence': True,
                  'message.timeout.ms': 60000,
                  'linger.ms': 20,
                  'message.max.bytes': 2000000,
                  'queue.buffering.max.messages': 1000000})
    for i in range(count):
        clean = r.random() < 0.33
        value, c_int4 = make(r, clean)
        if not clean:
            if r.random() < 0.35:
                value = mutate(r, value)
            elif r.random() < 0.02:
                value = None    # a tombstone
            elif r.random() < 0.02:
                value = b''
        key = rand_key(r, clean)
        headers = rand_headers(r, clean)
        kw = {}
        if headers is not None:
            kw['headers'] = headers
        tag = c_int4 if clean else False

        def cb(err, msg, tag=tag):
            report(err, msg, tag)
        while True:
            try:
                p.produce(topic, value=value, key=key, partition=i % partitions,
                          timestamp=BASE_TS_MS + i, on_delivery=cb, **kw)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    if p.flush(120) != 0:
        failed.append('messages not delivered in time')
    if failed:
        sys.exit('delivery failed: ' + '; '.join(sorted(set(failed))[:5]))
    with open(clean_file, 'w') as f:
        for part, off, c_int4 in sorted(clean_rows):
            f.write('%d\t%d\t%s\n' % (part, off,
                                      '\\N' if c_int4 is None else c_int4))
    print(count)


if __name__ == '__main__':
    main()
