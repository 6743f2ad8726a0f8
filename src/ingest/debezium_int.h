/*-------------------------------------------------------------------------
 *
 * debezium_int.h
 *		  What debezium.c (events) and debezium_value.c (values) share
 *
 * IDENTIFICATION
 *		  src/ingest/debezium_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KFDW_INGEST_DEBEZIUM_INT_H
#define KFDW_INGEST_DEBEZIUM_INT_H

#include "ingest/debezium.h"

#include "fmgr.h"

/* A JSON value of an event, as the parse keeps it */
typedef enum DbzJsonType
{
	DBZ_JSON_NULL,
	DBZ_JSON_STRING,
	DBZ_JSON_NUMBER,
	DBZ_JSON_BOOL,
	DBZ_JSON_OBJECT,
	DBZ_JSON_ARRAY
} DbzJsonType;

typedef struct DbzJson
{
	DbzJsonType type;
	char	   *key;			/* its name in the object holding it */
	char	   *str;			/* scalar: de-escaped string, number text,
								 * "true"/"false" */
	const char *raw;			/* object or array: its JSON text */
	int			rawlen;
	int			n;				/* members or elements */
	struct DbzJson *first;
	struct DbzJson *last;
	struct DbzJson *next;
	struct DbzJson *parent;
} DbzJson;

/* The logical types of Kafka Connect and Debezium that a schema names */
typedef enum DbzLogical
{
	DBZ_L_NONE,
	DBZ_L_DATE,					/* days: io.debezium.time.Date, connect Date */
	DBZ_L_TIME_MS,				/* io.debezium.time.Time, connect Time */
	DBZ_L_TIME_US,				/* io.debezium.time.MicroTime */
	DBZ_L_TIME_NS,				/* io.debezium.time.NanoTime */
	DBZ_L_TS_MS,				/* io.debezium.time.Timestamp, connect
								 * Timestamp */
	DBZ_L_TS_US,				/* io.debezium.time.MicroTimestamp */
	DBZ_L_TS_NS,				/* io.debezium.time.NanoTimestamp */
	DBZ_L_ZONED,				/* ZonedTimestamp, ZonedTime: ISO text */
	DBZ_L_ISO_DATE,				/* io.debezium.time.IsoDate */
	DBZ_L_ISO_TIME,				/* io.debezium.time.IsoTime */
	DBZ_L_ISO_TS,				/* io.debezium.time.IsoTimestamp */
	DBZ_L_DECIMAL,				/* connect Decimal: unscaled bytes */
	DBZ_L_VSDECIMAL,			/* io.debezium.data.VariableScaleDecimal */
	DBZ_L_MICRO_DURATION,		/* io.debezium.time.MicroDuration */
	DBZ_L_INTERVAL,				/* io.debezium.time.Interval: ISO 8601 */
	DBZ_L_BITS,					/* io.debezium.data.Bits */
	DBZ_L_POINT,				/* io.debezium.data.geometry.Point */
	DBZ_L_GEOMETRY,				/* geometry.Geometry, Geography: {wkb, srid} */
	DBZ_L_TEXT					/* Json, Uuid, Xml, Enum, ...: the text */
} DbzLogical;

/* Kafka Connect's schema types */
typedef enum DbzSchemaType
{
	DBZ_T_NONE,
	DBZ_T_INT,
	DBZ_T_FLOAT,
	DBZ_T_BOOL,
	DBZ_T_STRING,
	DBZ_T_BYTES,
	DBZ_T_ARRAY,
	DBZ_T_MAP,
	DBZ_T_STRUCT
} DbzSchemaType;

/* A field's schema, what decoding needs of it */
typedef struct DbzField
{
	DbzSchemaType type;
	DbzLogical	logical;
	int			scale;			/* Decimal's parameters.scale */
	int			length;			/* Bits' parameters.length, or -1 */
	struct DbzField *items;		/* an array's */
} DbzField;

/* What a target type is, for the representations that differ by type */
typedef enum DbzKind
{
	DBZ_K_OTHER,
	DBZ_K_INT,
	DBZ_K_FLOAT,
	DBZ_K_BOOL,
	DBZ_K_NUMERIC,
	DBZ_K_MONEY,
	DBZ_K_BYTEA,
	DBZ_K_BIT,
	DBZ_K_VARBIT,
	DBZ_K_DATE,
	DBZ_K_TIME,
	DBZ_K_TIMETZ,
	DBZ_K_TIMESTAMP,
	DBZ_K_TIMESTAMPTZ,
	DBZ_K_INTERVAL,
	DBZ_K_POINT,
	DBZ_K_HSTORE,
	DBZ_K_ARRAY
} DbzKind;

typedef struct DbzType
{
	Oid			typid;			/* as declared (a domain, maybe) */
	Oid			base;			/* domains: the base type */
	int32		typmod;			/* the column's */
	int32		basemod;		/* of the base type */
	DbzKind		kind;
	FmgrInfo	input;			/* of typid */
	Oid			ioparam;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	void	   *domain_extra;	/* domain_check's cache */
	struct DbzType *elem;		/* arrays: the element type */
} DbzType;

typedef enum DbzTimeMode
{
	DBZ_TIME_ADAPTIVE,
	DBZ_TIME_ADAPTIVE_MICRO,
	DBZ_TIME_CONNECT,
	DBZ_TIME_ISOSTRING
} DbzTimeMode;

typedef enum DbzDecimalMode
{
	DBZ_DECIMAL_PRECISE,
	DBZ_DECIMAL_DOUBLE,
	DBZ_DECIMAL_STRING
} DbzDecimalMode;

/* Options: what an event without a schema means */
typedef struct DbzOptions
{
	char	   *placeholder;
	int			placeholder_len;
	bool		binary_hex;		/* binary.handling.mode=hex */
	DbzTimeMode time_mode;
	DbzDecimalMode decimal_mode;
} DbzOptions;

/* The outcome of one value */
typedef enum DbzResult
{
	DBZ_VALUE,
	DBZ_NULL,
	DBZ_ABSENT					/* the unchanged-TOAST placeholder */
} DbzResult;

/* in debezium.c */
extern DbzJson *kfdw_dbz_parse_json(const char *text, int len, bool envelope,
									const char **schema, int *schemalen);
extern DbzJson *kfdw_dbz_member(DbzJson *obj, const char *key);
extern void kfdw_dbz_describe_type(DbzType *type, Oid typid, int32 typmod,
								   MemoryContext cxt);

/* in debezium_value.c */
extern DbzResult kfdw_dbz_value(const DbzOptions *opts, DbzType *type,
								DbzJson *v, DbzField *fs, Datum *result);
extern void kfdw_dbz_value_error(const char *expected, DbzJson *v)
			pg_attribute_noreturn();

#endif							/* KFDW_INGEST_DEBEZIUM_INT_H */
