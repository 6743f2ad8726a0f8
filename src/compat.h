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

#endif							/* KAFKA_FDW_COMPAT_H */
