/*-------------------------------------------------------------------------
 *
 * decoder.c
 *		  The decoder core: column values from the text of a message, and junk
 *
 * Every format (json.c, csv.c, raw.c) finds the text of each data column
 * in a message value and hands it here: kfdw_decoder_set() runs the
 * column's input function, kfdw_decoder_fail() says the message or a
 * column of it cannot be decoded.  Whether that is an ERROR or makes the
 * message junk (the table has a junk or junk_error column, or ignore_junk)
 * is decided here, and so is how an input that fails is caught without
 * leaking what it held.  The per-scan set-up (kfdw_decoder_init) decides
 * once per column what its input needs.
 *
 * This file calls no format: the formats call it, and decode.c, above
 * them, makes whole rows from messages.
 *
 * IDENTIFICATION
 *		  src/format/decoder.c
 *
 *-------------------------------------------------------------------------
 */
#include "format/format.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

static bool input_is_self_contained(Oid typid);
static bool is_builtin_function(Oid funcid);
static bool is_junk_error(int sqlerrcode);
static void release_input_owner(KafkaDecoder *dec, bool isCommit);
static void input_value(KafkaDecoder *dec, KafkaColumnDecoder *cd,
						const char *str, bool json_text);
static void input_value_isolated(KafkaDecoder *dec, KafkaColumnDecoder *cd,
								 const char *str, bool json_text);

/*
 * Set up the decoding of a table's rows: attr_needed (by attnum - 1) says
 * which columns the plan reads.  Everything goes into cxt, which must live
 * as long as the decoder.
 */
void
kfdw_decoder_init(KafkaDecoder *dec, KafkaTableOptions *opts,
				  const bool *attr_needed, MemoryContext cxt)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	int			i;

	memset(dec, 0, sizeof(*dec));
	dec->opts = opts;
	dec->cols = palloc0(sizeof(KafkaColumnDecoder) * Max(opts->natts, 1));
	dec->data = palloc0(sizeof(KafkaColumnDecoder *) * Max(opts->ndata, 1));
	dec->tolerate_junk = opts->ignore_junk ||
		opts->junk_attnum != InvalidAttrNumber ||
		opts->junk_error_attnum != InvalidAttrNumber;

	for (i = 0; i < opts->natts; i++)
	{
		KafkaColumn *col = &opts->columns[i];
		KafkaColumnDecoder *cd = &dec->cols[i];
		Oid			infunc;

		cd->col = col;
		if (col->dropped)
			continue;
		cd->needed = attr_needed[i];
		cd->basetype = getBaseType(col->typid);
		cd->isolate = !input_is_self_contained(col->typid);
		getTypeInputInfo(col->typid, &infunc, &cd->ioparam);
		fmgr_info_cxt(infunc, &cd->infunc, cxt);
		if (cd->basetype == JSONOID)
			cd->category = KAFKA_VALUE_JSON;
		else if (cd->basetype == JSONBOID)
			cd->category = KAFKA_VALUE_JSONB;
		else if (cd->basetype == BYTEAOID)
			cd->category = KAFKA_VALUE_BYTEA;
		else if (OidIsValid(get_element_type(cd->basetype)))
			cd->category = KAFKA_VALUE_ARRAY;
		else if (type_is_rowtype(cd->basetype))
			cd->category = KAFKA_VALUE_COMPOSITE;
		else
			cd->category = KAFKA_VALUE_SCALAR;

		if (col->kind == KAFKA_COL_DATA)
		{
			dec->data[col->data_index] = cd;
			if (cd->needed)
				dec->need_value = true;
		}
	}

	/*
	 * Junk columns say whether the message parses: they need it parsed,
	 * the key and the headers too, so that a row is junk or not whatever
	 * the columns the query reads.
	 */
	if ((opts->junk_attnum != InvalidAttrNumber &&
		 attr_needed[opts->junk_attnum - 1]) ||
		(opts->junk_error_attnum != InvalidAttrNumber &&
		 attr_needed[opts->junk_error_attnum - 1]))
	{
		dec->need_value = true;
		for (i = 0; i < opts->ndata; i++)
			dec->data[i]->needed = true;
		if (opts->key_attnum != InvalidAttrNumber)
			dec->cols[opts->key_attnum - 1].needed = true;
		if (opts->headers_attnum != InvalidAttrNumber)
			dec->cols[opts->headers_attnum - 1].needed = true;
	}
	MemoryContextSwitchTo(oldcxt);
}

/*
 * The scan is over: let go of what the column inputs held.
 */
void
kfdw_decoder_end(KafkaDecoder *dec)
{
	release_input_owner(dec, true);
}

/*
 * Whether the rows of a table can be decoded in parallel mode: always,
 * unless the table tolerates junk and the input of a column (data or key)
 * needs a subtransaction to catch its errors (see kfdw_decoder_set), which
 * parallel mode forbids.
 */
bool
kfdw_decoder_parallel_safe(KafkaTableOptions *opts)
{
	int			i;

	if (!opts->ignore_junk && opts->junk_attnum == InvalidAttrNumber &&
		opts->junk_error_attnum == InvalidAttrNumber)
		return true;
	for (i = 0; i < opts->natts; i++)
	{
		KafkaColumn *col = &opts->columns[i];

		if (!col->dropped &&
			(col->kind == KAFKA_COL_DATA || col->kind == KAFKA_COL_KEY) &&
			!input_is_self_contained(col->typid))
			return false;
	}
	return true;
}

/*
 * Whether a failure of the input of type typid can be caught without a
 * subtransaction.  That holds when its input function, and those of the
 * types it is made of (array elements, composite fields, the subtype of a
 * range), are built-in C functions, which raise their data exceptions
 * before they hold any resource, and no domain on the way has constraints:
 * a CHECK may call any SQL or PL function, which takes snapshots, locks or
 * an SPI connection before it fails.  Decided once per column at scan
 * start.
 */
static bool
input_is_self_contained(Oid typid)
{
	HeapTuple	tup;
	Form_pg_type typ;
	Oid			typinput;
	char		typtype;
	Oid			typbasetype;
	Oid			typelem;
	bool		result;

	check_stack_depth();
	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for type %u", typid);
	typ = (Form_pg_type) GETSTRUCT(tup);
	typinput = typ->typinput;
	typtype = typ->typtype;
	typbasetype = typ->typbasetype;
	typelem = typ->typelem;
	ReleaseSysCache(tup);

	if (!is_builtin_function(typinput))
		return false;

	switch (typtype)
	{
		case TYPTYPE_DOMAIN:
			result = !DomainHasConstraints(typid) &&
				input_is_self_contained(typbasetype);
			break;
		case TYPTYPE_COMPOSITE:
			{
				TupleDesc	tupdesc = lookup_rowtype_tupdesc_copy(typid, -1);
				int			i;

				result = true;
				for (i = 0; i < tupdesc->natts && result; i++)
				{
					Form_pg_attribute att = TupleDescAttr(tupdesc, i);

					if (!att->attisdropped)
						result = input_is_self_contained(att->atttypid);
				}
				FreeTupleDesc(tupdesc);
			}
			break;
		case TYPTYPE_RANGE:
			{
				TypeCacheEntry *tc = lookup_type_cache(typid,
													   TYPECACHE_RANGE_INFO);

				/* range_in also compares bounds and canonicalizes */
				result = is_builtin_function(tc->rng_cmp_proc_finfo.fn_oid) &&
					(!OidIsValid(tc->rng_canonical_finfo.fn_oid) ||
					 is_builtin_function(tc->rng_canonical_finfo.fn_oid)) &&
					input_is_self_contained(tc->rngelemtype->type_id);
			}
			break;
		case TYPTYPE_MULTIRANGE:
			result = input_is_self_contained(get_multirange_range(typid));
			break;
		default:
			result = typinput != F_ARRAY_IN ||
				input_is_self_contained(typelem);
			break;
	}
	return result;
}

/* A C function of PostgreSQL itself (not of an extension) */
static bool
is_builtin_function(Oid funcid)
{
	HeapTuple	tup;
	bool		result;

	if (!OidIsValid(funcid) || funcid >= FirstGenbkiObjectId)
		return false;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", funcid);
	result = ((Form_pg_proc) GETSTRUCT(tup))->prolang == INTERNALlanguageId;
	ReleaseSysCache(tup);
	return result;
}

/*
 * The errors that make a value junk: data exceptions (class 22), integrity
 * constraint violations (class 23), which domain constraints raise, and a
 * value too large or nested too deep for PostgreSQL (54000, and 54001, the
 * stack depth limit of a recursive parser).  Every other error (out of
 * memory, cancel, ...) goes on.
 */
static bool
is_junk_error(int sqlerrcode)
{
	return ERRCODE_TO_CATEGORY(sqlerrcode) == ERRCODE_DATA_EXCEPTION ||
		ERRCODE_TO_CATEGORY(sqlerrcode) == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION ||
		sqlerrcode == ERRCODE_PROGRAM_LIMIT_EXCEEDED ||
		sqlerrcode == ERRCODE_STATEMENT_TOO_COMPLEX;
}

/*
 * Store a text value in a column through the type's input function.
 * json_text says str is the JSON text of an array or object, which array
 * and composite columns take as their own literal.
 *
 * When the table tolerates junk, a junk error (is_junk_error) leaves the
 * column NULL and marks the message as junk.  For a column whose input is
 * self-contained (input_is_self_contained) the error is caught as it is,
 * with the input run under a resource owner of its own, released after a
 * failure: record_in, for one, holds a reference to its tuple descriptor
 * when a field's input fails.  Any other column's input runs in a
 * subtransaction, rolled back on error, which releases whatever the failed
 * input held.  Subtransactions cannot be started in parallel mode: there
 * (only under force_parallel_mode, as such scans are not parallel safe)
 * those columns' errors are errors.
 */
void
kfdw_decoder_set(KafkaDecoder *dec, KafkaColumnDecoder *cd, const char *str,
				 bool json_text)
{
	MemoryContext cxt = CurrentMemoryContext;

	/* JSON from a raw value, a CSV field or a key: bounded like a message */
	if (!json_text && (cd->category == KAFKA_VALUE_JSON ||
					   cd->category == KAFKA_VALUE_JSONB) &&
		!kfdw_decoder_check_depth(dec, cd, str, strlen(str)))
		return;

	dec->cur_column = cd->col->attname;

	if (!dec->tolerate_junk || (cd->isolate && IsInParallelMode()))
		input_value(dec, cd, str, json_text);
	else if (cd->isolate)
		input_value_isolated(dec, cd, str, json_text);
	else
	{
		ResourceOwner owner = CurrentResourceOwner;

		if (dec->input_owner == NULL)
			dec->input_owner = ResourceOwnerCreate(owner,
												   "kafka_fdw column input");
		CurrentResourceOwner = dec->input_owner;
		PG_TRY();
		{
			input_value(dec, cd, str, json_text);
			CurrentResourceOwner = owner;
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			CurrentResourceOwner = owner;
			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			if (!is_junk_error(edata->sqlerrcode))
				PG_RE_THROW();	/* the abort releases dec->input_owner */
			FlushErrorState();

			/* what the failed input held; a new owner for the next one */
			release_input_owner(dec, false);

			dec->cur_column = NULL;
			kfdw_decoder_fail(dec, cd, edata->message);
		}
		PG_END_TRY();
	}
	dec->cur_column = NULL;
}

/*
 * Whether data is text in the database encoding without NULs, as input
 * functions want it; if not, the message (cd NULL) or the column cd cannot
 * be decoded (see kfdw_decoder_fail).
 */
bool
kfdw_decoder_check_text(KafkaDecoder *dec, KafkaColumnDecoder *cd,
						const char *data, int len)
{
	if (pg_verify_mbstr(GetDatabaseEncoding(), data, len, true))
		return true;
	kfdw_decoder_fail(dec, cd,
					  psprintf("invalid byte sequence for encoding \"%s\"",
							   GetDatabaseEncodingName()));
	return false;
}

/*
 * Whether JSON text (a message, or a column's) nests within
 * KFDW_JSON_MAX_DEPTH levels; if not, the message (cd NULL) or the column
 * cd cannot be decoded.
 */
bool
kfdw_decoder_check_depth(KafkaDecoder *dec, KafkaColumnDecoder *cd,
						 const char *data, int len)
{
	if (kfdw_json_depth_ok(data, len))
		return true;
	kfdw_decoder_fail(dec, cd,
					  psprintf("JSON value nested more than %d levels deep",
							   KFDW_JSON_MAX_DEPTH));
	return false;
}

/*
 * Release and delete the resource owner of the decoder's column inputs:
 * after a failed input (isCommit false: whatever it held is let go
 * silently), or at the end of the scan (isCommit true: an input that
 * succeeded holds nothing, or gets the usual leak WARNING).
 */
static void
release_input_owner(KafkaDecoder *dec, bool isCommit)
{
	ResourceOwner owner = dec->input_owner;

	if (owner == NULL)
		return;
	dec->input_owner = NULL;
	ResourceOwnerRelease(owner, RESOURCE_RELEASE_BEFORE_LOCKS, isCommit, false);
	ResourceOwnerRelease(owner, RESOURCE_RELEASE_LOCKS, isCommit, false);
	ResourceOwnerRelease(owner, RESOURCE_RELEASE_AFTER_LOCKS, isCommit, false);
	ResourceOwnerDelete(owner);
}

/* Run the input function of the column: the value or an ERROR */
static void
input_value(KafkaDecoder *dec, KafkaColumnDecoder *cd, const char *str,
			bool json_text)
{
	int			idx = cd->col->attnum - 1;

	if (json_text && (cd->category == KAFKA_VALUE_ARRAY ||
					  cd->category == KAFKA_VALUE_COMPOSITE))
		str = kfdw_json_to_literal(str, cd->basetype);
	dec->values[idx] = InputFunctionCall(&cd->infunc, (char *) str,
										 cd->ioparam, cd->col->typmod);
	dec->nulls[idx] = false;
}

/*
 * input_value() in a subtransaction, as PL/pgSQL runs a block with an
 * exception handler: on error, the subtransaction is rolled back (which
 * releases the snapshots, locks, SPI connections and buffer pins the
 * failed input held), the memory context and resource owner are restored,
 * and a junk error makes the column junk; any other error is thrown again.
 */
static void
input_value_isolated(KafkaDecoder *dec, KafkaColumnDecoder *cd,
					 const char *str, bool json_text)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	/* the value is made in the caller's (per-row) context */
	MemoryContextSwitchTo(cxt);

	PG_TRY();
	{
		input_value(dec, cd, str, json_text);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();

		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;

		if (!is_junk_error(edata->sqlerrcode))
			ReThrowError(edata);
		dec->cur_column = NULL;
		kfdw_decoder_fail(dec, cd, edata->message);
	}
	PG_END_TRY();
}

/*
 * A message, or one of its columns (cd), could not be decoded.  Unless the
 * table tolerates junk this is an ERROR whose context names the topic,
 * partition, offset and column; otherwise what failed is NULL and the
 * reason is kept for the junk_error column.
 */
void
kfdw_decoder_fail(KafkaDecoder *dec, KafkaColumnDecoder *cd,
				  const char *reason)
{
	int			i;

	if (!dec->tolerate_junk)
	{
		dec->cur_column = cd ? cd->col->attname : NULL;
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_STRING_FORMAT),
				 errmsg("could not parse Kafka message"),
				 errdetail_internal("%s", reason),
				 errhint("Add a junk or junk_error column, or set the table option ignore_junk, to read such messages as junk.")));
	}

	if (cd)
	{
		dec->nulls[cd->col->attnum - 1] = true;
		if (dec->junk_reason == NULL)
			dec->junk_reason = psprintf("column \"%s\": %s",
										cd->col->attname, reason);
	}
	else
	{
		for (i = 0; i < dec->opts->ndata; i++)
			dec->nulls[dec->data[i]->col->attnum - 1] = true;
		if (dec->junk_reason == NULL)
			dec->junk_reason = pstrdup(reason);
	}
}
