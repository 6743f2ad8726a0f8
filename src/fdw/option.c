/*-------------------------------------------------------------------------
 *
 * option.c
 *		  Option validation for kafka_fdw, and the options of foreign tables and
 *		  their columns
 *
 * The validator checks the options of every kind of object; those of
 * servers and user mappings, which configure librdkafka, are the Kafka
 * client layer's (kafka/config.c).  What no single option shows (the types
 * of meta columns, the credentials of a user mapping with its server's
 * options) is checked by event triggers after the DDL command.
 *
 * IDENTIFICATION
 *		  src/fdw/option.c
 *
 *-------------------------------------------------------------------------
 */
#include "fdw/fdw.h"

#include "access/htup_details.h"
#include "access/reloptions.h"
#include "access/table.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_foreign_data_wrapper.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_foreign_table.h"
#include "catalog/pg_type.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

/*
 * The options of foreign tables and columns, with the catalog each belongs
 * to.  Those of servers and user mappings are config.c's.
 */
typedef struct KafkaFdwOption
{
	const char *optname;
	Oid			optcontext;		/* OID of catalog in which option may appear */
} KafkaFdwOption;

static const KafkaFdwOption valid_options[] = {
	/* foreign table */
	{"topic", ForeignTableRelationId},
	{"format", ForeignTableRelationId},
	{"delimiter", ForeignTableRelationId},
	{"quote", ForeignTableRelationId},
	{"escape", ForeignTableRelationId},
	{"null", ForeignTableRelationId},
	{"strict", ForeignTableRelationId},
	{"ignore_junk", ForeignTableRelationId},
	{"batch_size", ForeignTableRelationId},
	{"buffer_delay", ForeignTableRelationId},
	{"group.id", ForeignTableRelationId},
	{"group.start", ForeignTableRelationId},
	/* accepted for compatibility with adjust/kafka_fdw; no effect */
	{"num_partitions", ForeignTableRelationId},
	{"encoding", ForeignTableRelationId},

	/* column */
	{"partition", AttributeRelationId},
	{"offset", AttributeRelationId},
	{"key", AttributeRelationId},
	{"timestamp", AttributeRelationId},
	{"headers", AttributeRelationId},
	{"junk", AttributeRelationId},
	{"junk_error", AttributeRelationId},
	{"json", AttributeRelationId},
	{"force_not_null", AttributeRelationId},
	{"force_null", AttributeRelationId},

	/* Sentinel */
	{NULL, InvalidOid}
};

static bool is_valid_option(const char *option, Oid context);
static void check_single_char(DefElem *def);
static void validate_table_options(List *options_list);
static void validate_column_options(List *options_list);
static bool is_kafka_fdw_wrapper(Oid fdwid);
static bool is_kafka_fdw_table(Oid relid);

PG_FUNCTION_INFO_V1(kafka_fdw_validator);
PG_FUNCTION_INFO_V1(kafka_fdw_check_table_ddl);
PG_FUNCTION_INFO_V1(kafka_fdw_check_mapping_ddl);

/*
 * Validate the generic options given to a FOREIGN DATA WRAPPER, SERVER,
 * USER MAPPING or FOREIGN TABLE that uses kafka_fdw.
 *
 * Raise an ERROR if the option or its value is considered invalid.
 */
Datum
kafka_fdw_validator(PG_FUNCTION_ARGS)
{
	List	   *options_list = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid			catalog = PG_GETARG_OID(1);
	ListCell   *cell;

	if (catalog == ForeignServerRelationId)
	{
		kfdw_validate_server_options(options_list);
		PG_RETURN_VOID();
	}
	if (catalog == UserMappingRelationId)
	{
		kfdw_validate_mapping_options(options_list);
		PG_RETURN_VOID();
	}

	foreach(cell, options_list)
	{
		DefElem    *def = (DefElem *) lfirst(cell);

		if (!is_valid_option(def->defname, catalog))
		{
			/*
			 * Unknown option specified, complain about it.  Provide a hint
			 * with the list of valid options for the object.
			 */
			const KafkaFdwOption *opt;
			StringInfoData buf;

			initStringInfo(&buf);
			for (opt = valid_options; opt->optname; opt++)
			{
				if (catalog == opt->optcontext)
					appendStringInfo(&buf, "%s%s", (buf.len > 0) ? ", " : "",
									 opt->optname);
			}

			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("invalid option \"%s\"", def->defname),
					 buf.len > 0
					 ? errhint("Valid options in this context are: %s",
							   buf.data)
					 : errhint("There are no valid options in this context.")));
		}
	}

	if (catalog == ForeignTableRelationId)
		validate_table_options(options_list);
	if (catalog == AttributeRelationId)
		validate_column_options(options_list);

	PG_RETURN_VOID();
}

/*
 * Check the values of a foreign table's options, and, for CSV, that they
 * fit together as COPY requires (see ProcessCopyOptions in PostgreSQL's
 * commands/copy.c): a record must read back as it was written.
 */
static void
validate_table_options(List *options_list)
{
	bool		csv = false;
	char		delimiter = ',';
	char		quote = '"';
	const char *null_string = "";
	ListCell   *cell;

	foreach(cell, options_list)
	{
		DefElem    *def = (DefElem *) lfirst(cell);
		const char *name = def->defname;

		if (strcmp(name, "format") == 0)
		{
			const char *format = defGetString(def);

			if (kfdw_format_by_name(format) < 0)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"format\": \"%s\"", format),
						 errhint("Valid formats are json, csv and raw.")));
			csv = (kfdw_format_by_name(format) == KAFKA_FORMAT_CSV);
		}
		else if (strcmp(name, "delimiter") == 0)
		{
			check_single_char(def);
			delimiter = defGetString(def)[0];
		}
		else if (strcmp(name, "quote") == 0)
		{
			check_single_char(def);
			quote = defGetString(def)[0];
		}
		else if (strcmp(name, "escape") == 0)
			check_single_char(def);
		else if (strcmp(name, "null") == 0)
		{
			null_string = defGetString(def);
			if (strchr(null_string, '\n') || strchr(null_string, '\r'))
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("option \"null\" cannot contain a newline or carriage return")));
		}
		else if (strcmp(name, "strict") == 0 || strcmp(name, "ignore_junk") == 0)
			(void) kfdw_get_bool_option(def);
		else if (strcmp(name, "batch_size") == 0 ||
				 strcmp(name, "num_partitions") == 0)
			(void) kfdw_get_int_option(def, 1);
		else if (strcmp(name, "buffer_delay") == 0)
			(void) kfdw_get_int_option(def, 0);
		else if (strcmp(name, "encoding") == 0)
		{
			if (pg_char_to_encoding(defGetString(def)) < 0)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"encoding\": \"%s\"",
								defGetString(def)),
						 errhint("Give the name of an encoding that PostgreSQL knows, such as UTF8.")));
		}
		else if (strcmp(name, "group.id") == 0 && defGetString(def)[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("option \"group.id\" must not be empty")));
		else if (strcmp(name, "group.start") == 0 &&
				 strcmp(defGetString(def), "earliest") != 0 &&
				 strcmp(defGetString(def), "latest") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("invalid value for option \"group.start\": \"%s\"",
							defGetString(def)),
					 errhint("Valid values are earliest and latest.")));
		else if (strcmp(name, "topic") == 0 && defGetString(def)[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("option \"topic\" must not be empty")));
	}

	if (!csv)
		return;
	if (delimiter == quote)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("options \"delimiter\" and \"quote\" must be different")));
	if (strchr(null_string, delimiter) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("option \"null\" must not contain the delimiter")));
	if (strchr(null_string, quote) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("option \"null\" must not contain the quote character")));
}

/*
 * Check the values of a column's options; the rules that need the whole
 * table are kfdw_check_table's.
 */
static void
validate_column_options(List *options_list)
{
	ListCell   *cell;

	foreach(cell, options_list)
	{
		DefElem    *def = (DefElem *) lfirst(cell);

		if (strcmp(def->defname, "json") == 0)
		{
			if (defGetString(def)[0] == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("option \"json\" must not be empty")));
		}
		else
			(void) kfdw_get_bool_option(def);
	}
}

static void
check_single_char(DefElem *def)
{
	const char *value = defGetString(def);

	if (strlen(value) != 1 || IS_HIGHBIT_SET(value[0]))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("option \"%s\" must be a single one-byte character",
						def->defname)));
	if (value[0] == '\n' || value[0] == '\r')
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("option \"%s\" cannot be a newline or carriage return",
						def->defname)));
}

/*
 * Check if the provided option is one of the valid options.
 * context is the Oid of the catalog holding the object the option is for.
 */
static bool
is_valid_option(const char *option, Oid context)
{
	const KafkaFdwOption *opt;

	for (opt = valid_options; opt->optname; opt++)
	{
		if (context == opt->optcontext && strcmp(opt->optname, option) == 0)
			return true;
	}
	return false;
}

/*
 * Event trigger: check the credentials of every user mapping of a kafka_fdw
 * server that the DDL command created or altered together with the
 * server's options, as the clients of its user will be configured.
 */
Datum
kafka_fdw_check_mapping_ddl(PG_FUNCTION_ARGS)
{
	uint64		i;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"check_mapping_ddl\" must be fired as an event trigger")));

	SPI_connect();
	if (SPI_execute("SELECT objid FROM pg_catalog.pg_event_trigger_ddl_commands() "
					"WHERE classid OPERATOR(pg_catalog.=) "
					"'pg_catalog.pg_user_mapping'::pg_catalog.regclass",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not list the user mappings of the DDL command");

	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		objid = SPI_getbinval(SPI_tuptable->vals[i],
										  SPI_tuptable->tupdesc, 1, &isnull);
		HeapTuple	tuple;
		Oid			serverid;
		Datum		options;
		List	   *user_options = NIL;
		ForeignServer *server;

		if (isnull)
			continue;
		tuple = SearchSysCache1(USERMAPPINGOID, objid);
		if (!HeapTupleIsValid(tuple))
			continue;
		serverid = ((Form_pg_user_mapping) GETSTRUCT(tuple))->umserver;
		options = SysCacheGetAttr(USERMAPPINGOID, tuple,
								  Anum_pg_user_mapping_umoptions, &isnull);
		if (!isnull)
			user_options = untransformRelOptions(options);
		ReleaseSysCache(tuple);

		server = GetForeignServer(serverid);
		if (is_kafka_fdw_wrapper(server->fdwid))
			kfdw_check_mapping_conf(server, user_options);
	}
	SPI_finish();

	PG_RETURN_NULL();
}

/*
 * Does the wrapper use kafka_fdw's handler?
 */
static bool
is_kafka_fdw_wrapper(Oid fdwid)
{
	ForeignDataWrapper *fdw = GetForeignDataWrapper(fdwid);
	char	   *nspname;
	char	   *proname;

	if (!OidIsValid(fdw->fdwhandler))
		return false;
	proname = get_func_name(fdw->fdwhandler);
	nspname = get_namespace_name(get_func_namespace(fdw->fdwhandler));
	return proname && nspname && strcmp(proname, "kafka_fdw_handler") == 0 &&
		strcmp(nspname, "kafka_fdw") == 0;
}

/*
 * Read the options of a foreign table and its columns.
 */
void
kfdw_get_table_options(Oid relid, KafkaTableOptions *opts)
{
	ForeignTable *table = GetForeignTable(relid);
	Relation	rel;
	TupleDesc	tupdesc;
	ListCell   *cell;
	bool		have_escape = false;
	int			i;

	memset(opts, 0, sizeof(*opts));
	opts->relid = relid;
	opts->serverid = table->serverid;
	opts->topic = get_rel_name(relid);
	opts->format = KAFKA_FORMAT_JSON;
	opts->delimiter = ',';
	opts->quote = '"';
	opts->escape = '"';
	opts->null_string = "";
	opts->batch_size = 1000;
	opts->buffer_delay = 100;

	foreach(cell, table->options)
	{
		DefElem    *def = (DefElem *) lfirst(cell);
		const char *name = def->defname;

		if (strcmp(name, "topic") == 0)
			opts->topic = defGetString(def);
		else if (strcmp(name, "format") == 0)
		{
			int			format = kfdw_format_by_name(defGetString(def));

			/* validated already */
			opts->format = format >= 0 ? (KafkaFormat) format :
				KAFKA_FORMAT_JSON;
		}
		else if (strcmp(name, "delimiter") == 0)
			opts->delimiter = defGetString(def)[0];
		else if (strcmp(name, "quote") == 0)
			opts->quote = defGetString(def)[0];
		else if (strcmp(name, "escape") == 0)
		{
			opts->escape = defGetString(def)[0];
			have_escape = true;
		}
		else if (strcmp(name, "null") == 0)
			opts->null_string = defGetString(def);
		else if (strcmp(name, "strict") == 0)
			opts->strict = kfdw_get_bool_option(def);
		else if (strcmp(name, "ignore_junk") == 0)
			opts->ignore_junk = kfdw_get_bool_option(def);
		else if (strcmp(name, "batch_size") == 0)
			opts->batch_size = kfdw_get_int_option(def, 1);
		else if (strcmp(name, "buffer_delay") == 0)
			opts->buffer_delay = kfdw_get_int_option(def, 0);
	}
	/* as in COPY, the escape character is the quote unless given */
	if (!have_escape)
		opts->escape = opts->quote;

	/* the caller holds a lock on the relation */
	rel = table_open(relid, NoLock);
	tupdesc = RelationGetDescr(rel);
	opts->natts = tupdesc->natts;
	opts->columns = palloc0(sizeof(KafkaColumn) * Max(tupdesc->natts, 1));

	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(tupdesc, i);
		KafkaColumn *col = &opts->columns[i];
		List	   *colopts;
		ListCell   *lc;
		int			nkinds = 0;

		col->attnum = attr->attnum;
		col->attname = pstrdup(NameStr(attr->attname));
		col->json_name = col->attname;
		col->typid = attr->atttypid;
		col->typmod = attr->atttypmod;
		col->kind = KAFKA_COL_DATA;
		col->dropped = attr->attisdropped;
		col->data_index = -1;
		if (attr->attisdropped)
			continue;

		colopts = GetForeignColumnOptions(relid, attr->attnum);
		foreach(lc, colopts)
		{
			DefElem    *def = (DefElem *) lfirst(lc);
			const char *name = def->defname;
			KafkaColumnKind kind;
			AttrNumber *slot;

			if (strcmp(name, "json") == 0)
			{
				col->json_name = defGetString(def);
				if (col->json_name[0] == '\0')
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
							 errmsg("option \"json\" of column \"%s\" must not be empty",
									col->attname)));
				continue;
			}
			/* COPY's CSV options of the same names; no effect elsewhere */
			if (strcmp(name, "force_not_null") == 0)
			{
				col->force_not_null = kfdw_get_bool_option(def);
				continue;
			}
			if (strcmp(name, "force_null") == 0)
			{
				col->force_null = kfdw_get_bool_option(def);
				continue;
			}

			if (!kfdw_get_bool_option(def))
				continue;

			if (strcmp(name, "partition") == 0)
				kind = KAFKA_COL_PARTITION, slot = &opts->partition_attnum;
			else if (strcmp(name, "offset") == 0)
				kind = KAFKA_COL_OFFSET, slot = &opts->offset_attnum;
			else if (strcmp(name, "key") == 0)
				kind = KAFKA_COL_KEY, slot = &opts->key_attnum;
			else if (strcmp(name, "timestamp") == 0)
				kind = KAFKA_COL_TIMESTAMP, slot = &opts->timestamp_attnum;
			else if (strcmp(name, "headers") == 0)
				kind = KAFKA_COL_HEADERS, slot = &opts->headers_attnum;
			else if (strcmp(name, "junk") == 0)
				kind = KAFKA_COL_JUNK, slot = &opts->junk_attnum;
			else if (strcmp(name, "junk_error") == 0)
				kind = KAFKA_COL_JUNK_ERROR, slot = &opts->junk_error_attnum;
			else
				continue;

			if (*slot != InvalidAttrNumber)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_COLUMN_DEFINITION),
						 errmsg("columns \"%s\" and \"%s\" both have option \"%s\"",
								opts->columns[*slot - 1].attname,
								col->attname, name),
						 errhint("A kafka_fdw table has at most one %s column.",
								 name)));
			*slot = attr->attnum;
			col->kind = kind;
			nkinds++;
		}

		if (nkinds > 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_COLUMN_DEFINITION),
					 errmsg("column \"%s\" has more than one of the options partition, offset, key, timestamp, headers, junk and junk_error",
							col->attname)));

		if (col->kind == KAFKA_COL_DATA)
			col->data_index = opts->ndata++;
	}
	table_close(rel, NoLock);
}

/*
 * Complain unless a column's type is one of the given ones (domains over
 * them included).
 */
static void
check_column_type(KafkaTableOptions *opts, KafkaColumn *col,
				  const char *what, const Oid *types, const char *typenames)
{
	Oid			basetype = getBaseType(col->typid);

	for (; *types != InvalidOid; types++)
	{
		if (basetype == *types)
			return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
			 errmsg("%s column \"%s\" of foreign table \"%s\" has type %s",
					what, col->attname, get_rel_name(opts->relid),
					format_type_be(col->typid)),
			 errhint("The %s column must be of type %s.", what, typenames)));
}

/*
 * Check everything about a kafka_fdw table that no single option shows:
 * the types of its meta columns, duplicate meta columns, and what its
 * format needs.  Run by the event trigger after CREATE/ALTER FOREIGN TABLE
 * and IMPORT FOREIGN SCHEMA, and again when a table is used.
 */
void
kfdw_check_table(Oid relid)
{
	static const Oid int_types[] = {INT4OID, INT2OID, INT8OID, InvalidOid};
	static const Oid offset_types[] = {INT8OID, InvalidOid};
	static const Oid key_types[] = {TEXTOID, VARCHAROID, BYTEAOID, JSONOID, JSONBOID, InvalidOid};
	static const Oid ts_types[] = {TIMESTAMPTZOID, TIMESTAMPOID, InvalidOid};
	static const Oid headers_types[] = {JSONBOID, InvalidOid};
	static const Oid text_types[] = {TEXTOID, InvalidOid};
	KafkaTableOptions opts;
	int			i;

	kfdw_get_table_options(relid, &opts);

	for (i = 0; i < opts.natts; i++)
	{
		KafkaColumn *col = &opts.columns[i];

		if (col->dropped)
			continue;
		switch (col->kind)
		{
			case KAFKA_COL_PARTITION:
				check_column_type(&opts, col, "partition", int_types,
								  "smallint, integer or bigint");
				break;
			case KAFKA_COL_OFFSET:
				check_column_type(&opts, col, "offset", offset_types, "bigint");
				break;
			case KAFKA_COL_KEY:
				check_column_type(&opts, col, "key", key_types,
								  "text, varchar, bytea, json or jsonb");
				break;
			case KAFKA_COL_TIMESTAMP:
				check_column_type(&opts, col, "timestamp", ts_types,
								  "timestamptz or timestamp");
				break;
			case KAFKA_COL_HEADERS:
				check_column_type(&opts, col, "headers", headers_types, "jsonb");
				break;
			case KAFKA_COL_JUNK:
				check_column_type(&opts, col, "junk", text_types, "text");
				break;
			case KAFKA_COL_JUNK_ERROR:
				check_column_type(&opts, col, "junk_error", text_types, "text");
				break;
			case KAFKA_COL_DATA:
				if (opts.format == KAFKA_FORMAT_RAW)
					check_column_type(&opts, col, "raw data", key_types,
									  "text, varchar, bytea, json or jsonb");
				break;
		}
		if (col->kind != KAFKA_COL_DATA && col->json_name != col->attname)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_COLUMN_DEFINITION),
					 errmsg("option \"json\" is only valid on data columns, not on column \"%s\"",
							col->attname)));
	}

	if (opts.format == KAFKA_FORMAT_RAW && opts.ndata > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_COLUMN_DEFINITION),
				 errmsg("foreign table \"%s\" in raw format has %d data columns",
						get_rel_name(relid), opts.ndata),
				 errhint("A raw table has one column for the message value; mark the other columns as partition, offset, key, timestamp or headers.")));
}

/*
 * Is relid a foreign table whose wrapper uses kafka_fdw's handler?
 */
static bool
is_kafka_fdw_table(Oid relid)
{
	ForeignTable *table;
	ForeignServer *server;
	ForeignDataWrapper *fdw;
	HeapTuple	tuple;
	bool		result;

	if (get_rel_relkind(relid) != RELKIND_FOREIGN_TABLE)
		return false;

	table = GetForeignTable(relid);
	server = GetForeignServer(table->serverid);
	fdw = GetForeignDataWrapper(server->fdwid);
	if (!OidIsValid(fdw->fdwhandler))
		return false;

	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(fdw->fdwhandler));
	if (!HeapTupleIsValid(tuple))
		return false;
	result = strcmp(get_func_name(fdw->fdwhandler), "kafka_fdw_handler") == 0 &&
		strcmp(get_namespace_name(get_func_namespace(fdw->fdwhandler)),
			   "kafka_fdw") == 0;
	ReleaseSysCache(tuple);
	return result;
}

/*
 * Event trigger: check every kafka_fdw table the DDL command created or
 * altered, so that mistakes surface when the table is defined rather than
 * at its first query.
 */
Datum
kafka_fdw_check_table_ddl(PG_FUNCTION_ARGS)
{
	uint64		i;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"check_table_ddl\" must be fired as an event trigger")));

	/*
	 * This runs inside every ALTER TABLE of the database, often a
	 * superuser's: whatever the session's search_path, no object of another
	 * role may stand in for the built-in operator, type or function.
	 */
	SPI_connect();
	if (SPI_execute("SELECT objid FROM pg_catalog.pg_event_trigger_ddl_commands() "
					"WHERE classid OPERATOR(pg_catalog.=) "
					"'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not list the relations of the DDL command");

	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		objid = SPI_getbinval(SPI_tuptable->vals[i],
										  SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull && is_kafka_fdw_table(DatumGetObjectId(objid)))
			kfdw_check_table(DatumGetObjectId(objid));
	}
	SPI_finish();

	PG_RETURN_NULL();
}
