#!/bin/bash
#
# test/debian_package.sh: build the Debian package and install it
#
# Builds postgresql-15-kafka-fdw with "dpkg-buildpackage -us -uc -b" in a
# copy of this tree (dpkg-buildpackage writes into the parent directory of
# the tree it builds, and a VPATH build must not see the tree's own build
# products), checks that the .deb holds the library, the control file and
# the install script, and, as root, installs it with dpkg -i and runs
# CREATE EXTENSION kafka_fdw on a clean throwaway cluster (initdb defaults:
# no preloading) as the unprivileged test user.  Then it purges the package
# and puts back the files it replaced (those of "make install"), so that
# the machine is as it was.  Not as root, it builds and checks the package
# only, and says so.  Run by test/run_tests.sh (the test "debian_package");
# exits non-zero on any failure.
#
# Environment: PG_CONFIG, KFDW_TEST_USER (see test/lib.sh), KFDW_KEEP=1
# keeps the work directory.

set -u

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=test/lib.sh
. "$REPO/test/lib.sh"

PACKAGE=postgresql-15-kafka-fdw
# what the package must install, without the leading "/"
WANTED="usr/lib/postgresql/15/lib/kafka_fdw.so
usr/share/postgresql/15/extension/kafka_fdw.control
usr/share/postgresql/15/extension/kafka_fdw--1.0.sql"

DEB_WORK=
WORK=
installed=
backup=

# Stop the cluster, purge the package, put back what it replaced.
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup()
{
	local status=$1
	set +e
	[ -n "$WORK" ] && kfdw_stop_cluster
	if [ -n "$installed" ]; then
		dpkg --purge "$PACKAGE" >"$DEB_WORK/purge.log" 2>&1 ||
			{ cat "$DEB_WORK/purge.log"; status=1; }
	fi
	if [ -n "$backup" ]; then
		tar -C / -xpf "$backup" && tar -C / -df "$backup" >/dev/null ||
			{ echo "ERROR: could not put back the files of make install" >&2; status=1; }
	fi
	if [ -n "$DEB_WORK" ]; then
		if [ "$status" = 0 ] && [ -z "${KFDW_KEEP:-}" ]; then
			rm -rf "$DEB_WORK"
		else
			echo "work directory kept: $DEB_WORK"
		fi
	fi
	exit "$status"
}
trap 'cleanup $?' EXIT
trap 'exit 130' INT TERM

DEB_WORK=$(mktemp -d /tmp/kafka_fdw_deb.XXXXXX) || die "mktemp failed"
chmod 755 "$DEB_WORK"

echo "copying the tree to $DEB_WORK/kafka-fdw"
mkdir "$DEB_WORK/kafka-fdw"
tar -C "$REPO" --exclude=.git --exclude='*.o' --exclude='*.so' \
	--exclude='*.bc' --exclude='./kafka_fdw--*.sql' \
	--exclude=./test/kafka_test_broker --exclude='./build-*' \
	--exclude=./debian/.debhelper --exclude='./debian/postgresql-*-kafka-fdw' \
	--exclude=./debian/files --exclude='./debian/*.substvars' \
	--exclude=./debian/debhelper-build-stamp --exclude=./results \
	--exclude=./tmp_check --exclude='./regression.*' -cf - . |
	tar -C "$DEB_WORK/kafka-fdw" -xf - || die "could not copy the tree"

echo "dpkg-buildpackage -us -uc -b"
if ! (cd "$DEB_WORK/kafka-fdw" && dpkg-buildpackage -us -uc -b) >"$DEB_WORK/build.log" 2>&1; then
	cat "$DEB_WORK/build.log"
	die "dpkg-buildpackage failed"
fi
debs=("$DEB_WORK/${PACKAGE}_1.0"*_amd64.deb)
[ ${#debs[@]} = 1 ] && [ -f "${debs[0]}" ] || die "no single ${PACKAGE}_1.0*_amd64.deb in $DEB_WORK"
deb=${debs[0]}
echo "built $(basename "$deb")"

dpkg-deb -c "$deb" | awk '{ print $NF }' | sed 's:^\./::' >"$DEB_WORK/contents"
while read -r f; do
	grep -qxF "$f" "$DEB_WORK/contents" || die "$(basename "$deb") lacks /$f"
done <<<"$WANTED"
echo "it holds /${WANTED//$'\n'/, /}"

if [ "$(id -u)" != 0 ]; then
	echo "not root: the package is built and checked, not installed (dpkg -i needs root)"
	exit 0
fi

# The package's files replace those of "make install" at the same paths;
# keep those to put them back.
while read -r f; do
	[ -f "/$f" ] && echo "$f"
done <"$DEB_WORK/contents" >"$DEB_WORK/replaced"
if [ -s "$DEB_WORK/replaced" ]; then
	tar -C / -cpf "$DEB_WORK/replaced.tar" -T "$DEB_WORK/replaced" ||
		die "could not save the files the package replaces"
	backup=$DEB_WORK/replaced.tar
fi

dpkg-query -W -f='${Status}' "$PACKAGE" 2>/dev/null | grep -q 'install ok installed' &&
	die "$PACKAGE is installed already: remove it first"
installed=1
echo "dpkg -i $(basename "$deb")"
dpkg -i "$deb" >"$DEB_WORK/install.log" 2>&1 || { cat "$DEB_WORK/install.log"; die "dpkg -i failed"; }
dpkg-query -W -f='${Status}' "$PACKAGE" | grep -q 'install ok installed' ||
	die "$PACKAGE is not installed after dpkg -i"

# A clean cluster: initdb's defaults, but for a free port and the socket
# in the work directory.
kfdw_pg_paths
kfdw_make_workdir kafka_fdw_deb
as_user "$PGBIN/initdb" -D "$WORK/data" -A trust -N >"$WORK/initdb.log" 2>&1 ||
	{ cat "$WORK/initdb.log"; die "initdb failed"; }
PGPORT=$(kfdw_free_port)
printf "port = %s\nunix_socket_directories = '%s'\nlisten_addresses = ''\n" \
	"$PGPORT" "$WORK" >>"$WORK/data/postgresql.conf"
as_user "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w -t 60 start >/dev/null ||
	{ cat "$WORK/postgres.log"; die "the clean cluster did not start"; }
out=$(as_user "$PGBIN/psql" -X -h "$WORK" -p "$PGPORT" -d postgres -v ON_ERROR_STOP=1 -At \
	-c 'CREATE EXTENSION kafka_fdw' \
	-c "SELECT extversion FROM pg_extension WHERE extname = 'kafka_fdw'" \
	-c "SELECT count(*) FROM pg_foreign_data_wrapper WHERE fdwname = 'kafka_fdw'" 2>&1)
status=$?
echo "$out"
[ "$status" = 0 ] || { cat "$WORK/postgres.log"; die "CREATE EXTENSION kafka_fdw failed"; }
[ "$(echo "$out" | tail -2 | tr '\n' ' ')" = "1.0 1 " ] ||
	die "CREATE EXTENSION kafka_fdw did not give version 1.0 and the wrapper kafka_fdw"
kfdw_stop_cluster
rm -rf "$WORK"
WORK=
echo "CREATE EXTENSION kafka_fdw on a clean cluster: ok"
