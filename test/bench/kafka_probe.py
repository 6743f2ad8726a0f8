#!/usr/bin/python3
#
# test/bench/kafka_probe.py: the Kafka side of test/bench.sh, as an
# independent client (confluent-kafka, on the same librdkafka as kcat)
#
#   kafka_probe.py watermarks BROKERS TOPIC
#       prints "PARTITIONS LOW_SUM HIGH_SUM MAX_LOW": the topic's size as the
#       brokers see it (HIGH_SUM counts every message ever appended, whatever
#       retention dropped since; MAX_LOW > 0 means retention dropped some)
#
#   kafka_probe.py latency BROKERS TOPIC COUNT TIMEOUT_S READY_FILE
#       tails TOPIC from its end (writes READY_FILE once it is fetching
#       there), reads COUNT Debezium events or until TIMEOUT_S
#       without a message, and prints one line of figures in milliseconds:
#         "n=N create_p50=.. create_p99=.. create_max=..
#          seen_p50=.. seen_p99=.. seen_max=.."
#       create_*: message timestamp (CreateTime, set by the producer when the
#       worker hands the message to librdkafka) minus source.ts_ms (commit);
#       seen_*: the moment this consumer received the message minus
#       source.ts_ms: the message was appended and acknowledged by then, so
#       this bounds commit-to-append latency from above.  Every event is
#       also written to READY_FILE.events: "partition offset commit_ms
#       create_ms received_ms".
#
# IDENTIFICATION
#		  test/bench/kafka_probe.py

import json
import sys
import time

from confluent_kafka import Consumer, TopicPartition


def consumer(brokers, **extra):
    conf = {
        "bootstrap.servers": brokers,
        "group.id": "kafka_fdw_bench",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    }
    conf.update(extra)
    return Consumer(conf)


def partitions(c, topic):
    md = c.list_topics(topic, timeout=10)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        sys.exit("topic %s: %s" % (topic, t.error if t else "missing"))
    return sorted(t.partitions)


def watermarks(brokers, topic):
    c = consumer(brokers)
    low_sum = high_sum = max_low = 0
    parts = partitions(c, topic)
    for p in parts:
        low, high = c.get_watermark_offsets(TopicPartition(topic, p),
                                            timeout=10, cached=False)
        low_sum += low
        high_sum += high
        max_low = max(max_low, low)
    c.close()
    print(len(parts), low_sum, high_sum, max_low)


def pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    i = min(len(values) - 1, max(0, int(round(q / 100.0 * len(values) + 0.5)) - 1))
    return values[i]


def latency(brokers, topic, count, timeout_s, ready_file):
    c = consumer(brokers, **{"fetch.wait.max.ms": 5, "fetch.min.bytes": 1})
    parts = partitions(c, topic)
    # start at the current ends, named explicitly so that nothing appended
    # from now on is missed, and poll a moment so that fetching has started
    # (broker connections up) before the load begins
    starts = []
    for p in parts:
        _, high = c.get_watermark_offsets(TopicPartition(topic, p),
                                          timeout=10, cached=False)
        starts.append(TopicPartition(topic, p, high))
    c.assign(starts)
    warm_until = time.time() + 1.0
    while time.time() < warm_until:
        c.poll(0.05)
    with open(ready_file, "w") as f:
        f.write("ready\n")

    created = []
    seen = []
    dump = open(ready_file + ".events", "w")
    last = time.time()
    while len(seen) < count and time.time() - last < timeout_s:
        m = c.poll(0.01)
        now_ms = time.time() * 1000.0
        if m is not None and not m.error() and m.value() is not None:
            last = time.time()
            event = json.loads(m.value())
            # the default schema/payload form, or the payload alone
            if "payload" in event and "schema" in event:
                event = event["payload"]
            commit_ms = event["source"]["ts_ms"]
            _, create_ms = m.timestamp()
            created.append(create_ms - commit_ms)
            seen.append(now_ms - commit_ms)
            dump.write("%d %d %d %d %.1f\n" % (m.partition(), m.offset(),
                                              commit_ms, create_ms, now_ms))
    dump.close()
    c.close()
    print("n=%d create_p50=%.1f create_p99=%.1f create_max=%.1f "
          "seen_p50=%.1f seen_p99=%.1f seen_max=%.1f" %
          (len(seen), pct(created, 50), pct(created, 99),
           max(created) if created else float("nan"),
           pct(seen, 50), pct(seen, 99), max(seen) if seen else float("nan")))


def main(argv):
    if len(argv) == 4 and argv[1] == "watermarks":
        watermarks(argv[2], argv[3])
    elif len(argv) == 7 and argv[1] == "latency":
        latency(argv[2], argv[3], int(argv[4]), float(argv[5]), argv[6])
    else:
        sys.exit("usage: kafka_probe.py watermarks BROKERS TOPIC\n"
                 "       kafka_probe.py latency BROKERS TOPIC COUNT TIMEOUT_S READY_FILE")


if __name__ == "__main__":
    main(sys.argv)
