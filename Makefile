# kafka_fdw: PostgreSQL foreign data wrapper and change data capture for Kafka
#
# Build and install with PGXS:   make && make install
# Test an installed server:      make installcheck KAFKA_BROKERS=host:port
#                                make prove_installcheck [KFDW_TEST_KAFKA=real]
# Run every test (see README):   test/run_tests.sh
#
# Paths go through $(srcdir), so that VPATH builds work too: Debian's
# pg_buildext builds in build-15/ with "make -f ../Makefile VPATH=..", and
# test/run_tests.sh runs the suites from directories of its own.

EXTENSION = kafka_fdw
EXTVERSION = 1.0
MODULE_big = kafka_fdw
OBJS = $(patsubst $(srcdir)/%.c,%.o,$(sort $(wildcard $(srcdir)/src/*.c $(srcdir)/src/*/*.c)))

# The install script is assembled from one part per feature (src/sql/NN_*.sql),
# so that each feature owns the SQL objects it defines.
DATA_built = $(EXTENSION)--$(EXTVERSION).sql
EXTRA_CLEAN = $(EXTENSION)--$(EXTVERSION).sql test/kafka_test_broker

# pg_regress (make installcheck): one sql/<feature>.sql per feature,
# expected/<feature>.out.  They need a Kafka cluster in KAFKA_BROKERS that
# has the topics of test/regress_topics.txt, freshly created.
REGRESS = $(sort $(basename $(notdir $(wildcard $(srcdir)/sql/*.sql))))
REGRESS_OPTS = --load-extension=$(EXTENSION)
REGRESS_PREP = kafka-brokers-given

# TAP (make prove_installcheck, and make installcheck after pg_regress):
# test/t/*.pl with the helpers of test/perl.  Each test starts its own
# clusters and brokers: the embedded broker (make test-broker) or, with
# KFDW_TEST_KAFKA=real, Apache Kafka from test/kafka.sh.  prove runs in
# $(srcdir); PROVE_TESTS=test/t/001_broker.pl picks tests.
TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

PG_CPPFLAGS = -I$(srcdir)/src
SHLIB_LINK = -lrdkafka

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# after PGXS, which sets PG_PROVE_FLAGS; PROVE_FLAGS stays the user's
PG_PROVE_FLAGS += -I $(abspath $(srcdir))/test/perl

$(EXTENSION)--$(EXTVERSION).sql: $(sort $(wildcard $(srcdir)/src/sql/*.sql))
	cat $^ > $@

# A VPATH build starts without the object files' directories.
ifneq ($(abspath $(srcdir)),$(CURDIR))
$(OBJS): | kafka-fdw-objdirs
.PHONY: kafka-fdw-objdirs
kafka-fdw-objdirs:
	@$(MKDIR_P) $(sort $(dir $(OBJS)))
endif

.PHONY: prove_installcheck kafka-brokers-given
prove_installcheck:
	$(prove_installcheck)

kafka-brokers-given:
	@if [ -z "$$KAFKA_BROKERS" ]; then \
		echo 'make installcheck: set KAFKA_BROKERS=host:port,... to a Kafka cluster with the topics of test/regress_topics.txt (README: "Tests with PGXS")' >&2; \
		exit 1; \
	fi

# The embedded Kafka broker used by the tests and the demo (librdkafka's mock cluster)
test/kafka_test_broker: test/kafka_test_broker.c
	@$(MKDIR_P) $(@D)
	$(CC) -O2 -Wall -Werror -o $@ $< -lrdkafka -lpthread

.PHONY: test-broker
test-broker: test/kafka_test_broker
