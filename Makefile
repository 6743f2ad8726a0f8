# kafka_fdw: PostgreSQL foreign data wrapper and change data capture for Kafka
#
# Build and install with PGXS:   make && make install
# Run every test (see README):   test/run_tests.sh

EXTENSION = kafka_fdw
EXTVERSION = 1.0
MODULE_big = kafka_fdw
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c src/*/*.c)))

# The install script is assembled from one part per feature (src/sql/NN_*.sql),
# so that each feature owns the SQL objects it defines.
DATA_built = $(EXTENSION)--$(EXTVERSION).sql
EXTRA_CLEAN = $(EXTENSION)--$(EXTVERSION).sql test/kafka_test_broker

# pg_regress: one sql/<feature>.sql per feature, expected/<feature>.out
REGRESS = $(sort $(basename $(notdir $(wildcard sql/*.sql))))
REGRESS_OPTS = --load-extension=$(EXTENSION)

PG_CPPFLAGS = -I$(srcdir)/src
SHLIB_LINK = -lrdkafka

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(EXTENSION)--$(EXTVERSION).sql: $(sort $(wildcard src/sql/*.sql))
	cat $^ > $@

# The embedded Kafka broker used by the tests and the demo (librdkafka's mock cluster)
test/kafka_test_broker: test/kafka_test_broker.c
	$(CC) -O2 -Wall -Werror -o $@ $< -lrdkafka -lpthread

.PHONY: test-broker
test-broker: test/kafka_test_broker
