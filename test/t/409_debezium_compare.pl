# Copyright (c) kafka_fdw contributors

# kafka_fdw's change events side by side with the real Debezium's: the same
# database, the same publication, the same real Kafka cluster.  For each
# mode below (a set of Debezium options, given to the Debezium PostgreSQL
# connector and, by the same names, to cdc_create), in a fresh database:
# test/debezium/workload/schema.sql, then a Debezium connector (topic prefix
# dbz_<mode>) and a kafka_fdw stream (topic prefix kfdw_<mode>) both
# snapshot it; test/debezium/workload/changes.sql; once both have sent the
# end marker, test/debezium/compare.py compares every message of every
# topic (key, value, headers, partition, order).  One ok per mode; on a
# failure the differences are in diag, the whole list in
# tmp_check/compare_<mode>.txt, and both sides' messages in
# tmp_check/messages_<mode>/ (compare.py compare|dump --load that
# directory --reference dbz_<mode> --candidate kfdw_<mode> ...).
#
# KFDW_DBZ_MODES=default,noschema runs only the modes named.
# KFDW_DBZ_SELF=1 checks the harness: a second Debezium connector stands in
# for kafka_fdw (prefix kfdw_<mode>); every mode must then pass.

use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

plan skip_all => 'needs real Kafka (KFDW_TEST_KAFKA=real)'
  unless ($ENV{KFDW_TEST_KAFKA} // 'mock') eq 'real';

use KafkaTestBroker;
use KafkaFdwTest;
use KafkaDebezium;

# The modes: the options of each, Debezium's names and values.
# schemas.enable is the JsonConverter's (key. and value.converter. worker
# properties for Debezium); every other option is the connector's.
my @modes = (
	{ name => 'default', options => {} },
	{ name => 'noschema', options => { 'schemas.enable' => 'false' } },
	{
		name => 'connect',
		options => {
			'time.precision.mode' => 'connect',
			'decimal.handling.mode' => 'double',
			'binary.handling.mode' => 'base64',
			'interval.handling.mode' => 'string',
			'hstore.handling.mode' => 'map',
			'unavailable.value.placeholder' => 'custom text',
			'skipped.operations' => 'none',
			'tombstones.on.delete' => 'false',
		}
	},
	{
		name => 'isostring',
		options => {
			'time.precision.mode' => 'isostring',
			'decimal.handling.mode' => 'string',
			'binary.handling.mode' => 'hex',
			'provide.transaction.metadata' => 'true',
			'message.key.columns' => 'public.comp:v',
		}
	},
	{
		name => 'adaptive_us',
		options => {
			'time.precision.mode' => 'adaptive_time_microseconds',
			'binary.handling.mode' => 'base64-url-safe',
		}
	},
);
if ($ENV{KFDW_DBZ_MODES})
{
	my %want = map { $_ => 1 } split /,/, $ENV{KFDW_DBZ_MODES};
	@modes = grep { $want{ $_->{name} } } @modes;
}

# The tables of schema.sql, and the topics of a prefix: keyless tables get
# one partition (a null key's partition is the producer's random choice),
# the others three, so that partition choice is compared too
my @tables = qw(types defs toasty comp full_ri idx_ri uniq_ri uniq_only
  nokey nokey_full zz_end);
my %keyless = map { $_ => 1 } qw(uniq_only nokey nokey_full);
my @topics = ((map { "public.$_" } @tables), 'message', 'transaction');

# cdc_create's options: the same names; "true" and "false" as JSON booleans
sub kfdw_options
{
	my ($opts) = @_;
	my %o = map {
		my $v = $opts->{$_};
		($_ => $v eq 'true' ? JSON::PP::true : $v eq 'false' ? JSON::PP::false : $v)
	} keys %$opts;
	return JSON::PP->new->canonical->encode(\%o);
}

my $self_test = $ENV{KFDW_DBZ_SELF} ? 1 : 0;

my $broker = KafkaTestBroker->new(brokers => 3);
my $bootstrap = $broker->bootstrap;

my $node = kafka_fdw_node('dbz', cdc => 1,
	conf => [ "listen_addresses = '127.0.0.1'", 'max_replication_slots = 20',
			  'max_wal_senders = 20' ]);
# Debezium connects over TCP
$node->append_conf('pg_hba.conf',
	"host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n");
$node->reload;

sub slurp_file_of { my $f = shift; local $/; open(my $fh, '<', $f) or die "$f: $!"; return <$fh>; }
my $schema_sql = slurp_file_of(KafkaDebezium::workload('schema.sql'));
my $changes_sql = slurp_file_of(KafkaDebezium::workload('changes.sql'));

# Run one mode; returns (ok, diagnostics)
sub run_mode
{
	my ($mode) = @_;
	my $m = $mode->{name};
	my ($dbz_prefix, $kfdw_prefix, $db) = ("dbz_$m", "kfdw_$m", "dbz_$m");
	my %opts = %{ $mode->{options} };
	my @worker;
	if (defined(my $se = delete $opts{'schemas.enable'}))
	{
		@worker = ("key.converter.schemas.enable=$se",
			"value.converter.schemas.enable=$se");
	}
	my $t0 = time;

	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, qq{
CREATE EXTENSION kafka_fdw;
CREATE SERVER kfdw FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '$bootstrap');
CREATE USER MAPPING FOR PUBLIC SERVER kfdw;
});
	$node->safe_psql($db, $schema_sql);
	$node->safe_psql($db, 'CREATE PUBLICATION dbz_pub FOR ALL TABLES');

	my @specs;
	for my $p ($dbz_prefix, $kfdw_prefix)
	{
		push @specs, map { "$p.public.$_:" . ($keyless{$_} ? 1 : 3) } @tables;
		push @specs, "$p.message:3", "$p.transaction:3";
	}
	my ($rc, $out, $err) = KafkaDebezium::compare_py('topics', '--bootstrap', $bootstrap, @specs);
	return (0, "could not create the topics: $err$out") if $rc != 0;

	my @dbz;
	my $start = sub {
		my ($prefix) = @_;
		my $d = eval {
			KafkaDebezium->start(
				name => $prefix,
				bootstrap => $bootstrap,
				connector => {
					KafkaDebezium::postgres_connector($node, $prefix,
						dbname => $db, publication => 'dbz_pub'),
					%opts,
				},
				worker => \@worker);
		};
		die "Debezium did not start: $@" unless $d;
		push @dbz, $d;
	};

	my ($ok, $diag) = (0, '');
	my $stream = 0;
	eval {
		if ($self_test)
		{
			# the candidate is a second Debezium connector
			$start->($dbz_prefix);
			$start->($kfdw_prefix);
		}
		else
		{
			# kafka_fdw first, Debezium once kafka_fdw's snapshot is done:
			# both slots then begin after the transactions of cdc_create
			# and of the stream's own bookkeeping, which a slot created
			# before them would show as empty BEGIN/END pairs
			my $options = kfdw_options($mode->{options});
			my ($prc, $pout, $perr) = $node->psql($db,
				"SELECT kafka_fdw.cdc_create('$kfdw_prefix', 'kfdw', 'dbz_pub', '$kfdw_prefix', "
				  . "snapshot => true, options => '$options'::jsonb)");
			die "cdc_create with options $options failed: $perr\n" if $prc != 0;
			$stream = 1;
			$node->poll_query_until($db,
				"SELECT snapshot_done FROM kafka_fdw.cdc_status WHERE name = '$kfdw_prefix'")
			  or die "kafka_fdw's snapshot did not finish: "
			  . $node->safe_psql($db, "SELECT row_to_json(s) FROM kafka_fdw.cdc_status s") . "\n";
			$start->($dbz_prefix);
		}

		# both have snapshotted
		for my $p ($self_test ? ($dbz_prefix, $kfdw_prefix) : ($dbz_prefix))
		{
			($rc, $out, $err) = KafkaDebezium::compare_py('wait', '--bootstrap', $bootstrap,
				'--prefix', $p, '--topics', join(',', @topics),
				'--snapshot-last', '--timeout', 180);
			die "Debezium's snapshot ($p): $err$out\n" if $rc != 0;
		}
		$node->poll_query_until($db,
			"SELECT snapshot_done FROM kafka_fdw.cdc_status WHERE name = '$kfdw_prefix'")
		  or die "kafka_fdw's snapshot did not finish: "
		  . $node->safe_psql($db, "SELECT row_to_json(s) FROM kafka_fdw.cdc_status s") . "\n"
		  if $stream;
		my $t_snap = time;

		$node->safe_psql($db, $changes_sql);

		# both have sent the end marker
		for my $p ($dbz_prefix, $kfdw_prefix)
		{
			($rc, $out, $err) = KafkaDebezium::compare_py('wait', '--bootstrap', $bootstrap,
				'--prefix', $p, '--end', 'public.zz_end', '--timeout', 180);
			die "$p: $err$out\n" if $rc != 0;
		}
		my $t_end = time;

		my $file = "$PostgreSQL::Test::Utils::tmp_check/compare_$m.txt";
		($rc, $out, $err) = KafkaDebezium::compare_py('compare', '--bootstrap', $bootstrap,
			'--reference', $dbz_prefix, '--candidate', $kfdw_prefix,
			'--topics', join(',', @topics), '--max-lines', 1000000,
			'--save', "$PostgreSQL::Test::Utils::tmp_check/messages_$m");
		open(my $fh, '>', $file) or die "$file: $!";
		print $fh $out, $err;
		close($fh);
		note sprintf('mode %s: snapshots %.1f s, changes streamed %.1f s, compared %.1f s',
			$m, $t_snap - $t0, $t_end - $t_snap, time - $t_end);
		if ($rc == 0)
		{
			$ok = 1;
		}
		else
		{
			# the first differences, then the summary
			my @lines = split /\n/, $out;
			my ($summary) = grep { $lines[$_] =~ /^messages \(/ } 0 .. $#lines;
			$summary //= $#lines;
			my $head = $summary < 60 ? $summary : 60;
			$diag = join("\n", @lines[ 0 .. $head - 1 ],
				($summary > $head ? sprintf('... (%d more in %s)', $summary - $head, $file) : ()),
				@lines[ $summary .. $#lines ]) . "\n$err";
		}
	};
	$diag = $@ if $@;

	# leave nothing of this mode running
	$_->stop for @dbz;
	$node->psql($db, "SELECT kafka_fdw.cdc_drop('$kfdw_prefix')") if $stream;
	$node->psql('postgres',
		"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
		  . "WHERE slot_name IN ('$dbz_prefix', '$kfdw_prefix') AND NOT active");
	$diag .= "\nDebezium's log: " . join(', ', map { $_->log } @dbz) . "\n"
	  unless $ok;
	return ($ok, $diag);
}

for my $mode (@modes)
{
	my ($ok, $diag) = run_mode($mode);
	ok($ok, "mode $mode->{name}: "
		  . ($self_test ? "a second Debezium's" : "kafka_fdw's")
		  . " events equal Debezium's "
		  . kfdw_options($mode->{options}))
	  or diag $diag;
}

done_testing();
