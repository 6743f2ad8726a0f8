
# Copyright (c) kafka_fdw contributors

=pod

=head1 NAME

KafkaFdwTest - the setup that kafka_fdw's TAP tests share

=head1 SYNOPSIS

  use KafkaTestBroker;
  use KafkaFdwTest;

  my $broker = KafkaTestBroker->new(topics => { t1 => 1 });

  # a started node with CREATE EXTENSION kafka_fdw done
  my $node = kafka_fdw_node('scan');
  # wal_level logical, kafka_fdw preloaded, room for CDC workers
  my $cdc = kafka_fdw_node('cdc', cdc => 1,
                           conf => [ "restart_after_crash = on" ]);

  # CREATE SERVER k ... OPTIONS (brokers '<the broker>', ...)
  create_kafka_server($node, $broker, 'k',
                      options => { connect_timeout_ms => 2000 },
                      user_mapping => 1);

  ok(poll_until(sub { $broker->consume('t1') == 3 }, 120), 'three messages');

  # a change event, read through its {"schema": ..., "payload": ...} form
  my $v = cdc_payload($msg->{payload});     # {before, after, source, op, ...}
  my $k = cdc_key($msg->{key});             # '{"id":1}', as written

=head1 DESCRIPTION

Every TAP test starts its own node and broker; these functions only spare
each test from spelling out the same setup.  Each test stays independent.

=cut

package KafkaFdwTest;

use strict;
use warnings;

use Carp;
use Exporter 'import';
use JSON::PP;
use PostgreSQL::Test::Cluster;
use Time::HiRes qw(time usleep);

our @EXPORT =
  qw(kafka_fdw_node create_kafka_server poll_until cdc_payload cdc_key
  ingest_status ingest_compare);

=pod

=head1 FUNCTIONS

=over

=item kafka_fdw_node(NAME, cdc => BOOL, conf => [ LINES ])

Initialises and starts a PostgreSQL::Test::Cluster node named NAME and
creates the extension kafka_fdw in database postgres.  With C<cdc>, the node
has wal_level logical, kafka_fdw in shared_preload_libraries and
max_worker_processes 16.  C<conf> lines are appended to postgresql.conf.

=cut

sub kafka_fdw_node
{
	my ($name, %opts) = @_;
	my @conf = @{ $opts{conf} // [] };

	my $node = PostgreSQL::Test::Cluster->new($name);
	if ($opts{cdc})
	{
		$node->init(allows_streaming => 'logical');
		unshift @conf, "shared_preload_libraries = 'kafka_fdw'",
		  'max_worker_processes = 16';
	}
	else
	{
		$node->init;
	}
	$node->append_conf('postgresql.conf', join('', map { "$_\n" } @conf))
	  if @conf;
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION kafka_fdw');
	return $node;
}

=pod

=item create_kafka_server(NODE, BROKER, NAME, options => { ... }, user_mapping => BOOL)

Creates the foreign server NAME for the KafkaTestBroker BROKER (option
brokers is its bootstrap address) with the further server C<options>, and
with C<user_mapping> a user mapping for PUBLIC.

=cut

sub create_kafka_server
{
	my ($node, $broker, $name, %args) = @_;
	my %options = (%{ $args{options} // {} }, brokers => $broker->bootstrap);
	my $quote = sub { my $s = shift; $s =~ s/'/''/g; return "'$s'" };

	# brokers first, the others in name order
	my @names = ('brokers', sort grep { $_ ne 'brokers' } keys %options);
	my $sql = sprintf("CREATE SERVER \"%s\" FOREIGN DATA WRAPPER kafka_fdw OPTIONS (%s);\n",
		$name,
		join(', ', map { qq{"$_" } . $quote->($options{$_}) } @names));
	$sql .= qq{CREATE USER MAPPING FOR PUBLIC SERVER "$name";\n}
	  if $args{user_mapping};
	$node->safe_psql('postgres', $sql);
	return;
}

=pod

=item poll_until(CHECK, SECONDS)

Calls CHECK every 100 ms until it returns true (then returns 1) or SECONDS
(default 60) have passed (then returns 0).  For conditions outside
PostgreSQL; use poll_query_until for a query.

=cut

sub poll_until
{
	my ($check, $seconds) = @_;
	my $deadline = time + ($seconds // 60);
	while (time < $deadline)
	{
		return 1 if $check->();
		usleep(100_000);
	}
	return 0;
}

=pod

=item cdc_payload(TEXT)

Decodes the key or value of a message that a CDC stream wrote in its
default form, Kafka Connect's JSON converter with schemas.enable=true:
C<{"schema": {...}, "payload": ...}>, and returns the payload (undef for
undef: a null key or a tombstone).  Dies if TEXT is not exactly that form
(two fields, a schema of type struct with a name), so that a test reading
its events through it also checks that they are in it.

=cut

my $cdc_json = JSON::PP->new->utf8;

sub cdc_payload
{
	my ($text) = @_;
	return undef unless defined $text;
	my $msg = $cdc_json->decode($text);
	croak "not a {schema, payload} message: $text"
	  unless ref $msg eq 'HASH'
	  && join(',', sort keys %$msg) eq 'payload,schema'
	  && ref $msg->{schema} eq 'HASH'
	  && ($msg->{schema}{type} // '') eq 'struct'
	  && defined $msg->{schema}{name};
	return $msg->{payload};
}

=pod

=item cdc_key(TEXT)

The payload of a change event's key (see cdc_payload) as the JSON text the
stream wrote, fields in the table's order: C<{"id":1}>; undef for a null
key.

=back

=cut

sub cdc_key
{
	my ($text) = @_;
	return undef unless defined $text;
	cdc_payload($text);
	my ($payload) = $text =~ /,"payload":(\{.*\})\}\z/s
	  or croak "key without its payload last: $text";
	return $payload;
}

=pod

=head2 Ingest streams

=over

=item ingest_status(NODE, NAME)

The row of kafka_fdw.ingest_status for stream NAME as a hashref (column =>
value, NULL as undef, worker_pids as an arrayref), or undef when the query
fails (the server restarting) or the stream does not exist.

=cut

sub ingest_status
{
	my ($node, $name) = @_;
	(my $lit = $name) =~ s/'/''/g;
	my ($rc, $out) = eval {
		$node->psql('postgres', qq{
SELECT row_to_json(s) FROM kafka_fdw.ingest_status s WHERE name = '$lit'});
	};
	return undef if !defined $rc || $rc != 0 || $out eq '';
	my $row = JSON::PP->new->utf8(0)->decode($out);
	return $row;
}

=pod

=item ingest_compare(WHAT, POSITIONS, [ NODE, TABLE ], ...)

Checks with Test::More that the TABLEs (each with the columns part, off and
k: a message's partition, offset and key), taken together, hold every
message of POSITIONS (what KafkaTestBroker's ingest_positions read from the
topic) exactly once: as many rows as messages, no (part, off) twice, none
missing, none that is not in the topic, each row with its message's key, and
as many rows per key as the topic has messages per key.  Returns true if
every check passed.

=back

=cut

sub ingest_compare
{
	my ($what, $positions, @targets) = @_;
	my (%seen, %rows_per_key, $rows);
	my (@dups, @strange, @wrong_key);
	for my $t (@targets)
	{
		my ($node, $table) = @$t;
		for my $line (split /\n/,
			$node->safe_psql('postgres', "SELECT part, off, k FROM $table"))
		{
			my ($p, $o, $k) = split /\|/, $line, 3;
			my $po = "$p:$o";
			$rows++;
			$rows_per_key{$k}++;
			push @dups, $po if $seen{$po}++ == 1;
			if (!exists $positions->{$po}) { push @strange, $po; }
			elsif ($positions->{$po} ne $k) { push @wrong_key, $po; }
		}
	}
	my %want_per_key;
	$want_per_key{$_}++ for values %$positions;
	my @missing = grep { !$seen{$_} } keys %$positions;
	my @key_diff = grep { ($rows_per_key{$_} // 0) != ($want_per_key{$_} // 0) }
	  keys %{ { %want_per_key, %rows_per_key } };
	my $total = keys %$positions;
	my $ok = 1;
	my $eg = sub { my @l = @_; return join(' ', @l[ 0 .. ($#l < 4 ? $#l : 4) ]) };
	Test::More::is($rows // 0, $total,
		"$what: as many rows as messages in the topic ($total)")
	  or $ok = 0;
	Test::More::is(scalar @dups, 0, "$what: no message twice")
	  or $ok = 0, Test::More::diag('e.g. partition:offset ' . $eg->(@dups));
	Test::More::is(scalar @missing, 0, "$what: no message missing")
	  or $ok = 0, Test::More::diag('e.g. partition:offset ' . $eg->(sort @missing));
	Test::More::is(scalar @strange, 0,
		"$what: no row for a message that is not in the topic")
	  or $ok = 0, Test::More::diag('e.g. ' . $eg->(@strange));
	Test::More::is(scalar @wrong_key, 0, "$what: each row has its message's key")
	  or $ok = 0, Test::More::diag('e.g. ' . $eg->(@wrong_key));
	Test::More::is(scalar @key_diff, 0,
		"$what: rows per key equal messages per key ("
		  . scalar(keys %want_per_key) . ' keys)')
	  or $ok = 0, Test::More::diag("e.g. $key_diff[0]: "
		  . ($rows_per_key{ $key_diff[0] } // 0) . ' rows, '
		  . ($want_per_key{ $key_diff[0] } // 0) . ' messages');
	return $ok;
}

=pod

=head1 INGEST STREAMS (ingest2_)

=over

=item ingest2_status(NODE, NAME)

The row of C<kafka_fdw.ingest_status> for stream NAME as a hashref (its
columns by name; jsonb and arrays decoded), or undef when there is none.

=cut

sub ingest2_status
{
	my ($node, $name) = @_;
	(my $q = $name) =~ s/'/''/g;
	my $json = $node->safe_psql('postgres',
		"SELECT row_to_json(s) FROM kafka_fdw.ingest_status s WHERE name = '$q'");
	return $json eq '' ? undef : JSON::PP->new->utf8->decode($json);
}

=pod

=item ingest2_wait(NODE, SQL, SECONDS)

Runs SQL (a query answering one boolean) every 100 ms until it answers true
(returns 1) or SECONDS (default 90) have passed (returns 0, with a diag of
the query and its last answer).

=cut

sub ingest2_wait
{
	my ($node, $sql, $seconds) = @_;
	my $last = '';
	return 1
	  if poll_until(sub { $last = $node->safe_psql('postgres', $sql); $last eq 't' },
		$seconds // 90);
	Test::More::diag("not true after " . ($seconds // 90) . " s: $sql (last answer: $last)");
	return 0;
}

=pod

=item ingest2_create_try(NODE)

Creates the function C<public.ingest2_try(sql text) RETURNS text> in
database postgres: it runs SQL and answers C<ok>, or the error it raised
as C<SQLSTATE: message | detail | hint>, so that a test can check an
error's code and text in one query.

=back

=cut

sub ingest2_create_try
{
	my ($node) = @_;
	$node->safe_psql('postgres', q{
CREATE FUNCTION public.ingest2_try(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  st text; msg text; det text; hnt text;
BEGIN
  EXECUTE sql;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
    det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
  RETURN st || ': ' || msg || ' | ' || coalesce(det, '') || ' | ' || coalesce(hnt, '');
END $$;
GRANT EXECUTE ON FUNCTION public.ingest2_try(text) TO PUBLIC;
});
	return;
}

push @EXPORT, qw(ingest2_status ingest2_wait ingest2_create_try);

1;
