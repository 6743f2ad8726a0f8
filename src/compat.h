/*-------------------------------------------------------------------------
 *
 * compat.h
 *		  Differences between PostgreSQL major versions, in one place
 *
 * kafka_fdw targets PostgreSQL 15; every version-specific construct lives
 * here so that 13 to 17 can be supported by editing this file alone.
 *
 * IDENTIFICATION
 *		  src/compat.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAFKA_FDW_COMPAT_H
#define KAFKA_FDW_COMPAT_H

#if PG_VERSION_NUM < 150000
#error "kafka_fdw requires PostgreSQL 15 or later"
#endif

/*
 * PostgreSQL 16 moved the permission-checking fields of RangeTblEntry into
 * RTEPermissionInfo; code that needs the checkAsUser of a scanned relation
 * goes through this macro.
 */
#if PG_VERSION_NUM >= 160000
#define KFDW_RTE_CHECK_AS_USER(estate, rte) \
	(getRTEPermissionInfo((estate)->es_rteperminfos, (rte))->checkAsUser)
#else
#define KFDW_RTE_CHECK_AS_USER(estate, rte) ((rte)->checkAsUser)
#endif

/*
 * The semantic actions of the JSON parser return a JsonParseErrorType since
 * PostgreSQL 16; PostgreSQL 17 lets the caller provide the lexer context.
 */
#if PG_VERSION_NUM >= 160000
#define KFDW_JSON_ACTION JsonParseErrorType
#define KFDW_JSON_ACTION_DONE return JSON_SUCCESS
#else
#define KFDW_JSON_ACTION void
#define KFDW_JSON_ACTION_DONE return
#endif
#if PG_VERSION_NUM >= 170000
#define KFDW_MAKE_JSON_LEX(json, len, need_escapes) \
	makeJsonLexContextCstringLen(NULL, (json), (len), GetDatabaseEncoding(), \
								 (need_escapes))
#else
#define KFDW_MAKE_JSON_LEX(json, len, need_escapes) \
	makeJsonLexContextCstringLen((json), (len), GetDatabaseEncoding(), \
								 (need_escapes))
#endif

/*
 * Wait events.  PostgreSQL 17 lets an extension name its own
 * (WaitEventExtensionNew), which pg_stat_activity shows under the type
 * "Extension"; before, every wait of an extension is PG_WAIT_EXTENSION
 * (type "Extension", event "Extension").  Only 15 is tested.  The user
 * includes utils/wait_event.h.
 */
#if PG_VERSION_NUM >= 170000
#define KFDW_WAIT_EVENT_NEW(name) WaitEventExtensionNew(name)
#else
#define KFDW_WAIT_EVENT_NEW(name) PG_WAIT_EXTENSION
#endif

#endif							/* KAFKA_FDW_COMPAT_H */
