/*-------------------------------------------------------------------------
 *
 * kafka_fdw.c
 *		  Module entry points: the foreign data wrapper handler
 *
 * The FDW callbacks live with what they do: planning in planner.c, scans in
 * scan.c, inserts in modify.c.  Each of those files fills in its part of the
 * FdwRoutine.
 *
 * IDENTIFICATION
 *		  src/kafka_fdw.c
 *
 *-------------------------------------------------------------------------
 */
#include "fdw/fdw.h"

#include "fmgr.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(kafka_fdw_handler);

/*
 * Foreign-data wrapper handler function: return a struct with pointers
 * to the callback routines.
 */
Datum
kafka_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *routine = makeNode(FdwRoutine);

	kfdw_set_plan_routines(routine);
	kfdw_set_scan_routines(routine);
	kfdw_set_modify_routines(routine);

	PG_RETURN_POINTER(routine);
}
