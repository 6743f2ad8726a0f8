#!/usr/bin/python3
"""test/kafka/committed.py: a consumer group's committed offsets, as an
independent client (Debian's python3-confluent-kafka) reads them

  committed.py BOOTSTRAP GROUP TOPIC PARTITIONS

prints one line per partition: "partition P: OFFSET", or "partition P: none"
where the group has committed nothing.
"""

import sys

from confluent_kafka import Consumer, TopicPartition

bootstrap, group, topic, nparts = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
              "enable.auto.commit": False})
try:
    parts = c.committed([TopicPartition(topic, p) for p in range(nparts)],
                        timeout=30)
finally:
    c.close()
for tp in sorted(parts, key=lambda tp: tp.partition):
    if tp.error:
        sys.exit("committed.py: partition %d: %s" % (tp.partition, tp.error))
    print("partition %d: %s" % (tp.partition, tp.offset if tp.offset >= 0 else "none"))
