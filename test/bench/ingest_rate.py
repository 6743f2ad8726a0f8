#!/usr/bin/python3
#
# test/bench/ingest_rate.py: the steady producer of test/bench/ingest.sh's
# latency figure, an independent client (confluent-kafka)
#
#   ingest_rate.py BROKERS TOPIC RATE SECONDS FIRST_ID
#       produces RATE messages a second for SECONDS seconds (paced against
#       the clock, not by sleeping a fixed time per message), values
#       {"id": N, "customer_id": .., "amount": .., "note": ".."} with N from
#       FIRST_ID on, keyed by N, librdkafka's defaults otherwise (the
#       message timestamp is its CreateTime, taken when produce() is
#       called); waits for every delivery and prints
#         "sent=N seconds=S rate=R"
#       (exit status 1 if a delivery failed).
#
# IDENTIFICATION
#		  test/bench/ingest_rate.py

import sys
import time

from confluent_kafka import Producer


def main(argv):
    if len(argv) != 6:
        sys.exit("usage: ingest_rate.py BROKERS TOPIC RATE SECONDS FIRST_ID")
    brokers, topic = argv[1], argv[2]
    rate, seconds, first = float(argv[3]), float(argv[4]), int(argv[5])
    failed = []

    def report(err, msg):
        if err is not None:
            failed.append(str(err))

    p = Producer({"bootstrap.servers": brokers})
    n = int(rate * seconds)
    t0 = time.time()
    for i in range(n):
        due = t0 + i / rate
        while True:
            now = time.time()
            if now >= due:
                break
            p.poll(min(due - now, 0.005))
        k = first + i
        value = ('{"id":%d,"customer_id":%d,"amount":%.2f,"note":"bench order %d"}'
                 % (k, k % 1000, (k * 7919 % 100000) / 100.0, k))
        while True:
            try:
                p.produce(topic, value=value.encode(), key=str(k).encode(),
                          on_delivery=report)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    elapsed = time.time() - t0
    if p.flush(60) != 0:
        failed.append("messages not delivered in time")
    if failed:
        sys.exit("delivery failed: " + "; ".join(failed[:3]))
    print("sent=%d seconds=%.2f rate=%.0f" % (n, elapsed, n / elapsed))


if __name__ == "__main__":
    main(sys.argv)
