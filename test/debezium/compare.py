#!/usr/bin/python3
"""test/debezium/compare.py: compare kafka_fdw's change events with Debezium's

Both sides stream the same publication of the same database into topics
<prefix>.<schema>.<table> (and <prefix>.message, <prefix>.transaction).
This reads every message of both sides and compares them: partition, key
and value (as parsed JSON), headers (by name), counts, and the order of the
messages per key and per partition.  Messages are paired by key (the
key's payload, normalised): the i-th message of a key on one side with the
i-th of that key on the other.

  compare.py compare --bootstrap B --reference PREFIX --candidate PREFIX
                     --topics public.t1,public.t2,message,transaction
                     [--labels debezium,kafka_fdw] [--max-lines N]
                     [--max-value CHARS] [--save DIR]
      prints one line per difference and a summary; exit status 1 on any
      difference not in DIFFERENCES below, 0 otherwise.  --save DIR also
      writes every message read to DIR/TOPIC.jsonl
  compare.py dump --bootstrap B --reference PREFIX --candidate PREFIX
                  --topic public.t1 [--schema]
      prints the messages of one topic of both sides, pair by pair (the
      "schema" part of the schema/payload form only with --schema)
  compare and dump take --load DIR instead of --bootstrap: the messages
  --save wrote (409_debezium_compare.pl saves each mode's in
  tmp_check/messages_<mode>), to compare again without Kafka
  compare.py topics --bootstrap B [--rf N] NAME:PARTITIONS...
      creates topics (existing ones are left alone)
  compare.py wait --bootstrap B --prefix PREFIX --topics T1,T2,...
                  (--snapshot-last | --end TOPIC) [--timeout S]
      waits until one of the topics holds the snapshot's last event
      (source.snapshot "last"), or until TOPIC holds the end marker (a
      create event of id 1); exit status 1 at the deadline
"""

import argparse
import base64
import json
import os
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaError, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

# ---------------------------------------------------------------------------
# The differences that are not errors: one entry each, with its reason.
#
#   kind     prefix   the side's topic prefix, wherever it is written,
#                     becomes "<prefix>" (paths: value source.name, every
#                     schema's name, header values named in headers)
#            ignore   the values at paths are not compared (a field missing
#                     on one side still is a difference)
#            json     the values at paths are strings compared as parsed JSON
#            header   the headers named are not compared (present on one
#                     side only still is a difference)
#            partition  the partition is not compared for messages whose
#                     key is null
#            keyhash  partitions compared through the keys' hashes (below)
#            collections  the list at paths is a transaction's
#                     data_collections: compared sorted, see its reason
#   paths    dotted paths into the payload (the value itself in the
#            schemaless form), "*" matches one level
#   ops      only for events of these ops ('r' snapshot, 'c', 'u', 'd', 't',
#            'm'); absent: every event
#   topics   only for these topics (after the prefix); absent: every topic
#   defect   True: a defect of Debezium that kafka_fdw does not reproduce
# ---------------------------------------------------------------------------
STREAMED = ('c', 'u', 'd', 't', 'm')
DIFFERENCES = [
    dict(kind='prefix', paths=['source.name'],
         headers=['__debezium.context.connectorLogicalName'],
         reason='each side has a topic prefix of its own; it is source.name, '
                'the start of every schema name (<prefix>.public.t.Value) '
                'and the connectorLogicalName header'),
    dict(kind='ignore', paths=['source.version'],
         reason="Debezium's release vs kafka_fdw's version"),
    dict(kind='ignore', paths=['source.connector'],
         reason='"postgresql" vs "kafka_fdw": which program wrote the event'),
    dict(kind='header', headers=['__debezium.context.runId'],
         reason='an id of the connector run, new each time it starts'),
    dict(kind='header', headers=['__debezium.context.connectorName'],
         reason='the writing connector'),
    dict(kind='ignore', paths=['ts_ms', 'ts_us', 'ts_ns'],
         reason='the envelope timestamps are processing time: when each '
                'side handled the event'),
    dict(kind='ignore', ops=('r',),
         paths=['source.ts_ms', 'source.ts_us', 'source.ts_ns',
                'source.txId', 'source.lsn', 'source.sequence'],
         reason='the two sides snapshot at different moments, in different '
                'transactions (streamed events decode the same WAL: there '
                'these fields must be equal)'),
    dict(kind='sequence-start',
         reason="source.sequence's first element (the previous commit) is "
                "null in the first event a side streams after it starts; "
                "kafka_fdw's slot has decoded its own bookkeeping "
                "transaction before: in the events at Debezium's first "
                "streamed LSN only the LSN is compared (first_streamed_"
                "sequence); likewise the BEGIN/END pair of that event-less "
                "transaction, before Debezium started, is left out "
                "(before_reference_started)"),
    dict(kind='partition',
         reason='a null key is spread over the partitions by the producer '
                '(Kafka sticky partitioning, librdkafka random): no side '
                'can match it; the test gives keyless tables one partition'),
    dict(kind='keyhash',
         reason='the partition of a keyed message is murmur2(key bytes) '
                'modulo the partition count (the Java producer\'s default); '
                'with schemas.enable=true the key bytes hold the prefix (in '
                'the schema name), so the two sides\' partitions differ: '
                'each message must then be in the partition its own key '
                'bytes give; with equal key bytes, in the same partition'),
    # Debezium's defects that kafka_fdw deliberately does not reproduce
    dict(kind='ignore', defect=True, topics=['public.types'], ops=STREAMED,
         paths=['before.nm', 'after.nm'],
         reason='Debezium 3.6.1 sends null for a column of type name in '
                'streamed events (the real value in the snapshot); '
                'kafka_fdw sends the value'),
    dict(kind='collections', defect=True, topics=['transaction'],
         paths=['data_collections'],
         reason="Debezium names a logical message's entry of an END event's "
                "data_collections by a Java object's toString() (class@"
                "identity hash, new each run) and orders the entries as a "
                "HashMap does: the entries are compared sorted by name, an "
                "entry naming no table (no '.', or an '@') as "
                "'<logical message>', whatever kafka_fdw calls it"),
    dict(kind='nullarray', defect=True, topics=['public.types'],
         paths=['before.an', 'after.an'],
         reason='Debezium 3.6.1 sends null for a numeric[] that holds a '
                'NULL or NaN element (the whole array is lost); kafka_fdw '
                'sends the array: such an array is compared as null'),
    dict(kind='json', defect=True, topics=['public.types'],
         paths=['before.hs', 'after.hs'],
         reason="hstore.handling.mode=json: Debezium builds the JSON object "
                "from a Java HashMap, so its key order is the map's; "
                "compared as parsed JSON"),
]

MAX_VALUE = 100     # characters of a value shown in a difference line


def rules_for(topic, op):
    for r in DIFFERENCES:
        if 'topics' in r and topic not in r['topics']:
            continue
        if 'ops' in r and op not in r['ops']:
            continue
        yield r


# --------------------------------------------------------------- reading

def read_topics(bootstrap, topics, timeout=60):
    """Every message of the topics (those that exist), in offset order:
    {topic: [msg]}, msg a dict partition, offset, key, value (bytes or
    None), headers [(name, bytes)]."""
    c = Consumer({'bootstrap.servers': bootstrap, 'group.id': 'kfdw-dbz-compare',
                  'enable.auto.commit': False, 'enable.partition.eof': True,
                  'isolation.level': 'read_committed',
                  'fetch.max.bytes': 52428800})
    md = c.list_topics(timeout=30)
    out = {t: [] for t in topics}
    tps = []
    npart = {}
    for t in topics:
        if t in md.topics and not md.topics[t].error:
            npart[t] = len(md.topics[t].partitions)
            tps += [TopicPartition(t, p, OFFSET_BEGINNING)
                    for p in sorted(md.topics[t].partitions)]
        else:
            out[t] = None
    left = {(tp.topic, tp.partition) for tp in tps}
    if tps:
        c.assign(tps)
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                left.discard((m.topic(), m.partition()))
                continue
            raise SystemExit('reading %s: %s' % (m.topic(), m.error()))
        out[m.topic()].append({'partition': m.partition(), 'offset': m.offset(),
                               'key': m.key(), 'value': m.value(),
                               'headers': list(m.headers() or []),
                               'partitions': npart[m.topic()]})
    c.close()
    if left:
        raise SystemExit('could not read to the end of %s in %d s'
                         % (sorted(left), timeout))
    for msgs in out.values():
        if msgs:
            msgs.sort(key=lambda m: (m['partition'], m['offset']))
    return out


def b64(data):
    return None if data is None else base64.b64encode(data).decode()


def unb64(text):
    return None if text is None else base64.b64decode(text)


def save_topics(directory, msgs):
    """Write what read_topics read, one file TOPIC.jsonl each (bytes in
    base64), for --load."""
    os.makedirs(directory, exist_ok=True)
    for t, ms in msgs.items():
        if ms is None:
            continue
        with open(os.path.join(directory, t + '.jsonl'), 'w') as f:
            for m in ms:
                f.write(json.dumps({'partition': m['partition'], 'offset': m['offset'],
                                    'partitions': m['partitions'],
                                    'key': b64(m['key']), 'value': b64(m['value']),
                                    'headers': [[n, b64(v)] for n, v in m['headers']]})
                        + '\n')


def load_topics(directory, topics):
    """read_topics from save_topics' files."""
    out = {}
    for t in topics:
        path = os.path.join(directory, t + '.jsonl')
        if not os.path.exists(path):
            out[t] = None
            continue
        with open(path) as f:
            out[t] = []
            for line in f:
                m = json.loads(line)
                m['key'], m['value'] = unb64(m['key']), unb64(m['value'])
                m['headers'] = [(n, unb64(v)) for n, v in m['headers']]
                out[t].append(m)
    return out


def source_topics(args, topics):
    """The messages of the topics, from Kafka (--bootstrap) or from a
    directory --save wrote (--load); saved to --save."""
    if args.load:
        return load_topics(args.load, topics)
    if not args.bootstrap:
        raise SystemExit('--bootstrap or --load is needed')
    msgs = read_topics(args.bootstrap, topics)
    if getattr(args, 'save', None):
        save_topics(args.save, msgs)
    return msgs


def parse(data):
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return {'<not JSON>': data.decode('utf-8', 'replace')}


def payload_of(obj):
    """The payload of the schema/payload form, or the object itself."""
    if isinstance(obj, dict) and set(obj) == {'schema', 'payload'}:
        return obj['payload']
    return obj


def murmur2(data):
    """Kafka's Utils.murmur2 (the Java producer's key hash), as unsigned."""
    m, mask = 0x5bd1e995, 0xffffffff
    n = len(data)
    h = (0x9747b28c ^ n) & mask
    for i in range(0, n - n % 4, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    rest, tail = n % 4, n - n % 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h


def key_partition(key, partitions):
    """The partition the Java producer's default partitioner picks."""
    return (murmur2(key) & 0x7fffffff) % partitions


# --------------------------------------------------------- normalising

IGNORED = '<not compared>'


def path_items(obj, parts):
    """(parent, key) of every place a dotted path (split) reaches."""
    if not parts or not isinstance(obj, dict):
        return
    first, rest = parts[0], parts[1:]
    names = list(obj) if first == '*' else ([first] if first in obj else [])
    for n in names:
        if rest:
            yield from path_items(obj[n], rest)
        else:
            yield obj, n


def replace_prefix(s, prefix):
    if isinstance(s, str) and prefix and (s == prefix or s.startswith(prefix + '.')):
        return '<prefix>' + s[len(prefix):]
    return s


def schema_names(schema, prefix):
    """The prefix in every schema name of a Connect JSON schema."""
    if isinstance(schema, dict):
        for k, v in schema.items():
            if k == 'name':
                schema[k] = replace_prefix(v, prefix)
            else:
                schema_names(v, prefix)
    elif isinstance(schema, list):
        for v in schema:
            schema_names(v, prefix)


def msg_payload(n):
    p = n['value']
    if isinstance(p, dict) and 'payload' in p and 'schema' in p:
        p = p['payload']
    return p if isinstance(p, dict) else None


def first_streamed_sequence(na, nb):
    """source.sequence is [previous commit's LSN, LSN]; the previous commit
    is null in the first event a side streams after it started.  The two
    sides start at different moments (kafka_fdw's slot has already decoded
    its own bookkeeping transaction): in the events at the reference's
    first streamed LSN, where the reference has null, only the LSN is
    compared."""
    def streamed(ns):
        for n in ns:
            p = msg_payload(n)
            if p and p.get('op') in STREAMED and isinstance(p.get('source'), dict):
                yield p['source']
    firsts = [src for src in streamed(na)
              if isinstance(src.get('sequence'), str)
              and src['sequence'].startswith('[null,')]
    if not firsts:
        return
    lsn = min(src.get('lsn') or 0 for src in firsts)
    for ns in (na, nb):
        for src in streamed(ns):
            if src.get('lsn') == lsn and isinstance(src.get('sequence'), str):
                try:
                    src['sequence'] = [IGNORED, json.loads(src['sequence'])[1]]
                except (ValueError, TypeError, IndexError):
                    pass


def before_reference_started(na, nb):
    """On the transaction topic: the BEGIN/END pairs of event-less
    transactions the candidate's slot decoded before the reference's slot
    existed (kafka_fdw's own bookkeeping, committed before Debezium
    started) are left out."""
    def xid(n):
        p = msg_payload(n)
        try:
            return int(str(p['id']).split(':')[0])
        except (TypeError, KeyError, ValueError):
            return None
    ref = [x for x in map(xid, na) if x is not None]
    if not ref:
        return nb
    first = min(ref)
    empty = set()
    for n in nb:
        p = msg_payload(n)
        if p and p.get('status') == 'END' and p.get('event_count') == 0:
            empty.add(xid(n))
    return [n for n in nb
            if not (xid(n) is not None and xid(n) < first and xid(n) in empty)]


def normalise(msg, topic, prefix):
    """The message as compared: key, value, headers {name: [values]}, op,
    after the rules of DIFFERENCES."""
    key, value = parse(msg['key']), parse(msg['value'])
    pl = payload_of(value)
    op = pl.get('op') if isinstance(pl, dict) else None
    headers = {}
    for name, data in msg['headers']:
        v = None if data is None else data.decode('utf-8', 'replace')
        headers.setdefault(name, []).append(v)
    for r in rules_for(topic, op):
        kind = r['kind']
        if kind == 'prefix':
            for obj in (key, value):
                if isinstance(obj, dict) and 'schema' in obj:
                    schema_names(obj['schema'], prefix)
            for h in r.get('headers', []):
                if h in headers:
                    headers[h] = [replace_prefix(v, prefix) for v in headers[h]]
        elif kind == 'header':
            for h in r['headers']:
                if h in headers:
                    headers[h] = [IGNORED]
        for p in r.get('paths', []) if kind in ('prefix', 'ignore', 'json', 'collections', 'nullarray') else []:
            for parent, k in list(path_items(pl, p.split('.'))):
                if kind == 'prefix':
                    parent[k] = replace_prefix(parent[k], prefix)
                elif kind == 'ignore':
                    parent[k] = IGNORED
                elif kind == 'nullarray' and isinstance(parent[k], list) and any(
                        e is None or e in ('NaN', 'NAN') for e in parent[k]):
                    parent[k] = None
                elif kind == 'collections' and isinstance(parent[k], list):
                    parent[k] = sorted_collections(parent[k])
                elif kind == 'json' and isinstance(parent[k], str):
                    try:
                        parent[k] = {'<parsed JSON>': json.loads(parent[k])}
                    except ValueError:
                        pass
    return {'key': key, 'value': value, 'headers': headers, 'op': op,
            'partition': msg['partition'], 'offset': msg['offset'],
            'raw_key': msg['key'], 'partitions': msg['partitions']}


def sorted_collections(entries):
    """data_collections sorted by name, logical messages' entries last."""
    out = []
    for e in entries:
        e = dict(e) if isinstance(e, dict) else {'<entry>': e}
        name = e.get('data_collection')
        if not isinstance(name, str) or '.' not in name or '@' in name:
            e['data_collection'] = '<logical message>'
        out.append(e)
    return sorted(out, key=lambda e: (e['data_collection'] == '<logical message>',
                                      canonical(e)))


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(',', ':'))


def group_key(n):
    return canonical(payload_of(n['key']))


# ------------------------------------------------------------- diffing

def same(a, b):
    """Equal as JSON values, numbers of one kind (1 and 1.0 differ)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return type(a) is type(b) and (a == b or (a != a and b != b))
    return a == b


def field_list(x):
    return (isinstance(x, list) and x and
            all(isinstance(e, dict) and 'field' in e for e in x))


def diff(a, b, path, out):
    """Append (path, a, b) for every difference of two JSON values."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            diff(a.get(k, ABSENT), b.get(k, ABSENT), path + [k], out)
    elif field_list(a) and field_list(b):
        # a Connect schema's fields: by name, then their order
        fa = {e['field']: e for e in a}
        fb = {e['field']: e for e in b}
        for k in list(fa) + [k for k in fb if k not in fa]:
            diff(fa.get(k, ABSENT), fb.get(k, ABSENT), path + ['[%s]' % k], out)
        oa = [e['field'] for e in a if e['field'] in fb]
        ob = [e['field'] for e in b if e['field'] in fa]
        if oa != ob:
            out.append((path + ['(field order)'], oa, ob))
    elif isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            diff(a[i] if i < len(a) else ABSENT, b[i] if i < len(b) else ABSENT,
                 path + ['[%d]' % i], out)
    elif not same(a, b):
        out.append((path, a, b))


class Absent:
    def __repr__(self):
        return '<absent>'


ABSENT = Absent()


def show(v):
    s = repr(v) if v is ABSENT else json.dumps(v, sort_keys=True)
    return s if len(s) <= MAX_VALUE else s[:MAX_VALUE - 3] + '...'


def path_text(path):
    s = ''
    for p in path:
        s += p if p.startswith('[') or p.startswith('(') or not s else '.' + p
    return s or '(whole)'


def path_pattern(path):
    """A path without the list positions, to count differences by place."""
    return path_text([('[]' if p[1:-1].isdigit() else p) if p.startswith('[') else p
                      for p in path])


def compare_topic(topic, ref, cand, prefixes, labels, report):
    """Compare one topic's messages of both sides; report(topic, where,
    path, a, b, pattern) for each difference."""
    la, lb = labels
    if ref is None or cand is None:
        report(topic, 'topic', ['exists'], ref is not None, cand is not None,
               'topic exists')
        return
    na = [normalise(m, topic, prefixes[0]) for m in ref]
    nb = [normalise(m, topic, prefixes[1]) for m in cand]
    first_streamed_sequence(na, nb)
    if topic == 'transaction':
        nb = before_reference_started(na, nb)
    if len(na) != len(nb):
        report(topic, 'topic', ['count'], len(na), len(nb), 'message count')
    ga, gb = {}, {}
    for n in na:
        ga.setdefault(group_key(n), []).append(n)
    for n in nb:
        gb.setdefault(group_key(n), []).append(n)
    # keys on one side only: paired by first appearance, to show how they
    # differ
    only_a = [k for k in ga if k not in gb]
    only_b = [k for k in gb if k not in ga]
    pairs = [(k, k) for k in ga if k in gb] + list(zip(only_a, only_b))
    for k in only_a[len(only_b):]:
        report(topic, 'key=%s' % show(json.loads(k)), ['(messages)'],
               len(ga[k]), 0, 'key only on one side')
    for k in only_b[len(only_a):]:
        report(topic, 'key=%s' % show(json.loads(k)), ['(messages)'],
               0, len(gb[k]), 'key only on one side')
    colocated = {}
    for ka, kb in pairs:
        xa, xb = ga[ka], gb[kb]
        kshow = show(json.loads(ka))
        if ka != kb:
            report(topic, 'key=%s' % kshow, ['key (paired by appearance)'],
                   json.loads(ka), json.loads(kb), 'key')
        if len(xa) != len(xb):
            report(topic, 'key=%s' % kshow, ['(messages)'], len(xa), len(xb),
                   'messages per key')
        for i in range(min(len(xa), len(xb))):
            a, b = xa[i], xb[i]
            where = 'key=%s #%d (%s p%d@%d, %s p%d@%d)' % (
                kshow, i + 1, la, a['partition'], a['offset'],
                lb, b['partition'], b['offset'])
            out = []
            partition_diffs(topic, a, b, labels, out)
            diff_form(a['key'], b['key'], 'key', out)
            diff_form(a['value'], b['value'], 'value', out)
            diff(a['headers'], b['headers'], ['headers'], out)
            for path, va, vb in out:
                report(topic, where, path, va, vb, path_pattern(path))
            colocated.setdefault((a['partition'], b['partition']), []).append(
                (a['offset'], b['offset'], kshow, i))
    # the order within the partitions: any two messages that share a
    # partition on both sides are in the same order on both
    for (pa, pb), pl in sorted(colocated.items()):
        pl.sort()
        for j in range(1, len(pl)):
            if pl[j][1] < pl[j - 1][1]:
                report(topic, '%s p%d / %s p%d' % (la, pa, lb, pb), ['(order)'],
                       '%s #%d before %s #%d' % (pl[j - 1][2], pl[j - 1][3] + 1,
                                                 pl[j][2], pl[j][3] + 1),
                       'after', 'order in a partition')
                break


def schema_form(obj):
    return isinstance(obj, dict) and set(obj) == {'schema', 'payload'}


def diff_form(a, b, what, out):
    """Compare keys or values; when one is in the schema/payload form and
    the other not, say so once and compare the payloads."""
    if schema_form(a) != schema_form(b):
        out.append(([what + ' (form)'], 'schema/payload' if schema_form(a) else 'payload only',
                    'schema/payload' if schema_form(b) else 'payload only'))
        diff(payload_of(a), payload_of(b), [what + '.payload'], out)
    else:
        diff(a, b, [what], out)


def partition_diffs(topic, a, b, labels, out):
    """The partition rules: see DIFFERENCES, kinds partition and keyhash."""
    kinds = {r['kind'] for r in rules_for(topic, a['op'])}
    if a['raw_key'] is None and b['raw_key'] is None and 'partition' in kinds:
        return
    if a['raw_key'] == b['raw_key'] or 'keyhash' not in kinds or \
            a['raw_key'] is None or b['raw_key'] is None:
        if a['partition'] != b['partition']:
            out.append((['partition'], a['partition'], b['partition']))
        return
    ea = key_partition(a['raw_key'], a['partitions'])
    eb = key_partition(b['raw_key'], b['partitions'])
    if a['partition'] != ea or b['partition'] != eb:
        out.append((['partition (murmur2 of its key)'],
                    '%d (murmur2: %d)' % (a['partition'], ea),
                    '%d (murmur2: %d)' % (b['partition'], eb)))


def cmd_compare(args):
    global MAX_VALUE
    MAX_VALUE = args.max_value
    topics = [t for t in args.topics.split(',') if t]
    labels = args.labels.split(',')
    prefixes = (args.reference, args.candidate)
    ref = source_topics(args, ['%s.%s' % (args.reference, t) for t in topics])
    cand = source_topics(args, ['%s.%s' % (args.candidate, t) for t in topics])
    lines, by_place, by_topic = [], {}, {}

    def report(topic, where, path, a, b, pattern):
        lines.append('%s %s %s: %s=%s %s=%s' % (
            topic, where, path_text(path), labels[0], show(a), labels[1], show(b)))
        by_place[(topic, pattern)] = by_place.get((topic, pattern), 0) + 1
        by_topic[topic] = by_topic.get(topic, 0) + 1

    counts = []
    for t in topics:
        ra = ref['%s.%s' % (args.reference, t)]
        rb = cand['%s.%s' % (args.candidate, t)]
        counts.append('%s %s/%s' % (t, '-' if ra is None else len(ra),
                                    '-' if rb is None else len(rb)))
        compare_topic(t, ra, rb, prefixes, labels, report)
    for line in lines[:args.max_lines]:
        print(line)
    if len(lines) > args.max_lines:
        print('... %d more differences' % (len(lines) - args.max_lines))
    print('messages (%s/%s): %s' % (labels[0], labels[1], ', '.join(counts)))
    if lines:
        print('differences by place:')
        for (t, p), n in sorted(by_place.items()):
            print('  %6d  %s %s' % (n, t, p))
    print('%d differences (%s) in %d topics; not compared, as listed in '
          'compare.py: %d natural differences, %d Debezium defects' % (
              len(lines), ', '.join('%s %d' % kv for kv in sorted(by_topic.items()))
              or 'none', len(topics),
              sum(1 for r in DIFFERENCES if not r.get('defect')),
              sum(1 for r in DIFFERENCES if r.get('defect'))))
    return 1 if lines else 0


def brief(obj, schema):
    if not schema and isinstance(obj, dict) and set(obj) == {'schema', 'payload'}:
        return {'payload': obj['payload'], 'schema': '...'}
    return obj


def cmd_dump(args):
    labels = args.labels.split(',')
    ta = '%s.%s' % (args.reference, args.topic)
    tb = '%s.%s' % (args.candidate, args.topic)
    ref = source_topics(args, [ta])[ta] or []
    cand = source_topics(args, [tb])[tb] or []
    ga, gb, order = {}, {}, []
    for side, msgs, prefix in ((ga, ref, args.reference), (gb, cand, args.candidate)):
        for m in msgs:
            k = canonical(payload_of(parse(m['key'])))
            if k not in ga and k not in gb:
                order.append(k)
            side.setdefault(k, []).append(m)
    w = max(len(x) for x in labels)
    for k in order:
        print('=== key %s: %d/%d' % (k, len(ga.get(k, [])), len(gb.get(k, []))))
        xa, xb = ga.get(k, []), gb.get(k, [])
        for i in range(max(len(xa), len(xb))):
            for label, xs in ((labels[0], xa), (labels[1], xb)):
                if i >= len(xs):
                    print('%-*s #%d (none)' % (w, label, i + 1))
                    continue
                m = xs[i]
                hs = ' '.join('%s=%s' % (n, None if v is None else v.decode('utf-8', 'replace'))
                              for n, v in m['headers'])
                print('%-*s #%d p%d@%d key %s' % (
                    w, label, i + 1, m['partition'], m['offset'],
                    json.dumps(brief(parse(m['key']), args.schema), sort_keys=True)))
                print('%-*s    value %s' % (w, '', json.dumps(
                    brief(parse(m['value']), args.schema), sort_keys=True)))
                if hs:
                    print('%-*s    headers %s' % (w, '', hs))
    return 0


def cmd_topics(args):
    admin = AdminClient({'bootstrap.servers': args.bootstrap})
    md = admin.list_topics(timeout=30)
    new = []
    for spec in args.specs:
        name, parts = spec.rsplit(':', 1)
        if name not in md.topics:
            new.append(NewTopic(name, int(parts), args.rf))
    if not new:
        return 0
    for name, f in admin.create_topics(new, operation_timeout=60).items():
        try:
            f.result()
        except Exception as e:
            if 'TOPIC_ALREADY_EXISTS' not in str(e):
                raise SystemExit('could not create topic %s: %s' % (name, e))
    # wait until every topic has its leaders
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        md = admin.list_topics(timeout=30)
        if all(t.topic in md.topics and md.topics[t.topic].partitions and
               all(p.leader >= 0 for p in md.topics[t.topic].partitions.values())
               for t in new):
            return 0
        time.sleep(0.2)
    raise SystemExit('topics without leaders after 60 s')


def cmd_wait(args):
    topics = ['%s.%s' % (args.prefix, t) for t in args.topics.split(',') if t]
    if args.end:
        topics = ['%s.%s' % (args.prefix, args.end)]
    deadline = time.monotonic() + args.timeout
    while True:
        msgs = read_topics(args.bootstrap, topics)
        for t, ms in msgs.items():
            for m in ms or []:
                pl = payload_of(parse(m['value']))
                if not isinstance(pl, dict):
                    continue
                if args.snapshot_last and isinstance(pl.get('source'), dict) and \
                        pl['source'].get('snapshot') == 'last':
                    return 0
                if args.end and isinstance(pl.get('after'), dict) and \
                        str(pl['after'].get('id')) == '1':
                    return 0
        if time.monotonic() > deadline:
            print('%s: no %s after %d s (%s)' % (
                args.prefix, 'snapshot end' if args.snapshot_last else 'end marker',
                args.timeout, ', '.join('%s %s' % (t, '-' if m is None else len(m))
                                        for t, m in msgs.items())), file=sys.stderr)
            return 1
        time.sleep(0.5)


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)    # | head
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest='cmd', required=True)
    for name in ('compare', 'dump'):
        p = sub.add_parser(name)
        p.add_argument('--bootstrap')
        p.add_argument('--load', metavar='DIR',
                       help='read the messages that --save wrote, not Kafka')
        p.add_argument('--reference', required=True, help="Debezium's topic prefix")
        p.add_argument('--candidate', required=True, help="kafka_fdw's topic prefix")
        p.add_argument('--labels', default='debezium,kafka_fdw')
        if name == 'compare':
            p.add_argument('--topics', required=True)
            p.add_argument('--save', metavar='DIR',
                           help='also write the messages read to DIR')
            p.add_argument('--max-lines', type=int, default=400)
            p.add_argument('--max-value', type=int, default=MAX_VALUE)
        else:
            p.add_argument('--topic', required=True)
            p.add_argument('--schema', action='store_true')
    p = sub.add_parser('topics')
    p.add_argument('--bootstrap', required=True)
    p.add_argument('--rf', type=int, default=3)
    p.add_argument('specs', nargs='+')
    p = sub.add_parser('wait')
    p.add_argument('--bootstrap', required=True)
    p.add_argument('--prefix', required=True)
    p.add_argument('--topics', default='')
    p.add_argument('--snapshot-last', action='store_true')
    p.add_argument('--end')
    p.add_argument('--timeout', type=int, default=180)
    args = ap.parse_args()
    return {'compare': cmd_compare, 'dump': cmd_dump, 'topics': cmd_topics,
            'wait': cmd_wait}[args.cmd](args)


if __name__ == '__main__':
    sys.exit(main())
