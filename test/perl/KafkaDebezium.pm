
# Copyright (c) kafka_fdw contributors

=pod

=head1 NAME

KafkaDebezium - the real Debezium (test/debezium/debezium.sh) for TAP tests

=head1 SYNOPSIS

  use KafkaDebezium;

  # Kafka Connect standalone with one connector, RUNNING when it returns
  my $dbz = KafkaDebezium->start(
      name => 'dbz_default',
      bootstrap => $broker->bootstrap,
      connector => {
          KafkaDebezium::postgres_connector($node, 'dbz_default',
              dbname => 'postgres', publication => 'pub'),
          'time.precision.mode' => 'connect',
      },
      worker => [ 'value.converter.schemas.enable=false' ]);
  ...
  $dbz->stop;

  # test/debezium/compare.py
  my ($rc, $out, $err) = KafkaDebezium::compare_py('compare',
      '--bootstrap', $bootstrap, ...);

=head1 DESCRIPTION

Each connector runs in a Kafka Connect worker of its own, in a directory
under the test's tmp_check; its logs (connect.log) stay there.  Workers
still running are stopped at exit.

=cut

package KafkaDebezium;

use strict;
use warnings;

use Carp;
use File::Basename qw(dirname);
use File::Spec;
use File::Temp ();
use IPC::Run;

my $here = dirname(File::Spec->rel2abs(__FILE__));
my $debezium_sh = File::Spec->catfile($here, File::Spec->updir, 'debezium', 'debezium.sh');
my $compare_py = File::Spec->catfile($here, File::Spec->updir, 'debezium', 'compare.py');
my $workload = File::Spec->catdir($here, File::Spec->updir, 'debezium', 'workload');
my $python = -x '/usr/bin/python3' ? '/usr/bin/python3' : 'python3';

my @live;    # workers to stop at exit

=pod

=head1 FUNCTIONS

=over

=item KafkaDebezium::workload(FILE)

The path of test/debezium/workload/FILE (schema.sql, changes.sql).

=cut

sub workload { return File::Spec->catfile($workload, $_[0]); }

=pod

=item KafkaDebezium::postgres_connector(NODE, NAME, dbname => DB, publication => PUB, slot => SLOT)

The properties of a Debezium PostgreSQL connector NAME (also its topic
prefix and, unless given, its slot) for the PostgreSQL::Test::Cluster NODE
over TCP on 127.0.0.1 as the node's OS user, pgoutput, the existing
publication PUB, snapshot.mode initial, and topic creation with the
cluster's replication factor 3 (the tests create their topics first).
Returned as a list of key => value pairs, to merge into a hash.

=cut

sub postgres_connector
{
	my ($node, $name, %args) = @_;
	my $user = $node->safe_psql('postgres', 'SELECT current_user');
	return (
		'name' => $name,
		'connector.class' => 'io.debezium.connector.postgresql.PostgresConnector',
		'database.hostname' => '127.0.0.1',
		'database.port' => $node->port,
		'database.user' => $user,
		'database.password' => 'unused (trust)',
		'database.dbname' => $args{dbname} // 'postgres',
		'topic.prefix' => $name,
		'plugin.name' => 'pgoutput',
		'publication.name' => $args{publication},
		'publication.autocreate.mode' => 'disabled',
		'slot.name' => $args{slot} // $name,
		'snapshot.mode' => 'initial',
		# kafka_fdw's own tables, which kafka_fdw never streams
		'schema.exclude.list' => 'kafka_fdw',
		'topic.creation.default.replication.factor' => 3,
		'topic.creation.default.partitions' => 3,
	);
}

=pod

=item KafkaDebezium->start(name => NAME, bootstrap => B, connector => { ... }, worker => [ 'K=V', ... ], dir => DIR)

Write the connector's properties and run "debezium.sh start": returns once
the connector and its task are RUNNING; croaks with the log's errors
otherwise.  DIR defaults to a new directory under tmp_check.

=cut

sub start
{
	my ($class, %args) = @_;
	my $name = $args{name} // $args{connector}{name}
	  // croak 'start needs a name';
	my %conn = (%{ $args{connector} }, name => $name);
	my $base = do { no warnings 'once'; $PostgreSQL::Test::Utils::tmp_check }
	  // File::Spec->tmpdir;
	my $dir = $args{dir}
	  // File::Temp::tempdir("debezium_${name}_XXXX", DIR => $base, CLEANUP => 0);
	my $props = "$dir/$name.properties";
	open(my $fh, '>', $props) or croak "cannot write $props: $!";
	print $fh "# written by KafkaDebezium.pm\n";
	# name first, the others in name order
	print $fh "$_=$conn{$_}\n" for ('name', sort grep { $_ ne 'name' } keys %conn);
	close($fh);
	my @cmd = ($debezium_sh, 'start', $dir, '--bootstrap', $args{bootstrap},
		'--props', $props);
	push @cmd, '--worker-prop', $_ for @{ $args{worker} // [] };
	my $self = bless { dir => $dir, name => $name }, $class;
	push @live, $self;
	my ($rc, $out, $err) = run_cmd(\@cmd, 300);
	croak "debezium.sh start $name failed ($rc):\n$err$out" if $rc != 0;
	($self->{rest}) = $out =~ /^REST (\S+)$/m;
	return $self;
}

=pod

=item $dbz->dir, $dbz->rest, $dbz->log

The worker's directory, its REST URL, the path of its connect.log.

=item $dbz->status

The connector's status JSON ("debezium.sh status").

=item $dbz->stop

Stop the worker and wait until it has exited (called at exit too).

=cut

sub dir { return $_[0]->{dir}; }
sub rest { return $_[0]->{rest}; }
sub log { return "$_[0]->{dir}/connect.log"; }

sub status
{
	my ($self) = @_;
	my ($rc, $out, $err) = run_cmd([ $debezium_sh, 'status', $self->{dir} ], 30);
	return $rc == 0 ? $out : "status failed: $err";
}

sub stop
{
	my ($self) = @_;
	return unless grep { $_ == $self } @live;
	@live = grep { $_ != $self } @live;
	run_cmd([ $debezium_sh, 'stop', $self->{dir} ], 120);
	return;
}

END
{
	local $?;
	$_->stop for @live;
}

=pod

=item KafkaDebezium::compare_py(ARGS...)

Run test/debezium/compare.py ARGS with the system's python3; returns (exit
status, stdout, stderr).

=item KafkaDebezium::run_cmd([ CMD ], TIMEOUT)

Run a command; returns (exit status, or -1 when it timed out, stdout,
stderr).

=back

=cut

sub compare_py
{
	return run_cmd([ $python, $compare_py, @_ ], 600);
}

sub run_cmd
{
	my ($cmd, $timeout) = @_;
	my ($out, $err) = ('', '');
	my $ok = eval {
		IPC::Run::run($cmd, '<', \undef, '>', \$out, '2>', \$err,
			IPC::Run::timeout($timeout));
		1;
	};
	return ($ok ? $? >> 8 : -1, $out, $ok ? $err : "$err$@");
}

1;
