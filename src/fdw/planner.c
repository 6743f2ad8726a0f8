/*-------------------------------------------------------------------------
 *
 * planner.c
 *		  Planning of scans of Kafka topics: pushdown, costs, ANALYZE and
 *		  IMPORT FOREIGN SCHEMA
 *
 * Quals on the partition and offset columns become a tree of ranges that
 * ranges.c evaluates per partition at scan start (so that parameters and
 * stable expressions are known); lower bounds on the timestamp column go
 * through offsets-for-times.  Every qual also stays in the plan's local
 * quals, so pushdown can make a scan cheaper but never wrong.
 *
 * Row estimates come from the watermarks: planning asks the brokers, in a
 * time bounded by the server's connect_timeout_ms.
 *
 * IDENTIFICATION
 *		  src/fdw/planner.c
 *
 *-------------------------------------------------------------------------
 */
#include "fdw/fdw.h"

#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "foreign/fdwapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

/* What planning learns about a scan, kept in baserel->fdw_private */
typedef struct KafkaPlanState
{
	KafkaTableOptions opts;
	List	   *pushdown;		/* tree, see fdw.h */
	List	   *ts_bounds;		/* (strategy, value index) pairs */
	List	   *values;			/* the Exprs the tree refers to */
	List	   *inexact;		/* RestrictInfos not enforced by pushdown */
	Bitmapset  *attrs_used;
	int			nparts;
	int			nsurviving;		/* partitions with something to read */
	double		messages;		/* in the ranges to read */
	bool		need_value;
} KafkaPlanState;

static void kafkaGetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel,
								   Oid foreigntableid);
static void kafkaGetForeignPaths(PlannerInfo *root, RelOptInfo *baserel,
								 Oid foreigntableid);
static ForeignScan *kafkaGetForeignPlan(PlannerInfo *root,
										RelOptInfo *baserel,
										Oid foreigntableid,
										ForeignPath *best_path,
										List *tlist,
										List *scan_clauses,
										Plan *outer_plan);
static bool kafkaAnalyzeForeignTable(Relation relation,
									 AcquireSampleRowsFunc *func,
									 BlockNumber *totalpages);
static List *kafkaImportForeignSchema(ImportForeignSchemaStmt *stmt,
									  Oid serverOid);

static List *pushdown_clause(KafkaPlanState *ps, RelOptInfo *baserel,
							 Expr *clause, bool conjunct, bool *exact);
static bool match_comparison(KafkaPlanState *ps, RelOptInfo *baserel,
							 Oid opno, Expr *left, Expr *right,
							 int *field, int *strategy, Expr **value);
static int	column_field(KafkaPlanState *ps, RelOptInfo *baserel, Expr *expr);
static bool is_pushable_value(Expr *expr);
static bool has_exec_param(Node *node, void *context);
static int	btree_strategy(Oid opno);
static int	add_value(KafkaPlanState *ps, Expr *value);
static List *make_leaf(KafkaPushdownKind kind);
static List *make_cmp(KafkaPlanState *ps, int field, int strategy,
					  Expr *value);

void
kfdw_set_plan_routines(FdwRoutine *routine)
{
	routine->GetForeignRelSize = kafkaGetForeignRelSize;
	routine->GetForeignPaths = kafkaGetForeignPaths;
	routine->GetForeignPlan = kafkaGetForeignPlan;
	routine->AnalyzeForeignTable = kafkaAnalyzeForeignTable;
	routine->ImportForeignSchema = kafkaImportForeignSchema;
}

/*
 * Estimate the rows of a scan from the watermarks of the partitions that
 * survive the pushdown, and the selectivity of the quals it does not
 * enforce exactly.
 */
static void
kafkaGetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel,
					   Oid foreigntableid)
{
	KafkaPlanState *ps = palloc0(sizeof(KafkaPlanState));
	List	   *clauses = NIL;
	ListCell   *lc;
	KafkaHandle *handle;
	Oid			userid;
	int			i;
	double		sel;

	baserel->fdw_private = ps;

	/* the event trigger checked the table, unless it was disabled */
	kfdw_check_table(foreigntableid);
	kfdw_get_table_options(foreigntableid, &ps->opts);

	/* the columns the query reads decide whether values are parsed */
	pull_varattnos((Node *) baserel->reltarget->exprs, baserel->relid,
				   &ps->attrs_used);
	foreach(lc, baserel->baserestrictinfo)
	{
		RestrictInfo *rinfo = lfirst_node(RestrictInfo, lc);
		bool		exact;
		List	   *node;

		pull_varattnos((Node *) rinfo->clause, baserel->relid,
					   &ps->attrs_used);
		node = pushdown_clause(ps, baserel, rinfo->clause, true, &exact);
		clauses = lappend(clauses, node);
		if (!exact)
			ps->inexact = lappend(ps->inexact, rinfo);
	}
	if (clauses != NIL)
		ps->pushdown = lcons(makeInteger(KFDW_PD_AND), clauses);

	for (i = 0; i < ps->opts.natts; i++)
	{
		KafkaColumn *col = &ps->opts.columns[i];

		if (!col->dropped &&
			(col->kind == KAFKA_COL_DATA || col->kind == KAFKA_COL_JUNK ||
			 col->kind == KAFKA_COL_JUNK_ERROR) &&
			(bms_is_member(col->attnum - FirstLowInvalidHeapAttributeNumber,
						   ps->attrs_used) ||
			 bms_is_member(0 - FirstLowInvalidHeapAttributeNumber,
						   ps->attrs_used)))
			ps->need_value = true;
	}

	/* ask the brokers how much there is to read */
	userid = OidIsValid(baserel->userid) ? baserel->userid : GetUserId();
	handle = kfdw_acquire_handle(ps->opts.serverid, userid,
								 KFDW_HANDLE_CONSUMER);
	{
		int64	   *low,
				   *high;

		ps->nparts = kfdw_topic_watermarks(handle, ps->opts.topic, &low, &high);
		kfdw_release_handle(handle);
		ps->messages = kfdw_estimate_messages(ps->pushdown, ps->values,
											  ps->nparts, low, high,
											  &ps->nsurviving);
	}

	sel = clauselist_selectivity(root,
								 extract_actual_clauses(ps->inexact, false),
								 baserel->relid, JOIN_INNER, NULL);
	baserel->tuples = ps->messages;
	baserel->rows = clamp_row_est(ps->messages * sel);
}

/*
 * One path reads every partition; a partial path shares the partitions
 * among parallel workers.
 */
static void
kafkaGetForeignPaths(PlannerInfo *root, RelOptInfo *baserel,
					 Oid foreigntableid)
{
	KafkaPlanState *ps = (KafkaPlanState *) baserel->fdw_private;
	Cost		startup_cost;
	Cost		per_message;
	Cost		total_cost;
	ForeignPath *path;

	/* metadata and watermarks: a few round trips to the brokers */
	startup_cost = 100.0;
	per_message = cpu_tuple_cost +
		(ps->need_value ? cpu_operator_cost * (ps->opts.ndata + 1) : 0) +
		baserel->baserestrictcost.per_tuple;
	total_cost = startup_cost + ps->messages * per_message;

	path = KFDW_CREATE_FOREIGNSCAN_PATH(root, baserel, NULL, baserel->rows,
								   startup_cost, total_cost, NIL,
								   baserel->lateral_relids, NULL, NIL);
	add_path(baserel, (Path *) path);

	/*
	 * The leader computes the ranges of a parallel scan once: not with
	 * values that change when the scan is run again.
	 */
	if (baserel->consider_parallel && ps->nsurviving > 1 &&
		max_parallel_workers_per_gather > 0 &&
		!has_exec_param((Node *) ps->values, NULL))
	{
		int			workers = Min(ps->nsurviving - 1,
								  max_parallel_workers_per_gather);
		double		share = workers + (parallel_leader_participation ? 1 : 0);

		path = KFDW_CREATE_FOREIGNSCAN_PATH(root, baserel, NULL,
									   clamp_row_est(baserel->rows / share),
									   startup_cost,
									   startup_cost + (total_cost - startup_cost) / share,
									   NIL, baserel->lateral_relids, NULL, NIL);
		path->path.parallel_aware = true;
		path->path.parallel_safe = true;
		path->path.parallel_workers = workers;
		add_partial_path(baserel, (Path *) path);
	}
}

/*
 * Make the plan: every qual is checked locally; the pushdown tree, its
 * values (evaluated at scan start), the columns read and the LIMIT go to
 * the executor.
 */
static ForeignScan *
kafkaGetForeignPlan(PlannerInfo *root, RelOptInfo *baserel,
					Oid foreigntableid, ForeignPath *best_path, List *tlist,
					List *scan_clauses, Plan *outer_plan)
{
	KafkaPlanState *ps = (KafkaPlanState *) baserel->fdw_private;
	List	   *attrs = NIL;
	List	   *fdw_private;
	int			limit = -1;
	int			x = -1;

	scan_clauses = extract_actual_clauses(scan_clauses, false);

	while ((x = bms_next_member(ps->attrs_used, x)) >= 0)
	{
		int			attnum = x + FirstLowInvalidHeapAttributeNumber;

		if (attnum >= 0)
			attrs = lappend(attrs, makeInteger(attnum));
	}

	/*
	 * A LIMIT bounds what the scan must return when this table is all the
	 * query reads and nothing sorts or aggregates its rows (then the
	 * planner's limit_tuples applies to it).  scan.c uses it only when the
	 * ranges enforce every qual exactly.
	 */
	if (root->limit_tuples >= 0 && root->limit_tuples < INT_MAX &&
		root->parse->sortClause == NIL &&
		bms_membership(root->all_baserels) == BMS_SINGLETON &&
		!best_path->path.parallel_aware)
		limit = (int) root->limit_tuples;

	fdw_private = list_make4(ps->pushdown, ps->ts_bounds, attrs,
							 makeInteger(limit));

	return make_foreignscan(tlist, scan_clauses, baserel->relid,
							ps->values, fdw_private, NIL, NIL, outer_plan);
}

/*
 * Add a value the pushdown refers to (evaluated at scan start, it goes to
 * the plan's fdw_exprs); the result is its index.
 */
static int
add_value(KafkaPlanState *ps, Expr *value)
{
	ps->values = lappend(ps->values, value);
	return list_length(ps->values) - 1;
}

/* A list node of the pushdown tree with no arguments */
static List *
make_leaf(KafkaPushdownKind kind)
{
	return list_make1(makeInteger(kind));
}

/* A comparison of a field with a value: "field <strategy> value" */
static List *
make_cmp(KafkaPlanState *ps, int field, int strategy, Expr *value)
{
	return list_make4(makeInteger(KFDW_PD_CMP), makeInteger(field),
					  makeInteger(strategy),
					  makeInteger(add_value(ps, value)));
}

/*
 * Turn a qual into a pushdown tree node.  What cannot be pushed down
 * becomes TRUE (read everything, filter locally).  exact says the node
 * accepts exactly the rows the qual does.  conjunct says every row must
 * pass the qual (it is not under an OR): only then can a timestamp bound
 * apply to every partition.
 */
static List *
pushdown_clause(KafkaPlanState *ps, RelOptInfo *baserel, Expr *clause,
				bool conjunct, bool *exact)
{
	*exact = false;

	if (is_andclause(clause) || is_orclause(clause))
	{
		BoolExpr   *b = (BoolExpr *) clause;
		List	   *result = list_make1(makeInteger(is_andclause(clause) ?
													KFDW_PD_AND : KFDW_PD_OR));
		ListCell   *lc;
		bool		all_exact = true;

		foreach(lc, b->args)
		{
			bool		e;

			result = lappend(result,
							 pushdown_clause(ps, baserel, (Expr *) lfirst(lc),
											 conjunct && is_andclause(clause),
											 &e));
			all_exact = all_exact && e;
		}
		*exact = all_exact;
		return result;
	}

	if (IsA(clause, OpExpr) && list_length(((OpExpr *) clause)->args) == 2)
	{
		OpExpr	   *op = (OpExpr *) clause;
		int			field;
		int			strategy;
		Expr	   *value;

		if (match_comparison(ps, baserel, op->opno, linitial(op->args),
							 lsecond(op->args), &field, &strategy, &value))
		{
			if (field == KFDW_FIELD_TIMESTAMP)
			{
				/* lower bounds only, that every row must pass */
				if (conjunct &&
					(strategy == BTGreaterEqualStrategyNumber ||
					 strategy == BTGreaterStrategyNumber ||
					 strategy == BTEqualStrategyNumber))
				{
					int			index = add_value(ps, value);

					ps->ts_bounds = lappend(ps->ts_bounds,
											list_make2(makeInteger(strategy),
													   makeInteger(index)));
				}
				return make_leaf(KFDW_PD_TRUE);
			}
			*exact = true;
			return make_cmp(ps, field, strategy, value);
		}
	}

	if (IsA(clause, ScalarArrayOpExpr))
	{
		ScalarArrayOpExpr *saop = (ScalarArrayOpExpr *) clause;
		Expr	   *left = linitial(saop->args);
		Expr	   *right = lsecond(saop->args);
		int			field = column_field(ps, baserel, left);
		Oid			elemtype = get_element_type(exprType((Node *) right));

		if (saop->useOr &&
			(field == KFDW_FIELD_PARTITION || field == KFDW_FIELD_OFFSET) &&
			kfdw_is_int_type(elemtype) &&
			is_pushable_value(right) &&
			btree_strategy(saop->opno) == BTEqualStrategyNumber)
		{
			*exact = true;
			return make_cmp(ps, field, 0, right);
		}
	}

	return make_leaf(KFDW_PD_TRUE);
}

/*
 * Is this "column op value" (or "value op column") on the partition,
 * offset or timestamp column, with a btree comparison and a value known
 * at scan start?
 */
static bool
match_comparison(KafkaPlanState *ps, RelOptInfo *baserel, Oid opno,
				 Expr *left, Expr *right, int *field, int *strategy,
				 Expr **value)
{
	bool		commuted = false;
	Oid			valtype;

	*field = column_field(ps, baserel, left);
	if (*field < 0)
	{
		*field = column_field(ps, baserel, right);
		if (*field < 0)
			return false;
		commuted = true;
		*value = left;
	}
	else
		*value = right;

	if (!is_pushable_value(*value))
		return false;

	valtype = exprType((Node *) *value);
	if (*field == KFDW_FIELD_TIMESTAMP)
	{
		/* only a timestamptz column: timestamp ones depend on TimeZone */
		if (getBaseType(ps->opts.columns[ps->opts.timestamp_attnum - 1].typid) !=
			TIMESTAMPTZOID)
			return false;
		if (valtype != TIMESTAMPTZOID && valtype != TIMESTAMPOID &&
			valtype != DATEOID)
			return false;
	}
	else if (!kfdw_is_int_type(valtype))
		return false;

	*strategy = btree_strategy(opno);
	if (*strategy < BTLessStrategyNumber || *strategy > BTGreaterStrategyNumber)
		return false;
	if (commuted)
		*strategy = BTMaxStrategyNumber + 1 - *strategy;	/* < becomes > */
	return true;
}

/*
 * The btree strategy of an operator, as the first operator family that has
 * it says, or InvalidStrategy
 */
static int
btree_strategy(Oid opno)
{
	List	   *interp = get_op_btree_interpretation(opno);

	if (interp == NIL)
		return InvalidStrategy;
	return ((OpBtreeInterpretation *) linitial(interp))->strategy;
}

/* Which pushdown field a column reference is, or -1 */
static int
column_field(KafkaPlanState *ps, RelOptInfo *baserel, Expr *expr)
{
	Var		   *var;

	while (IsA(expr, RelabelType))
		expr = ((RelabelType *) expr)->arg;
	if (!IsA(expr, Var))
		return -1;
	var = (Var *) expr;
	if (var->varno != baserel->relid || var->varlevelsup != 0)
		return -1;
	if (var->varattno == ps->opts.partition_attnum &&
		ps->opts.partition_attnum != InvalidAttrNumber)
		return KFDW_FIELD_PARTITION;
	if (var->varattno == ps->opts.offset_attnum &&
		ps->opts.offset_attnum != InvalidAttrNumber)
		return KFDW_FIELD_OFFSET;
	if (var->varattno == ps->opts.timestamp_attnum &&
		ps->opts.timestamp_attnum != InvalidAttrNumber)
		return KFDW_FIELD_TIMESTAMP;
	return -1;
}

/*
 * Can the value be computed once at scan start?  Constants, parameters
 * of the statement, the outputs of initplans (uncorrelated subqueries,
 * "(SELECT max(o) FROM sink)"), values of an outer row (a correlated
 * subquery; the scan computes its ranges again when they change) and
 * stable functions of them can; column references, volatile functions
 * and SubPlans in the expression itself cannot.
 */
static bool
is_pushable_value(Expr *expr)
{
	return !contain_var_clause((Node *) expr) &&
		!contain_volatile_functions((Node *) expr) &&
		!contain_subplans((Node *) expr);
}

/*
 * Walker: true if the expression has a PARAM_EXEC parameter, known only
 * when the plan runs
 */
static bool
has_exec_param(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Param))
		return ((Param *) node)->paramkind == PARAM_EXEC;
	return expression_tree_walker(node, has_exec_param, context);
}

/*
 * ANALYZE: sample messages for column statistics (see kfdw_sample_rows).
 */
static bool
kafkaAnalyzeForeignTable(Relation relation, AcquireSampleRowsFunc *func,
						 BlockNumber *totalpages)
{
	*func = kfdw_sample_rows;
	*totalpages = 1;
	return true;
}

/*
 * IMPORT FOREIGN SCHEMA: one foreign table per topic of the cluster, with
 * the meta columns and the whole value as one column in raw format.
 * Internal topics (names starting with "__") are skipped.  The import
 * option value_type (text, bytea, json or jsonb; text by default) sets the
 * type of the value column.
 */
static List *
kafkaImportForeignSchema(ImportForeignSchemaStmt *stmt, Oid serverOid)
{
	List	   *commands = NIL;
	const char *value_type = "text";
	ListCell   *lc;
	KafkaHandle *handle;
	const rd_kafka_metadata_t *md;
	int			i;

	foreach(lc, stmt->options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, "value_type") == 0)
		{
			value_type = defGetString(def);
			if (strcmp(value_type, "text") != 0 &&
				strcmp(value_type, "bytea") != 0 &&
				strcmp(value_type, "json") != 0 &&
				strcmp(value_type, "jsonb") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"value_type\": \"%s\"",
								value_type),
						 errhint("Valid types are text, bytea, json and jsonb.")));
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("invalid option \"%s\"", def->defname),
					 errhint("Valid options in this context are: value_type")));
	}

	handle = kfdw_acquire_handle(serverOid, GetUserId(), KFDW_HANDLE_CONSUMER);
	md = kfdw_get_metadata(handle, NULL);
	kfdw_release_handle(handle);

	PG_TRY();
	{
		for (i = 0; i < md->topic_cnt; i++)
		{
			const char *topic = md->topics[i].topic;
			bool		listed = false;
			ListCell   *lc2;
			StringInfoData buf;

			if (strncmp(topic, "__", 2) == 0 ||
				md->topics[i].err != RD_KAFKA_RESP_ERR_NO_ERROR)
				continue;
			if (strlen(topic) >= NAMEDATALEN)
			{
				ereport(NOTICE,
						(errmsg("skipping Kafka topic \"%s\": its name is too long for a table name",
								topic)));
				continue;
			}
			foreach(lc2, stmt->table_list)
			{
				if (strcmp(((RangeVar *) lfirst(lc2))->relname, topic) == 0)
					listed = true;
			}
			if ((stmt->list_type == FDW_IMPORT_SCHEMA_LIMIT_TO && !listed) ||
				(stmt->list_type == FDW_IMPORT_SCHEMA_EXCEPT && listed))
				continue;

			/*
			 * PostgreSQL runs these statements with the session's
			 * search_path: every type is named by its schema.
			 */
			initStringInfo(&buf);
			appendStringInfo(&buf,
							 "CREATE FOREIGN TABLE %s (\n"
							 "  \"partition\" pg_catalog.int4 OPTIONS (partition 'true'),\n"
							 "  \"offset\" pg_catalog.int8 OPTIONS (\"offset\" 'true'),\n"
							 "  \"key\" pg_catalog.text OPTIONS (key 'true'),\n"
							 "  \"timestamp\" pg_catalog.timestamptz OPTIONS (\"timestamp\" 'true'),\n"
							 "  \"headers\" pg_catalog.jsonb OPTIONS (headers 'true'),\n"
							 "  \"value\" pg_catalog.%s\n"
							 ") SERVER %s OPTIONS (topic %s, format 'raw')",
							 quote_identifier(topic), value_type,
							 quote_identifier(stmt->server_name),
							 quote_literal_cstr(topic));
			commands = lappend(commands, buf.data);
		}
	}
	PG_FINALLY();
	{
		rd_kafka_metadata_destroy(md);
	}
	PG_END_TRY();

	return commands;
}
