/*-------------------------------------------------------------------------
 *
 * launcher.c
 *		  The change data capture launcher: one worker per stream
 *
 * Loaded through shared_preload_libraries, kafka_fdw registers a launcher
 * background worker and a registry of streams in shared memory, of
 * kafka_fdw.max_streams entries.
 * Streams live in whichever database they were created in (the table
 * kafka_fdw.cdc_streams of that database); cdc_create and cdc_drop keep the
 * registry up to date, and after a server start the launcher fills it by
 * starting a short-lived scanner worker in each database.  The launcher
 * then starts one worker per stream and starts it again, with backoff,
 * after an error or a crash.
 *
 * Without shared_preload_libraries nothing of this exists and the foreign
 * data wrapper works alone.
 *
 * IDENTIFICATION
 *		  src/cdc/launcher.c
 *
 *-------------------------------------------------------------------------
 */
#include "cdc/cdc.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "postmaster/postmaster.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

/* Backoff between runs of a failing worker: 1 s doubling up to 30 s */
#define CDC_BACKOFF_MIN_MS 1000
#define CDC_BACKOFF_MAX_MS 30000

KafkaCdcShared *kfdw_cdc_shared = NULL;
int			kfdw_cdc_max_streams = 64;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* The launcher's view of its workers, indexed like the registry */
typedef struct LauncherWorker
{
	BackgroundWorkerHandle *handle;
	TimestampTz next_start;		/* not before */
} LauncherWorker;

static LauncherWorker *launcher_workers;	/* kfdw_cdc_max_streams of them */

static void cdc_shmem_request(void);
static void cdc_shmem_startup(void);
static Size cdc_shmem_size(void);
static void launcher_scan_databases(void);
static void launcher_start_workers(long *sleep_ms);
static bool start_worker(const char *function, const char *name,
						 Oid dboid, int index,
						 BackgroundWorkerHandle **handle);

/*
 * Module load: define the settings; with shared_preload_libraries, ask for
 * shared memory and register the launcher.
 */
void
_PG_init(void)
{
	BackgroundWorker worker;

	DefineCustomIntVariable("kafka_fdw.naptime",
							"Time a change data capture worker sleeps when it has decoded all WAL.",
							"Nothing wakes a worker when WAL is flushed, so this bounds how long "
							"a commit waits before it is decoded.",
							&kfdw_cdc_naptime,
							10, 1, 60000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	/* sizes shared memory: only at server start */
	DefineCustomIntVariable("kafka_fdw.max_streams",
							"Maximum number of change data capture streams in the cluster.",
							"Each stream has one background worker, counted in max_worker_processes.",
							&kfdw_cdc_max_streams,
							64, 1, MAX_BACKENDS,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("kafka_fdw");

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = cdc_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = cdc_shmem_startup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "kafka_fdw");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "kfdw_cdc_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "kafka_fdw cdc launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "kafka_fdw cdc launcher");
	RegisterBackgroundWorker(&worker);
}

static Size
cdc_shmem_size(void)
{
	return MAXALIGN(add_size(offsetof(KafkaCdcShared, streams),
							 mul_size(kfdw_cdc_max_streams,
									  sizeof(KafkaCdcStream))));
}

static void
cdc_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(cdc_shmem_size());
	RequestNamedLWLockTranche("kafka_fdw_cdc", 1);
}

static void
cdc_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	kfdw_cdc_shared = ShmemInitStruct("kafka_fdw cdc", cdc_shmem_size(),
									  &found);
	if (!found)
	{
		memset(kfdw_cdc_shared, 0, cdc_shmem_size());
		kfdw_cdc_shared->lock = &(GetNamedLWLockTranche("kafka_fdw_cdc"))->lock;
		kfdw_cdc_shared->rescan = true;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Index of the registry entry of a change data capture stream, or -1.  The
 * caller holds the lock.
 */
int
kfdw_cdc_find_stream(Oid dboid, const char *name)
{
	return kfdw_stream_find(KFDW_STREAM_CDC, dboid, name, 0);
}

/*
 * Enter a change data capture stream in the registry (if it is not there
 * yet) and return its index, or -1 if the registry is full.  The caller
 * holds the lock exclusively.
 */
int
kfdw_cdc_register_stream(Oid dboid, const char *name)
{
	return kfdw_stream_register(KFDW_STREAM_CDC, dboid, name, 0);
}

/*
 * Index of the registry entry of worker worker_no of a stream of the given
 * kind, or -1.  The caller holds the lock.
 */
int
kfdw_stream_find(char kind, Oid dboid, const char *name, int worker_no)
{
	int			i;

	for (i = 0; i < kfdw_cdc_max_streams; i++)
	{
		KafkaCdcStream *s = &kfdw_cdc_shared->streams[i];

		if (s->in_use && s->kind == kind && s->dboid == dboid &&
			s->worker_no == worker_no && strcmp(NameStr(s->name), name) == 0)
			return i;
	}
	return -1;
}

/*
 * Enter worker worker_no of a stream in the registry (if it is not there
 * yet) and return its index, or -1 if the registry is full.  The caller
 * holds the lock exclusively.
 */
int
kfdw_stream_register(char kind, Oid dboid, const char *name, int worker_no)
{
	int			i = kfdw_stream_find(kind, dboid, name, worker_no);

	if (i >= 0)
		return i;
	for (i = 0; i < kfdw_cdc_max_streams; i++)
	{
		KafkaCdcStream *s = &kfdw_cdc_shared->streams[i];

		if (!s->in_use)
		{
			memset(s, 0, sizeof(*s));
			s->in_use = true;
			s->kind = kind;
			s->worker_no = worker_no;
			s->dboid = dboid;
			namestrcpy(&s->name, name);
			s->state = KFDW_CDC_STOPPED;
			pg_atomic_init_u64(&s->confirmed_lsn, InvalidXLogRecPtr);
			pg_atomic_init_u64(&s->messages_sent, 0);
			pg_atomic_init_u64(&s->rows, 0);
			pg_atomic_init_u64(&s->skipped, 0);
			return i;
		}
	}
	return -1;
}

/* Ask the launcher to look at the registry now */
void
kfdw_cdc_wakeup_launcher(void)
{
	pid_t		pid = kfdw_cdc_shared ? kfdw_cdc_shared->launcher_pid : 0;

	if (pid != 0)
		kill(pid, SIGUSR1);
}

const char *
kfdw_cdc_state_name(KafkaCdcState state)
{
	switch (state)
	{
		case KFDW_CDC_STOPPED:
			return "stopped";
		case KFDW_CDC_STARTING:
			return "starting";
		case KFDW_CDC_SNAPSHOT:
			return "snapshot";
		case KFDW_CDC_STREAMING:
			return "streaming";
		case KFDW_CDC_RETRYING:
			return "retrying";
		case KFDW_CDC_WAITING:
			return "waiting to retry";
	}
	return "unknown";
}

static void
launcher_on_exit(int code, Datum arg)
{
	if (kfdw_cdc_shared)
		kfdw_cdc_shared->launcher_pid = 0;
}

/*
 * Main of the launcher: fill the registry, then keep one worker running
 * per stream.
 */
void
kfdw_cdc_launcher_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* no database: only shared catalogs (pg_database) are read */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
	kfdw_cdc_shared->launcher_pid = MyProcPid;
	/* a new launcher knows nothing of workers an old one started */
	kfdw_cdc_shared->rescan = true;
	LWLockRelease(kfdw_cdc_shared->lock);
	before_shmem_exit(launcher_on_exit, (Datum) 0);

	launcher_workers = MemoryContextAllocZero(TopMemoryContext,
											  sizeof(LauncherWorker) *
											  kfdw_cdc_max_streams);

	for (;;)
	{
		long		sleep_ms = 10000;
		bool		rescan;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
		rescan = kfdw_cdc_shared->rescan;
		kfdw_cdc_shared->rescan = false;
		LWLockRelease(kfdw_cdc_shared->lock);
		if (rescan)
			launcher_scan_databases();

		launcher_start_workers(&sleep_ms);

		kfdw_nap(sleep_ms, kfdw_wait_event(KFDW_WAIT_CDC_IDLE));
	}
}

/*
 * Start a scanner in every database that accepts connections, one after
 * the other, so that the registry holds every stream of the cluster.
 */
static void
launcher_scan_databases(void)
{
	List	   *dbs = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	ListCell   *lc;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext oldcxt;

		if (!db->datallowconn || db->datistemplate)
			continue;
		oldcxt = MemoryContextSwitchTo(TopMemoryContext);
		dbs = lappend_oid(dbs, db->oid);
		MemoryContextSwitchTo(oldcxt);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();

	foreach(lc, dbs)
	{
		BackgroundWorkerHandle *handle;

		if (!start_worker("kfdw_cdc_scanner_main", "kafka_fdw cdc scanner",
						  lfirst_oid(lc), -1, &handle))
		{
			/* no free worker slot: try again later */
			LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
			kfdw_cdc_shared->rescan = true;
			LWLockRelease(kfdw_cdc_shared->lock);
			break;
		}
		(void) WaitForBackgroundWorkerShutdown(handle);
		pfree(handle);
	}
	list_free(dbs);
}

/*
 * Start the worker of every stream that has none and whose backoff has
 * passed; free the entries of dropped streams.  Sets *sleep_ms to when the
 * next backoff ends.
 */
static void
launcher_start_workers(long *sleep_ms)
{
	TimestampTz now = GetCurrentTimestamp();
	int			i;

	for (i = 0; i < kfdw_cdc_max_streams; i++)
	{
		LauncherWorker *lw = &launcher_workers[i];
		KafkaCdcStream *s = &kfdw_cdc_shared->streams[i];
		bool		in_use;
		bool		drop_requested;
		Oid			dboid;
		NameData	name;
		char		kind;
		int			failures;
		pid_t		pid;

		if (lw->handle)
		{
			if (GetBackgroundWorkerPid(lw->handle, &pid) != BGWH_STOPPED)
				continue;
			/* the worker ended: not again before its backoff */
			pfree(lw->handle);
			lw->handle = NULL;
			LWLockAcquire(kfdw_cdc_shared->lock, LW_SHARED);
			failures = s->failures;
			LWLockRelease(kfdw_cdc_shared->lock);
			/* runs that delivered nothing since the last success */
			failures = Min(Max(failures - 1, 0), 5);
			lw->next_start = TimestampTzPlusMilliseconds(now,
														 Min(CDC_BACKOFF_MIN_MS << failures,
															 CDC_BACKOFF_MAX_MS));
		}

		LWLockAcquire(kfdw_cdc_shared->lock, LW_SHARED);
		in_use = s->in_use;
		drop_requested = s->drop_requested;
		dboid = s->dboid;
		name = s->name;
		kind = s->kind;
		pid = s->pid;
		LWLockRelease(kfdw_cdc_shared->lock);

		if (!in_use)
		{
			lw->next_start = 0;
			continue;
		}
		if (drop_requested)
			continue;
		/* a worker started by an earlier launcher still runs */
		if (pid != 0 && kill(pid, 0) == 0)
			continue;

		if (lw->next_start > now)
		{
			long		secs;
			int			usecs;

			TimestampDifference(now, lw->next_start, &secs, &usecs);
			*sleep_ms = Min(*sleep_ms, secs * 1000 + usecs / 1000 + 1);
			continue;
		}

		if (!start_worker(kind == KFDW_STREAM_INGEST ?
						  "kfdw_ingest_worker_main" : "kfdw_cdc_worker_main",
						  NameStr(name), dboid, i, &lw->handle))
		{
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("could not start the worker of kafka_fdw stream \"%s\"",
							NameStr(name)),
					 errhint("You may need to increase max_worker_processes.")));
			lw->next_start = TimestampTzPlusMilliseconds(now, CDC_BACKOFF_MAX_MS);
			*sleep_ms = Min(*sleep_ms, CDC_BACKOFF_MAX_MS);
		}
	}
}

/*
 * Register a dynamic worker that runs function (of this library) in
 * database dboid with the registry index as argument, and tells this
 * process when it stops.
 */
static bool
start_worker(const char *function, const char *name, Oid dboid, int index,
			 BackgroundWorkerHandle **handle)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "kafka_fdw");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "%s", function);
	if (index < 0)
	{
		snprintf(worker.bgw_name, BGW_MAXLEN, "%s", name);
		snprintf(worker.bgw_type, BGW_MAXLEN, "kafka_fdw cdc scanner");
	}
	else if (kfdw_cdc_shared->streams[index].kind == KFDW_STREAM_INGEST)
	{
		snprintf(worker.bgw_name, BGW_MAXLEN,
				 "kafka_fdw ingest worker %d for stream \"%s\"",
				 kfdw_cdc_shared->streams[index].worker_no, name);
		snprintf(worker.bgw_type, BGW_MAXLEN, "kafka_fdw ingest worker");
	}
	else
	{
		snprintf(worker.bgw_name, BGW_MAXLEN,
				 "kafka_fdw cdc worker for stream \"%s\"", name);
		snprintf(worker.bgw_type, BGW_MAXLEN, "kafka_fdw cdc worker");
	}
	worker.bgw_main_arg = Int32GetDatum(index);
	memcpy(worker.bgw_extra, &dboid, sizeof(Oid));
	worker.bgw_notify_pid = MyProcPid;

	return RegisterDynamicBackgroundWorker(&worker, handle);
}

/*
 * Main of a scanner: enter the streams of one database in the registry.
 */
void
kfdw_cdc_scanner_main(Datum main_arg)
{
	Oid			dboid;
	bool		added = false;

	memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(Oid));

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	/* whatever ALTER DATABASE set, no other role's object stands in for ours */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_SESSION);

	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "looking for kafka_fdw streams");

	/* databases without the extension have no streams */
	if (SPI_execute("SELECT pg_catalog.to_regclass('kafka_fdw.cdc_streams') IS NOT NULL",
					true, 0) == SPI_OK_SELECT &&
		SPI_processed == 1 &&
		strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1),
			   "t") == 0 &&
		SPI_execute("SELECT name FROM kafka_fdw.cdc_streams", true, 0) ==
		SPI_OK_SELECT)
	{
		uint64		i;

		LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
		for (i = 0; i < SPI_processed; i++)
		{
			char	   *name = SPI_getvalue(SPI_tuptable->vals[i],
											SPI_tuptable->tupdesc, 1);

			if (kfdw_cdc_register_stream(dboid, name) < 0)
				ereport(WARNING,
						(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
						 errmsg("too many kafka_fdw streams, stream \"%s\" is not started",
								name),
						 errhint("Raise kafka_fdw.max_streams, which takes effect when the server restarts.")));
			added = true;
		}
		LWLockRelease(kfdw_cdc_shared->lock);
	}

	/* and one entry per worker of each ingest stream that is not paused */
	if (SPI_execute("SELECT pg_catalog.to_regclass('kafka_fdw.ingest_streams') IS NOT NULL",
					true, 0) == SPI_OK_SELECT &&
		SPI_processed == 1 &&
		strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1),
			   "t") == 0 &&
		SPI_execute("SELECT name, coalesce((options OPERATOR(pg_catalog.->>) 'workers')::pg_catalog.int4, 1) "
					"FROM kafka_fdw.ingest_streams WHERE NOT paused",
					true, 0) == SPI_OK_SELECT)
	{
		uint64		i;

		LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
		for (i = 0; i < SPI_processed; i++)
		{
			char	   *name = SPI_getvalue(SPI_tuptable->vals[i],
											SPI_tuptable->tupdesc, 1);
			int			workers = atoi(SPI_getvalue(SPI_tuptable->vals[i],
												   SPI_tuptable->tupdesc, 2));
			int			w;

			for (w = 0; w < workers; w++)
			{
				if (kfdw_stream_register(KFDW_STREAM_INGEST, dboid, name, w) < 0)
				{
					ereport(WARNING,
							(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
							 errmsg("too many kafka_fdw streams, worker %d of ingest stream \"%s\" is not started",
									w, name),
							 errhint("Raise kafka_fdw.max_streams, which takes effect when the server restarts.")));
					break;
				}
			}
			added = true;
		}
		LWLockRelease(kfdw_cdc_shared->lock);
	}

	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	if (added)
		kfdw_cdc_wakeup_launcher();
}
