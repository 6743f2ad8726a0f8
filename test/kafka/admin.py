#!/usr/bin/python3
"""test/kafka/admin.py: admin requests to a test Kafka cluster (used by test/kafka.sh)

Runs with Debian's python3-confluent-kafka, through Kafka's admin API:

  admin.py BOOTSTRAP wait BROKERS TIMEOUT_S
      wait until the cluster shows BROKERS brokers and can create topics
  admin.py BOOTSTRAP serving ID TIMEOUT_S
      wait until broker ID (1..N, the ID-th address of BOOTSTRAP) answers
      requests itself and is in the cluster's metadata (after a restart)
  admin.py BOOTSTRAP topic NAME PARTITIONS RF [CONFIG=VALUE ...]
      create a topic and wait until every partition has a leader
      (RF 0: min(3, number of brokers))
  admin.py BOOTSTRAP drop NAME
      delete a topic if it exists and wait until it is gone

Exits non-zero with a message on stderr when a request fails.
"""

import sys
import time

from confluent_kafka.admin import AdminClient, NewTopic


def fail(msg):
    sys.stderr.write("admin.py: %s\n" % msg)
    sys.exit(1)


def wait_brokers(admin, want, timeout):
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        try:
            md = admin.list_topics(timeout=2)
            seen = len(md.brokers)
            if seen >= want and md.controller_id >= 0:
                return
        except Exception:  # the cluster is still starting
            pass
        time.sleep(0.2)
    fail("the cluster showed %d of %d brokers after %d s" % (seen, want, timeout))


def wait_serving(bootstrap, node, timeout):
    address = bootstrap.split(",")[node - 1]
    one = AdminClient({"bootstrap.servers": address, "log_level": 0,
                       "socket.connection.setup.timeout.ms": 2000})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            md = one.list_topics(timeout=2)
            if node in md.brokers and md.controller_id >= 0:
                return
        except Exception:  # not listening yet
            pass
        time.sleep(0.2)
    fail("broker %d (%s) did not answer within %d s" % (node, address, timeout))


def topic_ready(md, name, partitions):
    t = md.topics.get(name)
    return t is not None and t.error is None and len(t.partitions) == partitions \
        and all(p.leader >= 0 for p in t.partitions.values())


# Each broker learns of a topic from the controller on its own time: wait
# until every live broker, asked itself, shows every partition with a
# leader, so that a client bootstrapping from any of them sees the topic.
def wait_leaders(admin, name, partitions, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        md = admin.list_topics(topic=name, timeout=5)
        if topic_ready(md, name, partitions) and \
                all(broker_sees(b, lambda m: topic_ready(m, name, partitions))
                    for b in md.brokers.values()):
            return
        time.sleep(0.1)
    fail("topic %s has no leader for every partition after %d s" % (name, timeout))


def broker_sees(broker, ready):
    one = AdminClient({"bootstrap.servers": "%s:%d" % (broker.host, broker.port),
                       "log_level": 0, "socket.connection.setup.timeout.ms": 2000})
    try:
        return ready(one.list_topics(timeout=2))
    except Exception:  # gone in the meantime: the next round asks again
        return False


def create_topic(admin, name, partitions, rf, configs):
    fs = admin.create_topics([NewTopic(name, num_partitions=partitions,
                                       replication_factor=rf, config=configs)],
                             operation_timeout=30)
    for _, f in fs.items():
        try:
            f.result()
        except Exception as e:
            fail("could not create topic %s: %s" % (name, e))
    wait_leaders(admin, name, partitions)


def drop_topic(admin, name, timeout=60):
    if name not in admin.list_topics(timeout=10).topics:
        return
    for _, f in admin.delete_topics([name], operation_timeout=30).items():
        try:
            f.result()
        except Exception as e:
            fail("could not delete topic %s: %s" % (name, e))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        md = admin.list_topics(timeout=5)
        if name not in md.topics and \
                all(broker_sees(b, lambda m: name not in m.topics)
                    for b in md.brokers.values()):
            return
        time.sleep(0.2)
    fail("topic %s is still there after %d s" % (name, timeout))


def main():
    if len(sys.argv) < 3:
        fail("usage: admin.py BOOTSTRAP COMMAND ARGS...")
    bootstrap, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0,
                         "socket.connection.setup.timeout.ms": 5000})
    if cmd == "wait":
        wait_brokers(admin, int(args[0]), int(args[1]))
    elif cmd == "serving":
        wait_serving(bootstrap, int(args[0]), int(args[1]))
    elif cmd == "topic":
        configs = dict(a.split("=", 1) for a in args[3:])
        rf = int(args[2])
        if rf == 0:
            rf = min(3, len(admin.list_topics(timeout=10).brokers))
        create_topic(admin, args[0], int(args[1]), rf, configs)
    elif cmd == "drop":
        drop_topic(admin, args[0])
    else:
        fail("unknown command %s" % cmd)


if __name__ == "__main__":
    main()
