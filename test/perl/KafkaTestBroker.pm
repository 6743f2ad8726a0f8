
# Copyright (c) kafka_fdw contributors

=pod

=head1 NAME

KafkaTestBroker - the embedded Kafka broker for kafka_fdw's TAP tests

=head1 SYNOPSIS

  use KafkaTestBroker;

  my $broker = KafkaTestBroker->new(topics => { t1 => 4 }, brokers => 1);
  my $bootstrap = $broker->bootstrap;         # "127.0.0.1:40123"

  $broker->create_topic('t2', 2);
  $broker->down(1);                           # take broker 1 down
  $broker->up(1);
  $broker->rtt(1, 200);                       # 200 ms latency on broker 1

  # an independent client (kcat / python3-confluent-kafka)
  $broker->produce('t1', [ { key => 'k', value => 'v', partition => 0,
                             headers => [ [ 'h', 'x' ] ] },
                           { key => undef, value => undef } ]);
  my @msgs = $broker->consume('t1');          # every message of the topic
  # $msgs[0]{partition}, {offset}, {key}, {payload}, {timestamp}, {headers}

  $broker->stop;                              # also done at exit

=head1 DESCRIPTION

Two backends with the same methods, chosen by the environment variable
KFDW_TEST_KAFKA:

=over

=item C<mock> (the default)

test/kafka_test_broker (built by C<make test-broker>; librdkafka's mock
cluster) with its control channel on a pipe, so that a test can inject
faults while it runs.

=item C<real>

A real Apache Kafka cluster started by test/kafka.sh in a directory of its
own: at least three brokers (C<brokers> larger than 3 gives more),
replication factor 3, min.insync.replicas 2.  C<rtt> has no real
equivalent: C<< $broker->is_real >> tells a test to skip that part.

=back

The cluster stops when the test ends, even if the test dies.

=cut

package KafkaTestBroker;

use strict;
use warnings;

use Carp;
use File::Basename qw(dirname);
use File::Spec;
use File::Temp ();
use IPC::Run;
use JSON::PP;

my @live;		# brokers to stop at exit

# The broker binary: test/kafka_test_broker, next to this module's directory
# (or $KAFKA_TEST_BROKER).
my $binary = $ENV{KAFKA_TEST_BROKER}
  // File::Spec->catfile(dirname(File::Spec->rel2abs(__FILE__)),
	File::Spec->updir, 'kafka_test_broker');

# test/kafka.sh, for the real backend
my $kafka_sh = File::Spec->catfile(dirname(File::Spec->rel2abs(__FILE__)),
	File::Spec->updir, 'kafka.sh');

my $admin_py = File::Spec->catfile(dirname(File::Spec->rel2abs(__FILE__)),
	File::Spec->updir, 'kafka', 'admin.py');

# python3 of the system, where python3-confluent-kafka is installed
my $python = -x '/usr/bin/python3' ? '/usr/bin/python3' : 'python3';

=pod

=head1 METHODS

=over

=item KafkaTestBroker->new(topics => { NAME => PARTITIONS, ... }, brokers => N)

Start N brokers (default 1) on loopback with the given topics and wait until
they are ready (at most 60 seconds).

=cut

sub new
{
	my ($class, %args) = @_;

	return $class->_new_real(%args)
	  if ($ENV{KFDW_TEST_KAFKA} // 'mock') eq 'real';
	croak "KFDW_TEST_KAFKA must be mock or real"
	  unless ($ENV{KFDW_TEST_KAFKA} // 'mock') eq 'mock';

	my $brokers = $args{brokers} // 1;
	my $topics = $args{topics} // {};

	croak "test broker $binary not found: run \"make test-broker\""
	  unless -x $binary;

	my @cmd = ($binary, '--brokers', $brokers, '--stop-on-eof');
	push @cmd, '--topic', "$_:$topics->{$_}" for sort keys %$topics;

	my $self = bless { in => '', out => '', seen => 0, nbrokers => $brokers }, $class;

	# librdkafka's own log lines go to a file beside the test's logs
	my @stderr = ();
	my $logdir = do { no warnings 'once'; $PostgreSQL::Test::Utils::log_path };
	if (defined $logdir && -d $logdir)
	{
		$self->{logfile} = "$logdir/kafka_test_broker_$$.log";
		@stderr = ('2>>', $self->{logfile});
	}

	$self->{timer} = IPC::Run::timer(60);
	$self->{handle} = IPC::Run::start(\@cmd, '<', \$self->{in},
		'>', \$self->{out}, @stderr, $self->{timer});
	my $line = $self->_read_line;
	croak "test broker did not start: $line"
	  unless $line =~ /^BOOTSTRAP (\S+)$/;
	$self->{bootstrap} = $1;
	push @live, $self;
	return $self;
}

# The real backend: test/kafka.sh in a directory of the test's own.
sub _new_real
{
	my ($class, %args) = @_;
	my $brokers = $args{brokers} // 1;
	$brokers = 3 if $brokers < 3;
	my $topics = $args{topics} // {};

	my $base = do { no warnings 'once'; $PostgreSQL::Test::Utils::tmp_check }
	  // File::Spec->tmpdir;
	my $dir = File::Temp::tempdir('kafka_XXXX', DIR => $base, CLEANUP => 1);
	my $self = bless { real => 1, dir => $dir, nbrokers => $brokers }, $class;
	my @cmd = ($kafka_sh, 'start', $dir, '--brokers', $brokers);
	push @cmd, '--topic', "$_:$topics->{$_}" for sort keys %$topics;
	push @cmd, '--sasl' if $args{sasl};
	my ($rc, $out, $err) = $self->_run_client(\@cmd, '', 300);
	croak "test/kafka.sh start failed ($rc): $err" if $rc != 0;
	($self->{bootstrap}) = $out =~ /^BOOTSTRAP (\S+)$/m;
	($self->{sasl}) = $out =~ /^SASL (\S+)$/m;
	croak "test/kafka.sh printed no bootstrap: $out" unless $self->{bootstrap};
	$self->{bootstrap_live} = 1;
	push @live, $self;
	return $self;
}

sub _kafka_sh
{
	my ($self, @args) = @_;
	my ($rc, $out, $err) =
	  $self->_run_client([ $kafka_sh, $args[0], $self->{dir}, @args[ 1 .. $#args ] ],
		'', 180);
	croak "test/kafka.sh @args failed ($rc): $err" if $rc != 0;
	return wantarray ? ($out, $err) : 1;
}

# Wait for the next line from the broker's stdout and return it.
sub _read_line
{
	my ($self) = @_;
	$self->{timer}->start(60);
	while (1)
	{
		my $rest = substr($self->{out}, $self->{seen});
		if ($rest =~ /^([^\n]*)\n/)
		{
			$self->{seen} += length($1) + 1;
			return $1;
		}
		croak "test broker exited" unless $self->{handle}->pumpable;
		$self->{handle}->pump;
	}
}

# Send one control command; croak unless the broker answers OK.
sub _command
{
	my ($self, $cmd) = @_;
	croak "test broker is stopped" unless $self->{handle};
	$self->{in} .= "$cmd\n";
	my $answer = $self->_read_line;
	croak "test broker: \"$cmd\" failed: $answer" unless $answer eq 'OK';
	return 1;
}

=pod

=item $broker->bootstrap

The bootstrap servers, "host:port,host:port".

=item $broker->create_topic(NAME, PARTITIONS)

=item $broker->down(ID), $broker->up(ID)

Take broker ID (1..N) down or bring it up again.  On real Kafka, down
is a SIGKILL and up returns once the restarted broker answers requests
(at most 2 minutes).

=item $broker->rtt(ID, MS)

Add MS milliseconds of round-trip latency to broker ID (0 removes it).

=cut

=item $broker->down_all, $broker->up_all

Take every broker down (an outage of the whole cluster) / bring them all
back; on real Kafka, up_all returns once every broker answers again.

=item $broker->is_real

True on a real Kafka cluster (KFDW_TEST_KAFKA=real).

=item $broker->sasl_bootstrap

The SASL_PLAINTEXT listeners of a real cluster started with C<< sasl => 1 >>
(see test/kafka.sh for its users), or undef.

=item $broker->kafka_sh(COMMAND, ARGS...)

Run "test/kafka.sh COMMAND DIR ARGS..." on a real cluster; croaks if it
fails.  In list context returns its stdout and stderr (for a C<tool>'s
answer), else 1.

=cut

sub bootstrap { return $_[0]->{bootstrap}; }
sub is_real { return $_[0]->{real} ? 1 : 0; }
sub sasl_bootstrap { return $_[0]->{sasl}; }
sub kafka_sh { my $self = shift; return $self->_kafka_sh(@_); }

sub create_topic
{
	my ($self, $name, $partitions, @configs) = @_;
	return $self->_kafka_sh('topic', $name, $partitions, 3, @configs)
	  if $self->{real};
	return $self->_command("topic $name $partitions");
}

sub down
{
	my ($self, $id) = @_;
	return $self->_command("down $id") unless $self->{real};
	return $self->_kafka_sh('down', $id);
}

# On real Kafka, returns once the broker is back in the cluster's metadata
# (a JVM takes seconds to listen): "up" means a client can use it again.
sub up
{
	my ($self, $id) = @_;
	return $self->_command("up $id") unless $self->{real};
	$self->_kafka_sh('up', $id);
	return $self->_wait_serving($id);
}

# Wait (at most 2 minutes) until real broker ID answers requests itself
sub _wait_serving
{
	my ($self, $id) = @_;
	my ($rc, $out, $err) = $self->_run_client(
		[ $python, $admin_py, $self->{bootstrap}, 'serving', $id, 120 ],
		'', 150);
	croak "broker $id did not come back: $err" if $rc != 0;
	return 1;
}

sub down_all
{
	my ($self) = @_;
	$self->down($_) for 1 .. $self->{nbrokers};
	return 1;
}

# On real Kafka every node is started before any is waited for: each node
# is a controller too, and one alone is no quorum, so it cannot serve
# until a majority of the nodes runs.
sub up_all
{
	my ($self) = @_;
	if (!$self->{real})
	{
		$self->up($_) for 1 .. $self->{nbrokers};
		return 1;
	}
	$self->_kafka_sh('up', $_) for 1 .. $self->{nbrokers};
	$self->_wait_serving($_) for 1 .. $self->{nbrokers};
	return 1;
}

sub rtt
{
	my ($self, $id, $ms) = @_;
	croak "rtt is a fault of the mock broker only: skip it on real Kafka"
	  if $self->{real};
	return $self->_command("rtt $id $ms");
}

=pod

=item $broker->stop

Stop the broker (called at exit too).

=cut

sub stop
{
	my ($self) = @_;
	if ($self->{real})
	{
		return unless delete $self->{bootstrap_live};
		@live = grep { $_ != $self } @live;
		$self->_run_client([ $kafka_sh, 'stop', $self->{dir} ], '', 60);
		return;
	}
	my $h = delete $self->{handle};
	return unless $h;
	@live = grep { $_ != $self } @live;
	$self->{in} .= "quit\n";
	eval {
		$self->{timer}->start(10);
		$h->finish;
		1;
	} or $h->kill_kill(grace => 5);
	return;
}

sub DESTROY
{
	my ($self) = @_;
	local ($., $@, $!, $^E, $?);
	$self->stop;
}

END
{
	local $?;
	$_->stop for @live;
}

# Run an independent client; returns (exit status, stdout, stderr).
sub _run_client
{
	my ($self, $cmd, $stdin, $timeout) = @_;
	my ($out, $err) = ('', '');
	my $ok = eval {
		IPC::Run::run($cmd, '<', \$stdin, '>', \$out, '2>', \$err,
			IPC::Run::timeout($timeout));
		1;
	};
	return ($ok ? $? >> 8 : -1, $out, $ok ? $err : "$err$@");
}

=pod

=item $broker->consume(TOPIC, %opts)

Read every message of TOPIC with kcat, from the beginning to the end of each
partition, and return them as a list of hashrefs
{ partition, offset, key, payload, timestamp, headers } in kcat's order
(per partition by offset).  Null keys and payloads are undef; headers is an
arrayref of [name, value] pairs (undef when the message has none).
Options: partition => P (only that partition), isolation => 'read_committed'
or 'read_uncommitted', timeout => seconds (default 60).  Croaks when kcat
fails (unknown topic, broker down).

=cut

sub consume
{
	my ($self, $topic, %opts) = @_;
	my @cmd = ('kcat', '-C', '-e', '-J', '-q', '-o', 'beginning',
		'-b', $self->{bootstrap}, '-t', $topic);
	push @cmd, '-p', $opts{partition} if defined $opts{partition};
	push @cmd, '-X', "isolation.level=$opts{isolation}"
	  if defined $opts{isolation};

	my ($rc, $out, $err) =
	  $self->_run_client(\@cmd, '', $opts{timeout} // 60);
	croak "kcat consume of \"$topic\" failed ($rc): $err" if $rc != 0;

	my $json = JSON::PP->new->utf8;
	my @messages;
	for my $line (split /\n/, $out)
	{
		next unless $line =~ /^\{/;
		my $m = $json->decode($line);
		my $headers;
		if (defined $m->{headers})
		{
			my @h = @{ $m->{headers} };
			push @$headers, [ splice(@h, 0, 2) ] while @h;
		}
		push @messages,
		  {
			partition => $m->{partition},
			offset => $m->{offset},
			key => $m->{key},
			payload => $m->{payload},
			timestamp => $m->{ts},
			headers => $headers,
		  };
	}
	return @messages;
}

=pod

=item $broker->produce(TOPIC, [ { key, value, partition, headers }, ... ])

Publish the messages in order with python3-confluent-kafka (which, unlike
kcat, can give each message its own headers and a null key or value), wait
for every delivery report and croak if any failed.  key and value may be
undef (null); partition defaults to the partitioner's choice; headers is an
arrayref of [name, value] pairs or a hashref.  Returns the number of
messages delivered.

=cut

my $produce_script = <<'PY';
import json, sys
from confluent_kafka import Producer

bootstrap, topic = sys.argv[1], sys.argv[2]
messages = json.load(sys.stdin)
failed = []

def report(err, msg):
    if err is not None:
        failed.append(str(err))

p = Producer({'bootstrap.servers': bootstrap, 'enable.idempotence': True,
              'message.timeout.ms': 30000})
for m in messages:
    kw = {}
    if m.get('partition') is not None:
        kw['partition'] = m['partition']
    if m.get('headers') is not None:
        kw['headers'] = [(h[0], None if h[1] is None else h[1].encode())
                         for h in m['headers']]
    p.produce(topic,
              value=None if m.get('value') is None else m['value'].encode(),
              key=None if m.get('key') is None else m['key'].encode(),
              on_delivery=report, **kw)
    p.poll(0)
if p.flush(60) != 0:
    failed.append('messages not delivered in time')
if failed:
    sys.exit('delivery failed: ' + '; '.join(failed))
print(len(messages))
PY

sub produce
{
	my ($self, $topic, $messages) = @_;
	my @list;
	for my $m (@$messages)
	{
		my $headers = $m->{headers};
		$headers = [ map { [ $_, $headers->{$_} ] } sort keys %$headers ]
		  if ref $headers eq 'HASH';
		push @list,
		  {
			key => $m->{key},
			value => $m->{value},
			partition => $m->{partition},
			headers => $headers,
		  };
	}
	my ($rc, $out, $err) = $self->_run_client(
		[ $python, '-c', $produce_script, $self->{bootstrap}, $topic ],
		JSON::PP->new->utf8->encode(\@list), 90);
	croak "produce to \"$topic\" failed ($rc): $err" if $rc != 0;
	chomp $out;
	return $out;
}

=pod

=item $broker->metadata(TOPIC, timeout => seconds)

Ask the cluster for TOPIC's metadata with kcat (a consumer's request, which
does not auto-create the topic) and return kcat's decoded JSON, or undef if
the request failed (for example, every broker down).

=cut

sub metadata
{
	my ($self, $topic, %opts) = @_;
	my $timeout = $opts{timeout} // 5;
	my @cmd = ('kcat', '-L', '-J', '-q', '-b', $self->{bootstrap},
		'-m', $timeout, '-X', 'allow.auto.create.topics=false');
	push @cmd, '-t', $topic if defined $topic;
	my ($rc, $out, $err) = $self->_run_client(\@cmd, '', $timeout + 30);
	return undef if $rc != 0;
	my $md = eval { JSON::PP->new->utf8->decode($out) };
	return $md;
}

=pod

=item $broker->ingest_produce(TOPIC, count => N, first => F, keys => K, rate => R, background => BOOL)

Publish N generated messages with python3-confluent-kafka (idempotent,
acks=all): message I (F .. F+N-1, F defaults to 0) has the key C<kI mod K>
(K defaults to 1000; the default partitioner spreads the keys) and the JSON
value C<{"id": I, "k": "kI mod K"}>.  With R > 0 at most R messages a second,
else as fast as the client goes.  Messages wait up to 5 minutes in the
client for a broker (a producer queues through an outage).  Croaks if any
delivery fails, else returns N.

With C<background>, returns at once a handle: C<< $h->delivered >> is how
many deliveries were confirmed so far (the script reports it every 100 ms),
C<< $h->running >> is true until it ends, C<< $h->finish >> waits for the
end (at most 10 minutes) and returns N, croaking if a delivery failed.

=cut

my $ingest_produce_script = <<'PY';
import sys, time
from confluent_kafka import Producer

bootstrap, topic = sys.argv[1], sys.argv[2]
first, count, nkeys = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rate = float(sys.argv[6])
state = {'ok': 0, 'failed': []}

def report(err, msg):
    if err is not None:
        state['failed'].append(str(err))
    else:
        state['ok'] += 1

p = Producer({'bootstrap.servers': bootstrap, 'enable.idempotence': True,
              'message.timeout.ms': 300000, 'linger.ms': 5})
start = last = time.monotonic()
for i in range(first, first + count):
    k = 'k%d' % (i % nkeys)
    v = '{"id": %d, "k": "%s"}' % (i, k)
    while True:
        try:
            p.produce(topic, value=v.encode(), key=k.encode(), on_delivery=report)
            break
        except BufferError:
            p.poll(0.05)
    p.poll(0)
    if rate > 0 and (i - first) % 50 == 49:
        due = start + (i - first + 1) / rate
        while True:
            # poll() returns at the first delivery report; a negative
            # timeout is no timeout at all (it would wait for a report
            # that never comes once every message is delivered)
            left = due - time.monotonic()
            if left <= 0:
                break
            p.poll(min(left, 0.05))
    now = time.monotonic()
    if now - last >= 0.1:
        print('delivered %d' % state['ok'], flush=True)
        last = now
while len(p) > 0 and not state['failed']:
    p.poll(0.1)
    print('delivered %d' % state['ok'], flush=True)
if state['failed']:
    sys.exit('delivery failed: ' + '; '.join(state['failed'][:5]))
print('delivered %d' % state['ok'], flush=True)
print('done %d' % state['ok'], flush=True)
PY

sub ingest_produce
{
	my ($self, $topic, %opts) = @_;
	my @cmd = ($python, '-c', $ingest_produce_script, $self->{bootstrap},
		$topic, $opts{first} // 0, $opts{count}, $opts{keys} // 1000,
		$opts{rate} // 0);
	my $h = bless { out => '', err => '', count => $opts{count},
		topic => $topic }, 'KafkaTestBroker::IngestProducer';
	$h->{run} = IPC::Run::start(\@cmd, '<', \'', '>', \$h->{out}, '2>',
		\$h->{err}, IPC::Run::timeout(600));
	return $h if $opts{background};
	return $h->finish;
}

package KafkaTestBroker::IngestProducer;

use Carp;

sub delivered
{
	my ($self) = @_;
	$self->{run}->pump_nb if $self->{run}->pumpable;
	my @n = $self->{out} =~ /^delivered (\d+)$/mg;
	return @n ? $n[-1] : 0;
}

sub running
{
	my ($self) = @_;
	return 0 unless $self->{run}->pumpable;
	$self->{run}->pump_nb;
	return $self->{out} =~ /^done /m ? 0 : 1;
}

sub finish
{
	my ($self) = @_;
	my $ok = eval { $self->{run}->finish; 1 };
	my $rc = $ok ? $? >> 8 : -1;
	croak "ingest_produce to \"$self->{topic}\" failed ($rc): $self->{err}$@"
	  unless $ok && $rc == 0 && $self->{out} =~ /^done (\d+)$/m
	  && $1 == $self->{count};
	return $self->{count};
}

package KafkaTestBroker;

=item $broker->ingest_positions(TOPIC)

Every message of TOPIC read with kcat from the beginning to the end:
returns a hashref "PARTITION:OFFSET" => key, for comparing a target table
with the topic.

=back

=cut

sub ingest_positions
{
	my ($self, $topic) = @_;
	my @cmd = ('kcat', '-C', '-e', '-q', '-o', 'beginning', '-b',
		$self->{bootstrap}, '-t', $topic, '-f', '%p:%o %k\n');
	my ($rc, $out, $err) = $self->_run_client(\@cmd, '', 180);
	croak "kcat consume of \"$topic\" failed ($rc): $err" if $rc != 0;
	my %pos;
	for my $line (split /\n/, $out)
	{
		my ($po, $k) = $line =~ /^(\d+:\d+) (.*)$/ or next;
		$pos{$po} = $k;
	}
	return \%pos;
}

1;
