/*-------------------------------------------------------------------------
 *
 * format.h
 *		  Message formats: what a foreign table's row looks like, and the decoding
 *		  of messages into rows and encoding of rows into messages
 *
 * The layer reads top-down: decode.c and encode.c turn whole messages into
 * rows and back, and hand the value to the table's format through
 * kfdw_formats (format.c); each format (json.c, csv.c, raw.c) is one file
 * with its decode and encode; below them are the decoder core (decoder.c),
 * JSON literals (json_literal.c) and the JSON value encoder (json_encode.c).
 *
 * IDENTIFICATION
 *		  src/format/format.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KFDW_FORMAT_H
#define KFDW_FORMAT_H

#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "access/attnum.h"
#include "catalog/pg_type.h"
#include "compat.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "kafka/kafka.h"
#include "lib/stringinfo.h"
#include "utils/resowner.h"

/* The message formats of a foreign table's values */
typedef enum KafkaFormat
{
	KAFKA_FORMAT_JSON,
	KAFKA_FORMAT_CSV,
	KAFKA_FORMAT_RAW,
	KAFKA_NUM_FORMATS			/* keep last */
} KafkaFormat;

/* What a foreign table column holds */
typedef enum KafkaColumnKind
{
	KAFKA_COL_DATA,				/* a field of the message value */
	KAFKA_COL_PARTITION,
	KAFKA_COL_OFFSET,
	KAFKA_COL_KEY,
	KAFKA_COL_TIMESTAMP,
	KAFKA_COL_HEADERS,
	KAFKA_COL_JUNK,				/* raw message that could not be parsed */
	KAFKA_COL_JUNK_ERROR		/* why it could not be parsed */
} KafkaColumnKind;

/* One attribute of a foreign table, as its options describe it */
typedef struct KafkaColumn
{
	AttrNumber	attnum;
	char	   *attname;
	char	   *json_name;		/* JSON key for a data column (json format) */
	Oid			typid;
	int32		typmod;
	KafkaColumnKind kind;
	bool		dropped;
	int			data_index;		/* 0-based position among data columns, or -1 */
	bool		force_not_null; /* csv: the null string is a value */
	bool		force_null;		/* csv: the null string is NULL, quoted too */
} KafkaColumn;

/* Everything the options of a foreign table and its columns say */
typedef struct KafkaTableOptions
{
	Oid			relid;
	Oid			serverid;
	char	   *topic;
	KafkaFormat format;
	char		delimiter;		/* csv */
	char		quote;			/* csv */
	char		escape;			/* csv */
	char	   *null_string;	/* csv: string that means NULL */
	bool		strict;
	bool		ignore_junk;
	int			batch_size;
	int			buffer_delay;

	int			natts;			/* including dropped attributes */
	KafkaColumn *columns;		/* indexed by attnum - 1 */
	int			ndata;			/* number of data columns */

	/* attnum of each meta column, or InvalidAttrNumber */
	AttrNumber	partition_attnum;
	AttrNumber	offset_attnum;
	AttrNumber	key_attnum;
	AttrNumber	timestamp_attnum;
	AttrNumber	headers_attnum;
	AttrNumber	junk_attnum;
	AttrNumber	junk_error_attnum;
} KafkaTableOptions;

/*
 * The partition and offset columns are int2, int4 or int8 (option.c checks
 * them), and so are the values pushed down against them.  typid is a base
 * type, not a domain.
 */
static inline bool
kfdw_is_int_type(Oid typid)
{
	return typid == INT2OID || typid == INT4OID || typid == INT8OID;
}

/* A partition or offset as a Datum of the integer type typid */
static inline Datum
kfdw_int_to_datum(int64 value, Oid typid)
{
	if (typid == INT8OID)
		return Int64GetDatum(value);
	if (typid == INT2OID)
		return Int16GetDatum((int16) value);
	return Int32GetDatum((int32) value);
}

/* The value of a Datum of the integer type typid */
static inline int64
kfdw_datum_to_int(Datum value, Oid typid)
{
	if (typid == INT8OID)
		return DatumGetInt64(value);
	if (typid == INT2OID)
		return DatumGetInt16(value);
	return DatumGetInt32(value);
}

/*
 * How a column's value is read from text, by the column's base type: json,
 * jsonb, bytea, array and composite columns each take JSON in their own way.
 */
typedef enum KafkaValueCategory
{
	KAFKA_VALUE_SCALAR,			/* anything else: the input function */
	KAFKA_VALUE_JSON,
	KAFKA_VALUE_JSONB,
	KAFKA_VALUE_BYTEA,
	KAFKA_VALUE_ARRAY,
	KAFKA_VALUE_COMPOSITE
} KafkaValueCategory;

typedef struct KafkaFormatRoutine KafkaFormatRoutine;

/*
 * Decoding of messages into rows.  A scan prepares a KafkaDecoder
 * (kfdw_decoder_init); decode.c fills the meta columns and hands the value
 * to the format, which fills the data columns through kfdw_decoder_set().
 */
typedef struct KafkaColumnDecoder
{
	KafkaColumn *col;
	bool		needed;			/* read by the plan */
	FmgrInfo	infunc;
	Oid			ioparam;
	Oid			basetype;		/* type with domains looked through */
	KafkaValueCategory category;
	bool		isolate;		/* input may hold resources when it fails: a
								 * junk error is caught in a subtransaction */
} KafkaColumnDecoder;

typedef struct KafkaDecoder
{
	KafkaTableOptions *opts;
	KafkaColumnDecoder *cols;	/* indexed by attnum - 1 */
	KafkaColumnDecoder **data;	/* data columns, by data_index */
	bool		need_value;		/* a data column is read: decode the value */
	bool		tolerate_junk;	/* junk, junk_error or ignore_junk */
	ResourceOwner input_owner;	/* of the column inputs caught without a
								 * subtransaction, or NULL */

	/* the row being made */
	const rd_kafka_message_t *msg;	/* for the error context */
	Datum	   *values;
	bool	   *nulls;
	char	   *junk_reason;	/* why the current message is junk, or NULL */
	const char *cur_column;		/* for the error context, or NULL */
} KafkaDecoder;

/*
 * Encodes rows of a foreign table into Kafka messages.  The fields after
 * the first group hold the last encoded row; its buffers are reused.
 */
typedef struct KafkaEncoder
{
	KafkaTableOptions *opts;
	const KafkaFormatRoutine *format;
	AttrNumber *data_attnums;	/* attnum of each data column, by data_index */
	Oid		   *basetypids;		/* base type of each attribute, by attnum - 1 */
	void	   *format_state;	/* owned by the format file */

	bool		has_key;
	StringInfoData key;
	bool		has_value;		/* false: a null value (tombstone) */
	StringInfoData value;
	int			nheaders;
	StringInfoData headers;		/* encoded for kfdw_make_headers() */
	int32		partition;		/* RD_KAFKA_PARTITION_UA: not given */
	int64		timestamp;		/* ms since the Unix epoch, 0: not given */
	StringInfoData scratch;
} KafkaEncoder;

/*
 * A message format: how a message value becomes the data columns of a row,
 * and back.  Each format is one file that defines one of these, listed in
 * kfdw_formats (format.c) at its KafkaFormat.
 */
struct KafkaFormatRoutine
{
	const char *name;			/* as the table option format gives it */

	/*
	 * Fill the data columns from a message value, with kfdw_decoder_set()
	 * and kfdw_decoder_fail().
	 */
	void		(*decode) (KafkaDecoder *dec, const char *data, int len);

	/*
	 * Prepare enc->format_state for the rows of enc's table, in the
	 * encoder's memory context; NULL if the format needs none.
	 */
	void		(*begin_encode) (KafkaEncoder *enc);

	/*
	 * Append the value of the row in slot to buf, or set enc->has_value to
	 * false for a null value.
	 */
	void		(*encode) (KafkaEncoder *enc, TupleTableSlot *slot,
						   StringInfo buf);
};

/* in format.c */
extern const KafkaFormatRoutine *const kfdw_formats[];
extern int	kfdw_format_by_name(const char *name);

/* in decode.c */
extern void kfdw_decode_message(KafkaDecoder *dec, rd_kafka_message_t *msg,
								TupleTableSlot *slot);

/* in decoder.c */
extern void kfdw_decoder_init(KafkaDecoder *dec, KafkaTableOptions *opts,
							  const bool *attr_needed, MemoryContext cxt);
extern void kfdw_decoder_end(KafkaDecoder *dec);
extern bool kfdw_decoder_parallel_safe(KafkaTableOptions *opts);
extern void kfdw_decoder_set(KafkaDecoder *dec, KafkaColumnDecoder *cd,
							 const char *str, bool json_text);
extern void kfdw_decoder_fail(KafkaDecoder *dec, KafkaColumnDecoder *cd,
							  const char *reason);
extern bool kfdw_decoder_check_text(KafkaDecoder *dec, KafkaColumnDecoder *cd,
									const char *data, int len);
extern bool kfdw_decoder_check_depth(KafkaDecoder *dec, KafkaColumnDecoder *cd,
									 const char *data, int len);

/* in encode.c */
extern void kfdw_encoder_init(KafkaEncoder *enc, KafkaTableOptions *opts);
extern void kfdw_encode_row(KafkaEncoder *enc, TupleTableSlot *slot);
extern rd_kafka_headers_t *kfdw_make_headers(const char *data, int len,
											 int count);

/* in json.c, csv.c, raw.c: the formats */
extern const KafkaFormatRoutine kfdw_json_format;
extern const KafkaFormatRoutine kfdw_csv_format;
extern const KafkaFormatRoutine kfdw_raw_format;

/* in raw.c: the bytes of a key, as of a raw value */
extern void kfdw_decoder_set_bytes(KafkaDecoder *dec, KafkaColumnDecoder *cd,
								   const char *data, int len);
extern void kfdw_encode_bytes(StringInfo buf, Datum value, Oid basetypid);

/* in json_literal.c */

/*
 * Deepest nesting of arrays and objects a JSON message (or a JSON value of
 * a raw message, a CSV field or a key) may have, the top-level object
 * counting as one: deeper ones are junk, before any recursive parser sees
 * them.
 */
#define KFDW_JSON_MAX_DEPTH 1000

extern bool kfdw_json_depth_ok(const char *data, int len);
extern char *kfdw_json_to_literal(const char *json, Oid typid);
extern char *kfdw_bytea_literal(const char *b64, int len);

/* in json_encode.c */
extern void kfdw_json_append_datum(StringInfo buf, Datum value, bool isnull,
								   Oid typid);
extern void kfdw_json_append_string(StringInfo buf, const char *str);
extern int	kfdw_set_encoding_gucs(void);
extern void kfdw_reset_encoding_gucs(int nestlevel);
extern void kfdw_set_encoding_session_gucs(void);

#endif							/* KFDW_FORMAT_H */
