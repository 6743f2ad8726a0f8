/*-------------------------------------------------------------------------
 *
 * functions.c
 *		  SQL-callable functions of kafka_fdw's scans
 *
 * IDENTIFICATION
 *		  src/fdw/functions.c
 *
 *-------------------------------------------------------------------------
 */
#include "fdw/fdw.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(kafka_fdw_watermarks);

/*
 * kafka_fdw.watermarks(regclass): the low and high watermark of every
 * partition of a foreign table's topic, as the brokers report them now
 * (for read_committed, the high watermark is the last stable offset).
 */
Datum
kafka_fdw_watermarks(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	KafkaTableOptions opts;
	KafkaHandle *handle;
	AclResult	aclresult;
	int64	   *low,
			   *high;
	int			nparts;
	int			i;

	if (get_rel_relkind(relid) != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a foreign table",
						get_rel_name(relid) ? get_rel_name(relid) : "?")));

	/* reading the watermarks tells about the topic: as reading it does */
	aclresult = pg_class_aclcheck(relid, GetUserId(), ACL_SELECT);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FOREIGN_TABLE, get_rel_name(relid));

	kfdw_get_table_options(relid, &opts);
	InitMaterializedSRF(fcinfo, 0);

	handle = kfdw_acquire_handle(opts.serverid, GetUserId(),
								 KFDW_HANDLE_CONSUMER);
	nparts = kfdw_topic_watermarks(handle, opts.topic, &low, &high);
	kfdw_release_handle(handle);

	for (i = 0; i < nparts; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = Int32GetDatum(i);
		values[1] = Int64GetDatum(low[i]);
		values[2] = Int64GetDatum(high[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

	return (Datum) 0;
}
