/*-------------------------------------------------------------------------
 *
 * compat.h
 *		  Differences between PostgreSQL major versions, in one place
 *
 * kafka_fdw is built and tested on PostgreSQL 15, and refuses older
 * servers (it needs shmem_request_hook and the publication column lists and
 * row filters of 15).  Every call whose form differs in PostgreSQL 16 or 17
 * goes through this file, so that supporting them means editing this file
 * alone; those branches follow the newer servers' headers but are not yet
 * built or tested.  PostgreSQL 18 changes more (create_foreignscan_path's
 * disabled_nodes, ReplicationSlotAcquire's error_if_invalid) and is not
 * covered.
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
 * PostgreSQL 16 replaced the permission checks of each object type
 * (pg_class_ownercheck, pg_foreign_server_aclcheck, ...) by
 * object_ownercheck and object_aclcheck, given the object's catalog;
 * pg_class_aclcheck stays.  Callers include utils/acl.h.
 */
#if PG_VERSION_NUM >= 160000
#include "catalog/pg_class.h"
#include "catalog/pg_foreign_server.h"
#define KFDW_CLASS_OWNERCHECK(relid, roleid) \
	object_ownercheck(RelationRelationId, (relid), (roleid))
#define KFDW_FOREIGN_SERVER_ACLCHECK(srvid, roleid, mode) \
	object_aclcheck(ForeignServerRelationId, (srvid), (roleid), (mode))
#else
#define KFDW_CLASS_OWNERCHECK(relid, roleid) \
	pg_class_ownercheck((relid), (roleid))
#define KFDW_FOREIGN_SERVER_ACLCHECK(srvid, roleid, mode) \
	pg_foreign_server_aclcheck((srvid), (roleid), (mode))
#endif

/*
 * PostgreSQL 17 gave create_foreignscan_path the restriction clauses that
 * the path enforces (fdw_restrictinfo, used for joins), and
 * ReplicationSlotCreate the failover and synced flags of slots that
 * standbys synchronize.  kafka_fdw passes none of them.
 */
#if PG_VERSION_NUM >= 170000
#define KFDW_CREATE_FOREIGNSCAN_PATH(root, rel, target, rows, startup_cost, \
									 total_cost, pathkeys, required_outer, \
									 fdw_outerpath, fdw_private) \
	create_foreignscan_path((root), (rel), (target), (rows), (startup_cost), \
							(total_cost), (pathkeys), (required_outer), \
							(fdw_outerpath), NIL, (fdw_private))
#define KFDW_REPLICATION_SLOT_CREATE(name, db_specific, persistency, two_phase) \
	ReplicationSlotCreate((name), (db_specific), (persistency), (two_phase), \
						  false, false)
#else
#define KFDW_CREATE_FOREIGNSCAN_PATH(root, rel, target, rows, startup_cost, \
									 total_cost, pathkeys, required_outer, \
									 fdw_outerpath, fdw_private) \
	create_foreignscan_path((root), (rel), (target), (rows), (startup_cost), \
							(total_cost), (pathkeys), (required_outer), \
							(fdw_outerpath), (fdw_private))
#define KFDW_REPLICATION_SLOT_CREATE(name, db_specific, persistency, two_phase) \
	ReplicationSlotCreate((name), (db_specific), (persistency), (two_phase))
#endif

#endif							/* KAFKA_FDW_COMPAT_H */
